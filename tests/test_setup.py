"""Mistakes in a set-up fail when it is built, naming what is wrong; logging calls still never raise."""

from __future__ import annotations

import errno
import logging
import logging.config
import textwrap
from pathlib import Path
from typing import Any

import pytest

from audit_logging import AuditLogger, AuditQueueHandler, JsonlHandler, configure

from helpers import journal_files, read_jsonl, run_python


def dict_config(directory: Path, **audit: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "handlers": {
            "journal": {"class": "audit_logging.JsonlHandler", "directory": str(directory)},
            "audit": {"class": "audit_logging.AuditQueueHandler", "handlers": ["journal"], **audit},
        },
        "root": {"handlers": ["audit"], "level": "INFO"},
    }


def attached(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers configure() attached (pytest adds its own capture handlers)."""
    return [h for h in logger.handlers if getattr(h, "_audit_logging_configure", False)]


def configure_error(config: dict[str, Any]) -> BaseException:
    """What made ``dictConfig`` fail (it wraps a handler's error in its own ValueError)."""
    with pytest.raises(ValueError, match="Unable to configure handler 'audit'") as failed:
        logging.config.dictConfig(config)
    cause = failed.value.__cause__
    assert cause is not None
    return cause


# --------------------------------------------------------------------------- targets


def test_a_string_of_handlers_is_one_name_not_its_letters(tmp_path: Path) -> None:
    logging.config.dictConfig(dict_config(tmp_path, handlers="journal"))
    [audit] = logging.getLogger().handlers
    assert isinstance(audit, AuditQueueHandler)
    assert [type(t) for t in audit.targets] == [JsonlHandler]
    logging.getLogger("trainer").info("go", extra={"event": "TRAINING_STARTED"})
    audit.flush()
    [line] = read_jsonl(journal_files(tmp_path)[0])
    assert line["event"] == "TRAINING_STARTED"


def test_a_misspelled_name_in_a_string_is_reported_whole(tmp_path: Path) -> None:
    cause = configure_error(dict_config(tmp_path, handlers="jornal"))
    assert str(cause) == "AuditQueueHandler: no handler named 'jornal' (configured: journal, audit)"


def test_no_targets_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs at least one target in handlers; none given"):
        AuditQueueHandler([])
    with pytest.raises(ValueError, match="needs at least one target"):
        AuditQueueHandler()
    cause = configure_error(dict_config(tmp_path, handlers=[]))
    assert "needs at least one target" in str(cause)


def test_fileconfig_with_a_misspelled_name_fails_while_loading(tmp_path: Path) -> None:
    ini = tmp_path / "logging.ini"
    ini.write_text(
        textwrap.dedent(
            f"""
            [loggers]
            keys=root
            [handlers]
            keys=journal,audit
            [formatters]
            keys=
            [logger_root]
            level=INFO
            handlers=audit
            [handler_journal]
            class=audit_logging.JsonlHandler
            kwargs={{"directory": {str(tmp_path)!r}}}
            [handler_audit]
            class=audit_logging.AuditQueueHandler
            kwargs={{"handlers": ["journal", "warnigns"]}}
            """
        )
    )
    with pytest.raises(ValueError) as failed:
        logging.config.fileConfig(ini)
    message = "AuditQueueHandler: no handler named 'warnigns' (configured: journal, audit)"
    assert str(failed.value) == message or str(failed.value.__cause__) == message


def test_names_unknown_outside_a_configuration_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"no handlers named 'a', 'b' \(configured: "):
        AuditQueueHandler(["a", "b"])


# --------------------------------------------------------------------------- option types


@pytest.mark.parametrize(
    ("option", "value", "error", "says"),
    [
        ("queue_size", "big", TypeError, "queue_size must be an integer, not str 'big'"),
        ("queue_size", 0, ValueError, "queue_size must be at least 1, not 0"),
        ("batch_size", True, TypeError, "batch_size must be an integer, not bool True"),
        ("batch_size", 2.5, TypeError, "batch_size must be an integer, not float 2.5"),
        ("block_timeout", "1s", TypeError, "block_timeout must be a number, not str '1s'"),
        ("max_latency", -1, ValueError, "max_latency must be at least 0, not -1"),
        ("flush_timeout", None, TypeError, "flush_timeout must be a number, not NoneType None"),
        ("full_policy", "wait", ValueError, "full_policy must be one of 'block', 'drop'"),
        ("full_policy", 1, TypeError, "full_policy must be one of 'block', 'drop', not int 1"),
    ],
)
def test_wrong_option_types_name_the_option(
    tmp_path: Path, option: str, value: Any, error: type[Exception], says: str
) -> None:
    with pytest.raises(error) as direct:
        AuditQueueHandler([logging.NullHandler()], **{option: value})
    assert str(direct.value).startswith(f"AuditQueueHandler: {says}")
    cause = configure_error(dict_config(tmp_path, **{option: value}))
    assert type(cause) is error and str(cause) == str(direct.value)


def test_a_failed_construction_leaves_nothing_for_shutdown(tmp_path: Path) -> None:
    # The error's traceback keeps the half-built handler alive until exit, where
    # logging.shutdown() flushes every handler that Handler.__init__ registered.
    code = """
import logging
from audit_logging import AuditQueueHandler
try:
    AuditQueueHandler([logging.NullHandler()], queue_size="big")
except TypeError as exc:
    kept = exc
    print(exc)
"""
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 0
    assert "queue_size must be an integer" in result.stdout
    assert result.stderr == ""


# --------------------------------------------------------------------------- configure(root_dir)


def test_configure_on_a_file_raises_at_once_naming_it(
    tmp_path: Path, logger: logging.Logger
) -> None:
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    for root in (a_file, a_file / "run1"):
        with pytest.raises(NotADirectoryError) as failed:
            configure(root_dir=root, logger=logger)
        assert failed.value.errno == errno.ENOTDIR and failed.value.filename == str(a_file)
        assert attached(logger) == []
    assert a_file.read_text() == "not a folder"


def test_configure_on_a_read_only_folder_raises_at_once_naming_it(
    read_only_dir: Path, logger: logging.Logger
) -> None:
    with pytest.raises(PermissionError) as failed:
        configure(root_dir=read_only_dir / "run1", logger=logger)
    assert failed.value.errno == errno.EACCES and failed.value.filename == str(read_only_dir)
    assert "not writable" in str(failed.value) and attached(logger) == []
    with pytest.raises(PermissionError, match="not writable"):
        AuditLogger(read_only_dir)


def test_a_folder_that_breaks_later_does_not_raise_into_logging_calls(
    tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = configure(root_dir=tmp_path, formats="jsonl", logger=logger, runtime_log=False)
    assert handler is not None
    (tmp_path / "logs").write_text("a file where the journal's folder was")
    logger.info("go", extra={"event": "TRAINING_STARTED"})  # must not raise
    handler.flush()
    assert "--- Logging error ---" in capsys.readouterr().err


def test_configure_checks_option_types(tmp_path: Path, logger: logging.Logger) -> None:
    with pytest.raises(TypeError, match="runtime_log must be True or False, not str 'no'"):
        configure(root_dir=tmp_path, logger=logger, runtime_log="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="runtime_log_max_bytes must be an integer"):
        configure(root_dir=tmp_path, logger=logger, runtime_log_max_bytes="10MB")  # type: ignore[arg-type]
    assert attached(logger) == []


# --------------------------------------------------------------------------- writers' options


def test_the_writer_option_check_names_the_option() -> None:
    from audit_logging._options import check_writer_options

    check_writer_options(
        "JsonlHandler",
        file_mode=0o600,
        redact=True,
        hmac_key=None,
        secret_keys=["token"],
        digest_interval=10,
        max_files_per_type=None,
        unknown_option=object(),
    )
    bad: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"max_record_bytes": "1MB"}, TypeError, "max_record_bytes must be an integer"),
        ({"max_record_bytes": 0}, ValueError, "max_record_bytes must be at least 1"),
        ({"redact": "false"}, TypeError, "redact must be True or False, not str 'false'"),
        ({"digest_interval": "10s"}, TypeError, "digest_interval must be a number"),
        ({"max_age_days": -1}, ValueError, "max_age_days must be at least 0"),
        ({"secret_keys": "token"}, TypeError, "secret_keys must be a list of names, not str"),
        ({"hmac_key": 42}, TypeError, "hmac_key must be a string or bytes, not int"),
        ({"prefix": None}, TypeError, "prefix must be a string, not NoneType"),
    ]
    for options, error, says in bad:
        with pytest.raises(error, match=f"^JsonlHandler: {says}"):
            check_writer_options("JsonlHandler", **options)


def test_the_gcs_mirror_checks_its_options(
    tmp_path: Path, gcs_server: Any, gcs_bucket: Any, gcs_hermetic_env: Path
) -> None:
    from audit_logging import GcsSyncHandler

    with pytest.raises(TypeError, match=r"^GcsSyncHandler: interval must be a number, not str"):
        GcsSyncHandler(gcs_bucket.name, tmp_path, interval="60")  # type: ignore[arg-type]
    mirror = GcsSyncHandler(
        gcs_bucket.name, tmp_path, exclude="*.tmp", client=gcs_server.client(), interval=3600
    )
    (tmp_path / "kept.json").write_text("{}")
    (tmp_path / "skipped.tmp").write_text("x")
    mirror.close()
    assert mirror.exclude == ("*.tmp",)  # one pattern, not five letters
    sources = [
        (blob.metadata or {}).get("audit-logging-source")
        for blob in gcs_server.client().list_blobs(gcs_bucket)
    ]
    assert sources == ["kept.json"]
