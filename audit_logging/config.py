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
==================  =========================================  ======================
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from audit_logging.queue import AuditQueueHandler
from audit_logging.writers.csv import CsvHandler
from audit_logging.writers.json_array import JsonArrayHandler
from audit_logging.writers.jsonl import JsonlHandler
from audit_logging.writers.warnings import WarningFileHandler

__all__ = ["FORMATS", "configure", "parse_formats"]

_Factory = Callable[[Path], logging.Handler]

_FACTORIES: dict[str, _Factory] = {
    "jsonl": lambda root: JsonlHandler(directory=root / "logs"),
    "json": lambda root: JsonArrayHandler(path=root / "audit_log.json"),
    "csv": lambda root: CsvHandler(path=root / "audit_log.csv"),
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


def configure(
    root_dir: str | os.PathLike[str] | None = None,
    formats: str | Iterable[str] | None = None,
    level: int | str | None = None,
    logger: logging.Logger | str | None = None,
) -> AuditQueueHandler | None:
    """Attach an :class:`AuditQueueHandler` with the chosen writers to ``logger`` (root by default).

    ``root_dir`` (else ``AUDIT_LOG_DIR``, else ``.``) holds ``logs/`` (the
    journal), ``audit_log.json``, ``audit_log.csv`` and
    ``training_logs/warnings/``. ``formats`` (else ``AUDIT_LOG_FORMAT``, else
    ``jsonl,json,warnings``) picks the outputs; ``none`` attaches nothing and
    returns ``None``. ``level`` (else ``AUDIT_LOG_LEVEL``, else INFO) is set on
    the handler and, where it is lower, on the logger.

    Calling it again replaces the handler an earlier call attached to the same
    logger (the old one is drained and closed first).
    """
    root = Path(root_dir if root_dir is not None else os.environ.get("AUDIT_LOG_DIR") or ".")
    if formats is None:
        env = os.environ.get("AUDIT_LOG_FORMAT")
        selected = parse_formats(env) if env is not None and env.strip() else list(DEFAULT_FORMATS)
    else:
        selected = parse_formats(formats)
    levelno = _level(level)
    target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)

    for old in list(target.handlers):
        if getattr(old, _CONFIGURED_MARK, False):
            target.removeHandler(old)
            old.close()
    if not selected:
        return None

    handler = AuditQueueHandler([_FACTORIES[name](root) for name in selected], level=levelno)
    setattr(handler, _CONFIGURED_MARK, True)
    target.addHandler(handler)
    if target.level == logging.NOTSET or target.level > levelno:
        target.setLevel(levelno)
    return handler
