"""configure()'s human-readable runtime log: logs/ml-platform.log and a console handler."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from audit_logging import configure

from helpers import AUDIT_ENV, REPO

LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?P<level>[A-Z]+) (?P<logger>\S+) "
    r"\[(?P<pid>\d+) (?P<thread>[^\]]+)\]: (?P<message>.*)$"
)


def runtime_lines(root: Path) -> list[re.Match[str]]:
    text = (root / "logs" / "ml-platform.log").read_text(encoding="utf-8")
    matches = [LINE.match(line) for line in text.splitlines()]
    assert all(matches), text
    return [m for m in matches if m is not None]


def ours(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, "_audit_logging_configure", False)]


def test_a_plain_warning_reaches_the_runtime_log_and_the_console(
    tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(root_dir=tmp_path, logger=logger)
    logger.warning("disk at %d%%", 91)  # no audit field: no audit writer takes it
    logger.info("started", extra={"event": "TRAINING_STARTED"})
    logger.debug("below the level")
    for handler in logger.handlers:
        handler.flush()
    lines = runtime_lines(tmp_path)
    assert [(m["level"], m["logger"], m["message"]) for m in lines] == [
        ("WARNING", logger.name, "disk at 91%"),
        ("INFO", logger.name, "started"),
    ]
    assert int(lines[0]["pid"]) == os.getpid()
    err = capsys.readouterr().err
    assert f"WARNING {logger.name}: disk at 91%" in err and "started" not in err
    assert (tmp_path / "logs" / "ml-platform.log").stat().st_mode & 0o777 == 0o600


def test_a_second_configure_does_not_attach_it_twice(
    tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(root_dir=tmp_path, logger=logger)
    first = ours(logger)
    configure(root_dir=tmp_path, logger=logger)
    second = ours(logger)
    assert [type(h).__name__ for h in second] == ["AuditQueueHandler", "StreamHandler"]
    assert not set(first) & set(second)
    old_log = first[0].targets[-1]  # type: ignore[attr-defined]
    assert type(old_log).__name__ == "RuntimeLogHandler"
    assert old_log.stream is None or old_log.stream.closed  # closed with the old writers
    logger.warning("once")
    second[0].flush()
    assert [m["message"] for m in runtime_lines(tmp_path)] == ["once"]
    assert capsys.readouterr().err.count("once") == 1


def test_an_existing_console_handler_is_not_doubled(
    tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logger.addHandler(logging.StreamHandler())  # what logging.basicConfig() gives
    configure(root_dir=tmp_path, logger=logger)
    assert [type(h).__name__ for h in ours(logger)] == ["AuditQueueHandler"]
    logger.warning("printed once")
    assert capsys.readouterr().err.count("printed once") == 1


def test_it_can_be_turned_off(
    tmp_path: Path, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = configure(root_dir=tmp_path / "arg", logger=logger, runtime_log=False)
    assert [type(h).__name__ for h in ours(logger)] == ["AuditQueueHandler"]
    assert handler is not None and len(handler.targets) == 3  # the three default writers
    monkeypatch.setenv("AUDIT_RUNTIME_LOG", "0")
    handler = configure(root_dir=tmp_path / "env", logger=logger)
    assert [type(h).__name__ for h in ours(logger)] == ["AuditQueueHandler"]
    assert handler is not None and len(handler.targets) == 3
    logger.warning("nowhere")
    assert not list(tmp_path.rglob("*.log"))
    monkeypatch.setenv("AUDIT_RUNTIME_LOG", "maybe")
    with pytest.raises(ValueError, match="AUDIT_RUNTIME_LOG must be 1 or 0, not 'maybe'"):
        configure(root_dir=tmp_path, logger=logger)


WRITER = """
import logging, sys
import audit_logging
audit_logging.configure(root_dir=sys.argv[1], runtime_log_max_bytes=4096, runtime_log_backups=100)
log = logging.getLogger("worker")
sys.stdin.readline()  # both processes start logging together
for i in range(300):
    log.info("%s line %03d %s", sys.argv[2], i, "x" * 40)
"""


def test_two_processes_rotate_one_log_without_losing_a_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in AUDIT_ENV}
    env["PYTHONPATH"] = str(REPO)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), tag],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for tag in ("A", "B")
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    files = sorted((tmp_path / "logs").glob("ml-platform.log*"))
    assert len(files) > 5  # 600 lines of about 100 bytes, rotated at 4 KiB
    messages = []
    for path in files:
        # Each process checks the size before its write: a file may end a line or two over.
        assert path.stat().st_size < 4096 + 1024
        for line in path.read_text(encoding="utf-8").splitlines():
            match = LINE.match(line)
            assert match is not None, line
            messages.append(match["message"])
    expected = [f"{tag} line {i:03d} {'x' * 40}" for tag in "AB" for i in range(300)]
    assert sorted(messages) == expected  # every line once, none torn


def test_dictconfig_can_name_it_as_a_target(tmp_path: Path) -> None:
    import logging.config

    path = tmp_path / "logs" / "ml-platform.log"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "journal": {"class": "audit_logging.JsonlHandler", "directory": str(path.parent)},
                "runtime": {
                    "class": "audit_logging.config.RuntimeLogHandler",
                    "filename": str(path),
                    "maxBytes": 10485760,
                    "backupCount": 5,
                },
                "audit": {
                    "class": "audit_logging.AuditQueueHandler",
                    "handlers": ["journal", "runtime"],
                },
            },
            "root": {"handlers": ["audit"], "level": "INFO"},
        }
    )
    logging.getLogger("trainer").warning("plain %s", "warning")
    [audit] = logging.getLogger().handlers
    audit.flush()
    [line] = path.read_text(encoding="utf-8").splitlines()
    match = LINE.match(line)  # the same lines as configure()'s
    assert match is not None and match["message"] == "plain warning"
    assert path.parent.stat().st_mode & 0o777 == 0o700
