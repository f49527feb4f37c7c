"""The schema module: names, timestamps and strict, never-raising JSON."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import pytest

from audit_logging import schema
from audit_logging.schema import Event, dumps, format_timestamp, register_event, to_jsonable

from helpers import run_python


def strict_loads(data: bytes | str) -> object:
    def refuse(token: str) -> object:
        raise ValueError(token)

    return json.loads(data, parse_constant=refuse)


def test_standard_events_are_the_documented_fifteen() -> None:
    assert {e.value for e in Event} == {
        "DATASET_UPLOADED", "DATASET_VALIDATED", "DATASET_PREPROCESSED",
        "TRAINING_STARTED", "TRAINING_PROGRESS", "TRAINING_COMPLETED", "TRAINING_FAILED",
        "TRAINING_STOPPED", "MODEL_EVALUATED", "MODEL_SAVED", "MODEL_DOWNLOADED",
        "MODEL_COMPARED", "ALGORITHM_SELECTED", "HYPERPARAMETERS_SET", "ISSUE_DETECTED",
    }  # fmt: skip


def test_register_event_accepts_tokens_and_rejects_others() -> None:
    register_event("DATA_DRIFT_CHECKED")
    assert schema.is_known_event("DATA_DRIFT_CHECKED")
    for bad in ("", "lower_case", "HAS SPACE", "DOT.TED", 3):
        with pytest.raises(ValueError, match="event names"):
            register_event(bad)  # type: ignore[arg-type]
    assert not schema.is_known_event("NEVER_REGISTERED")


def test_audit_extra_keys_do_not_clash_with_logrecord_attributes() -> None:
    # logging raises KeyError for an extra key that is a LogRecord attribute.
    logger = logging.getLogger("clash-check")
    record = logger.makeRecord(
        "clash-check", logging.INFO, __file__, 1, "m", None, None,
        extra={key: 1 for key in schema.AUDIT_EXTRA_KEYS},
    )  # fmt: skip
    assert all(getattr(record, key) == 1 for key in schema.AUDIT_EXTRA_KEYS)


def test_timestamp_is_utc_iso_with_microseconds_and_z() -> None:
    created = dt.datetime(2026, 11, 23, 23, 59, 59, 123456, tzinfo=dt.timezone.utc).timestamp()
    assert format_timestamp(created) == "2026-11-23T23:59:59.123456Z"
    assert format_timestamp(created + 1) == "2026-11-24T00:00:00.123456Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", schema.utc_now())


def test_numpy_values_keep_their_numbers() -> None:
    value = {
        "f32": np.float32(0.25),
        "i64": np.int64(7),
        "b": np.bool_(True),
        "arr": np.array([[1, 2], [3, 4]]),
        "farr": np.array([0.5, np.nan, np.inf]),
    }
    assert strict_loads(dumps(value)) == {
        "f32": 0.25, "i64": 7, "b": True, "arr": [[1, 2], [3, 4]], "farr": [0.5, None, None],
    }  # fmt: skip


def test_non_finite_floats_become_null() -> None:
    out = strict_loads(dumps({"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "ok": 1.5}))
    assert out == {"nan": None, "inf": None, "ninf": None, "ok": 1.5}


def test_datetimes_bytes_sets_and_objects_become_readable() -> None:
    class Weird:
        def __repr__(self) -> str:
            return "<Weird thing>"

    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    value = {
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        "day": dt.date(2026, 1, 2),
        "text": b"hello",
        "binary": b"\xff\x00",
        "tags": {"b", "a"},
        "obj": Weird(),
        "bad": BadRepr(),
        "dec": decimal.Decimal("1.10"),
        "path": Path("a/b"),
        "exc": ValueError("boom"),
        (1, 2): "tuple key",
    }
    out = strict_loads(dumps(value))
    assert isinstance(out, dict)
    assert out["when"] == "2026-01-02T03:04:05Z"
    assert out["day"] == "2026-01-02"
    assert out["text"] == "hello"
    assert out["binary"] == "base64:/wA="
    assert out["tags"] == ["a", "b"]
    assert out["obj"] == "<Weird thing>"
    assert out["bad"] == "<unrepresentable BadRepr>"
    assert out["dec"] == "1.10"
    assert out["path"] == "a/b"
    assert out["exc"] == "ValueError: boom"
    assert out["(1, 2)"] == "tuple key"


def test_non_string_keys_become_their_json_text() -> None:
    # Per-class metrics keyed by class index are common; the journal keeps them.
    metrics = {"per_class": {0: 0.91, 1: 0.84}, 2.5: "half", None: 1, True: "yes"}
    assert strict_loads(dumps(metrics)) == {
        "per_class": {"0": 0.91, "1": 0.84},
        "2.5": "half",
        "null": 1,
        "true": "yes",
    }


def test_cycles_are_cut_not_followed() -> None:
    a: dict[str, object] = {"name": "a"}
    a["self"] = a
    lst: list[object] = [1]
    lst.append(lst)
    assert strict_loads(dumps({"a": a, "l": lst})) == {
        "a": {"name": "a", "self": "<cycle>"},
        "l": [1, "<cycle>"],
    }


def test_unicode_is_kept_and_line_separators_escaped() -> None:
    data = dumps({"s": "caf\u00e9 \u2028 \u2029 \u6f22 \x00 \ud800"})
    assert b"\xe2\x80\xa8" not in data and b"\xe2\x80\xa9" not in data
    assert b"\n" not in data
    out = strict_loads(data)
    assert isinstance(out, dict)
    assert out["s"].startswith("caf\u00e9 \u2028 \u2029 \u6f22 \x00 ")
    assert "\\ud800" in out["s"]  # a lone surrogate is kept as readable text
    data.decode("utf-8")  # valid UTF-8 throughout


def test_to_jsonable_never_raises_on_deep_nesting() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(5000):
        child: list[object] = []
        node.append(child)
        node = child
    out = to_jsonable(deep)
    json.dumps(out)  # the depth is cut, so the stdlib encoder copes too
    assert "<max depth>" in json.dumps(out)
    strict_loads(dumps(deep))


def test_the_stdlib_json_backend_writes_the_same_values(tmp_path: Path) -> None:
    # Without the `fast` extra the journal is encoded by the stdlib: same rules.
    payload = """{
        "nan": math.nan, "inf": -math.inf, "ok": 1.5, "big": 2**70,
        "past_double": 2**53 + 1, "double": 2**53 - 1,
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        "array": np.array([1.0, np.nan]), "np": np.int64(3), "keys": {1: "a", None: "b"},
        "text": "caf\\u00e9 \\u2028", "bytes": b"\\xff", "tags": {"b", "a"},
    }"""
    code = f"""
import sys
sys.modules["orjson"] = None  # as without the `fast` extra
import datetime as dt, math
import numpy as np
from audit_logging import schema
assert schema.JSON_BACKEND == "json", schema.JSON_BACKEND
sys.stdout.write(schema.dumps({payload}).decode("utf-8"))
"""
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\u2028" not in done.stdout  # escaped, as orjson's output is
    assert strict_loads(done.stdout) == strict_loads(dumps(eval(payload)))
    written = strict_loads(done.stdout)
    assert (written["past_double"], written["double"]) == ("9007199254740993", 2**53 - 1)
