"""configure(): the one-call set-up, driven by arguments or environment variables.

Precedence everywhere: the argument, else the environment variable, else the default.

==================  =========================================  ======================
variable            meaning                                    default
==================  =========================================  ======================
AUDIT_LOG_DIR       root folder of every output                ``.``
AUDIT_LOG_FORMAT    outputs, a comma list of ``jsonl``,        ``jsonl,json,warnings``
                    ``json``, ``csv``, ``warnings``, or
                    ``none``
AUDIT_LOG_LEVEL     DEBUG, INFO, WARNING or ERROR              ``INFO``
AUDIT_SESSION_ID    session id shared by every process of a    one per process
                    run (read by the writers)
AUDIT_RUNTIME_LOG   ``0`` turns off the runtime log and the    ``1``
                    console handler (below)
==================  =========================================  ======================

Besides the audit outputs, ``configure()`` sets up the human-readable runtime
log that a plain ``logging.basicConfig()`` would have given: every record of
the logger, audit or not, as one text line in ``logs/ml-platform.log`` (a
target of the queue handler, written on its listener thread), and WARNING and
above on stderr. Without them, a ``log.warning("...")`` that
carries no audit field would vanish once the audit handler is the root's only
handler (``logging.lastResort`` prints only when a logger has no handler).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from concurrent_log_handler import ConcurrentRotatingFileHandler

from audit_logging._options import check_bool, check_int, check_writable_dir
from audit_logging.queue import AuditQueueHandler
from audit_logging.writers.csv import CsvHandler
from audit_logging.writers.json_array import JsonArrayHandler
from audit_logging.writers.jsonl import JsonlHandler
from audit_logging.writers.warnings import WarningFileHandler

__all__ = ["FORMATS", "RUNTIME_LOG", "RuntimeLogHandler", "configure", "parse_formats"]

_Factory = Callable[[Path], logging.Handler]

#: Where the runtime log goes, relative to ``root_dir``.
RUNTIME_LOG: tuple[str, ...] = ("logs", "ml-platform.log")
RUNTIME_FORMAT = (
    "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s [%(process)d %(threadName)s]: %(message)s"
)
CONSOLE_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"
#: The folder each output writes into, relative to ``root_dir``: checked by ``configure()``.
_FOLDERS: dict[str, tuple[str, ...]] = {
    "jsonl": ("logs",),
    "json": (),
    "csv": (),
    "warnings": ("training_logs", "warnings"),
}

_FACTORIES: dict[str, _Factory] = {
    "jsonl": lambda root: JsonlHandler(directory=root / "logs"),
    "json": lambda root: JsonArrayHandler(directory=root),
    "csv": lambda root: CsvHandler(directory=root),
    "warnings": lambda root: WarningFileHandler(directory=root / "training_logs" / "warnings"),
}

#: The output names ``configure`` and ``AUDIT_LOG_FORMAT`` accept (besides ``none``).
FORMATS: tuple[str, ...] = tuple(_FACTORIES)
DEFAULT_FORMATS: tuple[str, ...] = ("jsonl", "json", "warnings")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_CONFIGURED_MARK = "_audit_logging_configure"


def parse_formats(value: str | Iterable[str] | None) -> list[str]:
    """Normalise a format selection (``"json,CSV"``, ``["jsonl"]``, ``"none"``) to a list.

    Case-insensitive; duplicates removed; ``none`` gives ``[]``. An unknown
    name raises ``ValueError`` naming the valid ones.
    """
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(item).strip().lower() for item in items if str(item).strip()]
    if "none" in names:
        return []
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise ValueError(
            f"unknown audit log format(s) {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(FORMATS)}, none"
        )
    return list(dict.fromkeys(names))


def _level(value: int | str | None) -> int:
    if value is None:
        value = os.environ.get("AUDIT_LOG_LEVEL") or "INFO"
    if isinstance(value, int):
        return value
    name = value.strip().upper()
    if name not in _LEVELS:
        raise ValueError(f"unknown audit log level {value!r}; valid: {', '.join(_LEVELS)}")
    return logging.getLevelName(name)  # type: ignore[no-any-return]


def _runtime_log_wanted(value: bool | None) -> bool:
    if value is not None:
        return check_bool("configure", "runtime_log", value)
    env = os.environ.get("AUDIT_RUNTIME_LOG", "").strip().lower()
    if env in ("", "1", "true", "yes", "on"):
        return True
    if env in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"AUDIT_RUNTIME_LOG must be 1 or 0, not {env!r}")


def _has_console(logger: logging.Logger) -> bool:
    """Whether ``logger`` already prints to stderr or stdout (a ``basicConfig()`` before us)."""
    return any(
        type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.stdout)
        for h in logger.handlers
    )


def _utc_formatter(fmt: str) -> logging.Formatter:
    formatter = logging.Formatter(fmt, datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime  # UTC, as every timestamp the library writes
    return formatter


class RuntimeLogHandler(ConcurrentRotatingFileHandler):
    """The runtime log: text lines, size-rotated across processes, written a batch at a time.

    ``ConcurrentRotatingFileHandler`` takes its lock file once per record
    (about 50 us here); the queue handler hands its targets whole batches, so
    this writes each batch's lines with one lock and one ``write()``, in
    pieces of at most an eighth of ``maxBytes`` so that a file still ends
    near that size.
    """

    def __init__(self, filename: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        # Its folder made private, as the journal writer makes it (the base
        # class would fail on a missing folder); the files too, by default.
        os.makedirs(os.path.dirname(os.path.abspath(filename)), mode=0o700, exist_ok=True)
        kwargs.setdefault("chmod", 0o600)
        kwargs.setdefault("encoding", "utf-8")
        super().__init__(filename, *args, **kwargs)
        self.setFormatter(_utc_formatter(RUNTIME_FORMAT))  # dictConfig may set another

    def handle_batch(self, records: Sequence[logging.LogRecord]) -> None:
        piece: list[str] = []
        size = 0
        limit = self.maxBytes // 8 if self.maxBytes > 0 else None
        for record in records:
            if record.levelno < self.level or not self.filter(record):
                continue
            try:
                line = self.format(record)
            except Exception:
                self.handleError(record)
                continue
            piece.append(line)
            size += len(line) + 1
            if limit is not None and size >= limit:
                self._write_lines(piece)
                piece, size = [], 0
        if piece:
            self._write_lines(piece)

    def _write_lines(self, lines: list[str]) -> None:
        joined = _Lines("\n".join(lines))
        self.acquire()
        try:
            self.emit(joined)  # locks the file, rolls over if due, writes, unlocks
        finally:
            self.release()

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record, _Lines):
            return record.msg  # already formatted
        return super().format(record)


class _Lines(logging.LogRecord):
    """Formatted lines handed to ``emit`` as one record."""

    msg: str

    def __init__(self, text: str) -> None:
        super().__init__("audit_logging", logging.INFO, __file__, 0, text, None, None)


def _runtime_log(root: Path, level: int, max_bytes: int, backups: int) -> logging.Handler:
    """The human-readable runtime log file, rotated by size across processes."""
    # concurrent-log-handler rotates under a lock file shared by every process
    # writing the log (torchrun ranks, DataLoader workers); the stdlib's
    # RotatingFileHandler would have two processes rotate at once.
    # (Its constructor makes the folder.)
    path = root.joinpath(*RUNTIME_LOG)
    handler = RuntimeLogHandler(os.fspath(path), maxBytes=max_bytes, backupCount=backups)
    handler.setLevel(level)
    return handler


def _console(level: int) -> logging.Handler:
    console = logging.StreamHandler()  # stderr
    console.setLevel(max(level, logging.WARNING))
    console.setFormatter(_utc_formatter(CONSOLE_FORMAT))
    return console


def configure(
    root_dir: str | os.PathLike[str] | None = None,
    formats: str | Iterable[str] | None = None,
    level: int | str | None = None,
    logger: logging.Logger | str | None = None,
    *,
    runtime_log: bool | None = None,
    runtime_log_max_bytes: int = 10 * 1024 * 1024,
    runtime_log_backups: int = 5,
) -> AuditQueueHandler | None:
    """Attach an :class:`AuditQueueHandler` with the chosen writers to ``logger`` (root by default).

    ``root_dir`` (else ``AUDIT_LOG_DIR``, else ``.``) holds ``logs/`` (the
    journal), ``audit_log.json``, ``audit_log.csv`` and
    ``training_logs/warnings/``. ``formats`` (else ``AUDIT_LOG_FORMAT``, else
    ``jsonl,json,warnings``) picks the outputs; ``none`` attaches nothing and
    returns ``None``. ``level`` (else ``AUDIT_LOG_LEVEL``, else INFO) is set on
    the handler and, where it is lower, on the logger.

    With ``runtime_log`` (else ``AUDIT_RUNTIME_LOG``, else on) the handler
    also writes the human-readable runtime log ``logs/ml-platform.log`` (every
    record at ``level`` or above as a text line; rotated at
    ``runtime_log_max_bytes`` with ``runtime_log_backups`` old files kept,
    safely across processes; closed with the writers), and, when the logger
    prints to no console yet, a console handler for WARNING and above on
    stderr is attached beside it.

    Calling it again replaces the handlers an earlier call attached to the
    same logger (the old ones are drained and closed first), so nothing is
    attached twice.

    A root folder that cannot hold the outputs (a file is in the way, or it
    is not writable) raises the ``OSError`` that opening a file there would
    raise, naming the path, before anything is attached. Logging calls
    themselves never raise.
    """
    root = Path(root_dir if root_dir is not None else os.environ.get("AUDIT_LOG_DIR") or ".")
    if formats is None:
        env = os.environ.get("AUDIT_LOG_FORMAT")
        selected = parse_formats(env) if env is not None and env.strip() else list(DEFAULT_FORMATS)
    else:
        selected = parse_formats(formats)
    levelno = _level(level)
    with_runtime_log = _runtime_log_wanted(runtime_log)
    max_bytes = check_int("configure", "runtime_log_max_bytes", runtime_log_max_bytes, minimum=0)
    backups = check_int("configure", "runtime_log_backups", runtime_log_backups, minimum=0)
    target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)

    for old in list(target.handlers):
        if getattr(old, _CONFIGURED_MARK, False):
            target.removeHandler(old)
            old.close()
    if not selected:
        return None
    # The writers open their files lazily, on the listener thread: a folder
    # they cannot write would only show as tracebacks later. Checked here, at
    # the cost of a stat and an access() per folder; nothing is created.
    folders = [root.joinpath(*_FOLDERS[name]) for name in selected]
    if with_runtime_log:
        folders.append(root.joinpath(*RUNTIME_LOG[:-1]))
    for folder in dict.fromkeys(folders):
        check_writable_dir(folder)

    targets = [_FACTORIES[name](root) for name in selected]
    if with_runtime_log:
        # A target of the queue handler like the writers: the caller's thread
        # does no I/O for it, and closing the queue handler closes it too.
        targets.append(_runtime_log(root, levelno, max_bytes, backups))
    handler = AuditQueueHandler(targets, level=levelno)
    attached: list[logging.Handler] = [handler]
    if with_runtime_log and not _has_console(target):
        # Directly on the logger: a warning is printed when it is logged.
        attached.append(_console(levelno))
    for each in attached:
        setattr(each, _CONFIGURED_MARK, True)
        target.addHandler(each)
    if target.level == logging.NOTSET or target.level > levelno:
        target.setLevel(levelno)
    return handler
