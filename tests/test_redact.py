"""redact(): secret-looking keys and values are masked; harmless ML names are not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit_logging.redact import DEFAULT_SECRET_KEYS, REDACTED, Redactor, redact, redact_text

PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "-----END PRIVATE KEY-----\n"
)


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_password",
        "PASSWD",
        "client_secret",
        "clientSecret",
        "AWS_SECRET_ACCESS_KEY",
        "access_token",
        "refreshToken",
        "api_key",
        "X-Api-Key",
        "apikey",
        "private_key",
        "private_key_id",
        "privateKey",
        "credentials",
        "gcp.credential",
        "Authorization",
    ],
)
def test_secret_keys_are_redacted(key: str) -> None:
    assert redact({key: "s3cr3t-value"}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key", ["tokenizer", "max_tokens", "num_tokens", "token_budget_used", "secretary", "model"]
)
def test_ml_names_that_merely_contain_a_word_are_kept(key: str) -> None:
    if key == "token_budget_used":
        # "token" is a whole word here: a key list is about words, not meaning.
        assert redact({key: 5}) == {key: REDACTED}
    else:
        assert redact({key: "bert-base"}) == {key: "bert-base"}


def test_nested_values_and_types() -> None:
    value = {
        "run": {"config": {"optimizer": {"lr": 0.1}, "wandb": {"api_key": 1234567}}},
        "list": [{"token": "abc"}, {"ok": "fine"}],
        "has_password": True,
        "password": None,
    }
    assert redact(value) == {
        "run": {"config": {"optimizer": {"lr": 0.1}, "wandb": {"api_key": REDACTED}}},
        "list": [{"token": REDACTED}, {"ok": "fine"}],
        "has_password": True,  # whether a secret exists is not the secret
        "password": None,
    }


def test_values_that_look_like_secrets_are_redacted_anywhere() -> None:
    text = f"loaded key {PEM} then sent Authorization: Bearer ya29.a0AfH6SMBxyz123456 ok"
    out = redact_text(text)
    assert "MIIEvQ" not in out and "ya29" not in out
    assert "[REDACTED private key]" in out and "loaded key" in out and "ok" in out
    assert redact_text("url https://alice:hunter2@example.com/x") == (
        f"url https://alice:{REDACTED}@example.com/x"
    )
    assert redact_text("connect password=hunter2 user=bob") == (
        f"connect password={REDACTED} user=bob"
    )
    assert redact_text('{"api_key": "abc123"}') == f'{{"api_key": "{REDACTED}"}}'
    assert redact_text("tokenizer=bert max_tokens: 512") == "tokenizer=bert max_tokens: 512"


def test_service_account_json_as_mapping_or_text() -> None:
    account = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "0123abcd",
        "private_key": PEM,
        "client_email": "trainer@p.iam.gserviceaccount.com",
    }
    out = redact({"creds": account, "raw": json.dumps(account)})
    dumped = json.dumps(out)
    assert "0123abcd" not in dumped and "MIIEvQ" not in dumped
    assert out["creds"] == out["raw"] == "[REDACTED service account key]"


def test_unchanged_values_are_the_same_objects_and_cycles_end() -> None:
    clean = {"a": [1, 2, {"b": "c"}], "d": ("e",)}
    assert redact(clean) is clean
    loop: dict[str, object] = {"password": "x"}
    loop["self"] = loop
    out = redact(loop)
    assert out["password"] == REDACTED


def test_key_list_is_configurable() -> None:
    keys = (*DEFAULT_SECRET_KEYS, "session_cookie")
    assert redact({"session_cookie": "abc", "password": "x"}, keys) == {
        "session_cookie": REDACTED,
        "password": REDACTED,
    }
    assert redact({"password": "x"}, keys=("cookie",)) == {"password": "x"}


def test_never_raises_on_hostile_containers() -> None:
    class Exploding(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

        def get(self, *args):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    assert redact({"x": Exploding(a=1)}) == REDACTED


def test_redactor_scrub_masks_named_fields_in_place_like_redact() -> None:
    fields = {
        "dataset": "s3://reader:hunter2@bucket/churn.csv",
        "model": "RandomForest",
        "metrics_snapshot": {"loss": 0.25, "api_key": "k-123"},
        "reasoning": ["Authorization: Bearer abcdefghijklmnop"],
        "message": "token=abc123 sent",
        "exception": None,
        "untouched": {"password": "kept: not named"},
    }
    expected = {k: redact(v) for k, v in fields.items() if k != "untouched"}
    redactor = Redactor()
    for _ in range(2):  # the second pass answers strings from the cache
        batch = {k: (dict(v) if isinstance(v, dict) else v) for k, v in fields.items()}
        redactor.scrub(batch, [k for k in fields if k != "untouched"])
        assert {k: v for k, v in batch.items() if k != "untouched"} == expected
        assert batch["untouched"] == {"password": "kept: not named"}
    assert expected["dataset"] == f"s3://reader:{REDACTED}@bucket/churn.csv"
    assert expected["metrics_snapshot"] == {"loss": 0.25, "api_key": REDACTED}
    assert expected["message"] == f"token={REDACTED} sent"


def test_every_file_writer_takes_redact_and_secret_keys(tmp_path: Path) -> None:
    import logging

    from audit_logging.writers.csv import CsvHandler
    from audit_logging.writers.json_array import JsonArrayHandler, read_entries

    record = logging.LogRecord("t", logging.INFO, "", 0, "m", None, None)
    record.action_type = "login"
    record.details = {"api_key": "k-1", "session_cookie": "c-1"}
    plain_csv = CsvHandler(directory=tmp_path, filename="plain.csv", redact=False)
    custom_json = JsonArrayHandler(
        directory=tmp_path, filename="custom.json", secret_keys=("session_cookie",)
    )
    for handler in (plain_csv, custom_json):
        handler.handle(record)
        handler.close()
    assert (
        "k-1" in (tmp_path / "plain.csv").read_text()
        and REDACTED not in (tmp_path / "plain.csv").read_text()
    )
    [entry] = read_entries(tmp_path / "custom.json")
    assert entry["details"] == {"api_key": "k-1", "session_cookie": REDACTED}


def test_the_writers_redactor_masks_what_redact_masks_in_keys_too() -> None:
    value = {"https://u:pw12345@host/x": 1, "loss": 0.5, "note": "token=abc"}
    assert Redactor()(value) == redact(value)
    assert "pw12345" not in json.dumps(Redactor()(value))
    clean = {"loss": 0.5, "name": "resnet"}
    assert Redactor()(clean) is clean


def test_a_clean_key_seen_with_numbers_still_has_its_text_checked() -> None:
    # The redactor remembers clean keys; a later text under one is still looked at.
    redactor = Redactor()
    metrics = {"loss": 0.3, "step": 2, "done": False, "note": None}
    for _ in range(3):
        assert redactor(metrics) is metrics
    leaked = {"loss": 0.3, "step": "password=hunter2", "done": False, "note": None}
    assert redactor(leaked) == {**leaked, "step": f"password={REDACTED}"}
    assert redactor({"loss": 0.3, "api_key": 12345}) == {"loss": 0.3, "api_key": REDACTED}
    keyed = {"loss": 0.3, 1: {"token": "abc"}}
    assert redactor(keyed) == {"loss": 0.3, 1: {"token": REDACTED}}
