"""Resume and checkpoint checks: persistent warnings for a run that resumes differently
or cannot load its checkpoint.

* :func:`check_resume_config` compares the saved and the current config and
  logs ``resume_config_mismatch`` with each difference as a dotted path.
* :func:`report_checkpoint_corrupted` and :func:`checkpoint_load` log
  ``checkpoint_corrupted`` with the path, the file size and the error.

Records go to ``logger``, by default ``logging.getLogger("audit_logging.hooks")``
(the logger of :mod:`audit_logging.hooks`, where these names are also importable).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple

from audit_logging.redact import REDACTED, is_secret_key
from audit_logging.schema import safe_str

__all__ = [
    "MISSING",
    "ConfigDifference",
    "check_resume_config",
    "checkpoint_load",
    "report_checkpoint_corrupted",
]

_LOGGER_NAME: Final = "audit_logging.hooks"
_MAX_TEXT: Final = 500
_MAX_DIFFERENCES: Final = 200


def _logger(logger: logging.Logger | None) -> logging.Logger:
    return logger if logger is not None else logging.getLogger(_LOGGER_NAME)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def type_name(exc_type: type[BaseException]) -> str:
    """The qualified name of an exception type (without ``builtins.``)."""
    module = exc_type.__module__
    return exc_type.__qualname__ if module == "builtins" else f"{module}.{exc_type.__qualname__}"


# --------------------------------------------------------------------------- resume config


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


#: Stands for a key present on one side only of a :class:`ConfigDifference`.
MISSING: Final = _Missing()


class ConfigDifference(NamedTuple):
    """One difference between two configs: ``old``/``new`` is :data:`MISSING` if absent there."""

    path: str
    old: Any
    new: Any


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except Exception:  # numpy arrays and other objects whose == is not a bool
        from audit_logging.schema import to_jsonable

        return bool(to_jsonable(a) == to_jsonable(b))


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _diff(old: Any, new: Any, path: str, out: list[ConfigDifference]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = list(old) + [k for k in new if k not in old]
        for key in keys:
            sub = f"{path}.{key}" if path else str(key)
            _diff(old.get(key, MISSING), new.get(key, MISSING), sub, out)
        return
    if _is_sequence(old) and _is_sequence(new) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff(a, b, f"{path}.{i}" if path else str(i), out)
        return
    if old is MISSING or new is MISSING or not _equal(old, new):
        out.append(ConfigDifference(path, old, new))


def check_resume_config(
    saved: Mapping[str, Any], current: Mapping[str, Any], logger: logging.Logger | None = None
) -> list[ConfigDifference]:
    """The differences between a run's saved config and the one it resumes with.

    Nested mappings (and lists of the same length) are compared item by item;
    each difference is named by its dotted path (``optimizer.lr``,
    ``layers.0.size``). When there is any, logs ``resume_config_mismatch`` with
    them in ``details`` (a key absent on one side has no ``old`` or ``new``).
    """
    differences: list[ConfigDifference] = []
    _diff(saved, current, "", differences)
    if differences:
        listed = []
        for d in differences[:_MAX_DIFFERENCES]:
            item: dict[str, Any] = {"path": d.path}
            # The values travel under "old"/"new": redact by the config key they came from.
            secret = is_secret_key(d.path.rsplit(".", 1)[-1])
            if d.old is not MISSING:
                item["old"] = REDACTED if secret else d.old
            if d.new is not MISSING:
                item["new"] = REDACTED if secret else d.new
            item["change"] = (
                "added" if d.old is MISSING else "removed" if d.new is MISSING else "changed"
            )
            listed.append(item)
        paths = ", ".join(d.path for d in differences[:10])
        more = f" and {len(differences) - 10} more" if len(differences) > 10 else ""
        try:
            _logger(logger).warning(
                "Resuming with a different config: %s%s",
                paths,
                more,
                extra={
                    "warning_type": "resume_config_mismatch",
                    "details": {"count": len(differences), "differences": listed},
                    "recommendation": (
                        "Resume with the config the checkpoint was saved with, or start a new run"
                    ),
                },
            )
        except Exception:
            pass
    return differences


# --------------------------------------------------------------------------- checkpoints


def report_checkpoint_corrupted(
    path: str | os.PathLike[str], error: BaseException | str, logger: logging.Logger | None = None
) -> None:
    """Log ``checkpoint_corrupted`` for ``path`` (its size, or that it is missing) and ``error``."""
    try:
        fspath = os.fspath(path)
        try:
            size: int | None = os.stat(fspath).st_size
        except OSError:
            size = None
        if isinstance(error, BaseException):
            error_type: str | None = type_name(type(error))
            text = _short(safe_str(error))
        else:
            error_type, text = None, _short(str(error))
        _logger(logger).error(
            "Checkpoint failed to load: %s",
            fspath,
            extra={
                "warning_type": "checkpoint_corrupted",
                "details": {
                    "path": os.path.abspath(fspath),
                    "exists": size is not None,
                    "size": size,
                    "error_type": error_type,
                    "error": text,
                },
                "recommendation": (
                    "Restore the checkpoint from a backup or resume from an earlier one"
                ),
            },
        )
    except Exception:
        pass


@contextlib.contextmanager
def checkpoint_load(
    path: str | os.PathLike[str], logger: logging.Logger | None = None
) -> Iterator[None]:
    """Report ``checkpoint_corrupted`` if loading inside the block raises, then re-raise::

    with audit_logging.checkpoint_load(path):
        state = torch.load(path)
    """
    try:
        yield
    except Exception as exc:  # not KeyboardInterrupt/SystemExit: those are no corruption
        report_checkpoint_corrupted(path, exc, logger)
        raise
