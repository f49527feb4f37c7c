"""Run hooks: persistent warnings for how a training run ended, resumed, or lost a checkpoint.

* :func:`install_hooks` wraps ``sys.excepthook`` and ``threading.excepthook``
  (an uncaught exception -> ``training_failed``; ``KeyboardInterrupt`` ->
  ``training_interrupted``), and handles SIGTERM: it logs
  ``training_interrupted``, drains the logging pipeline (``flush()`` on every
  live handler: an :class:`~audit_logging.AuditQueueHandler` returns once its
  writers have written what came before), then hands the signal on: to the
  previous Python handler if there was one, else to the default action (the
  process dies of SIGTERM, as it would have without us). Draining first is the
  point: the default action skips ``atexit``, where the queue would otherwise
  be drained. A SIGTERM that was ignored (``SIG_IGN``) stays ignored. The
  previous hooks are always called after ours, so nothing already installed
  (a debugger, an error reporter) is lost. Idempotent; :func:`uninstall_hooks`
  restores the previous hooks where ours are still the ones installed.
* :func:`check_resume_config` compares the saved and the current config and
  logs ``resume_config_mismatch`` with each difference as a dotted path.
* :func:`report_checkpoint_corrupted` and :func:`checkpoint_load` log
  ``checkpoint_corrupted`` with the path, the file size and the error.

Records go to ``logger``, by default ``logging.getLogger("audit_logging.hooks")``
(propagating to the root logger that :func:`audit_logging.configure` sets up).
The exception's traceback goes into ``details`` as a short list of frames
rather than ``exc_info``: the original excepthook still prints the full
traceback, and console handlers would otherwise print it twice.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple

from audit_logging.redact import REDACTED, is_secret_key
from audit_logging.schema import safe_str

__all__ = [
    "MISSING",
    "ConfigDifference",
    "check_resume_config",
    "checkpoint_load",
    "install_hooks",
    "report_checkpoint_corrupted",
    "uninstall_hooks",
]

_LOGGER_NAME: Final = "audit_logging.hooks"
_MAX_FRAMES: Final = 20
_MAX_TEXT: Final = 500
_MAX_DIFFERENCES: Final = 200

_ExceptHook = Callable[[type[BaseException], BaseException, "types.TracebackType | None"], Any]
_ThreadHook = Callable[[Any], Any]
_SignalHandler = Callable[[int, "types.FrameType | None"], Any] | int | signal.Handlers | None


def _logger(logger: logging.Logger | None) -> logging.Logger:
    return logger if logger is not None else logging.getLogger(_LOGGER_NAME)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _type_name(exc_type: type[BaseException]) -> str:
    module = exc_type.__module__
    return exc_type.__qualname__ if module == "builtins" else f"{module}.{exc_type.__qualname__}"


def traceback_summary(tb: types.TracebackType | None, limit: int = _MAX_FRAMES) -> list[str]:
    """The innermost ``limit`` frames of ``tb`` as ``"file:line in function"`` strings."""
    try:
        frames = traceback.extract_tb(tb)[-limit:]
    except Exception:
        return []
    return [f"{f.filename}:{f.lineno} in {f.name}" for f in frames]


# --------------------------------------------------------------------------- exceptions


#: Set on an exception whose ending is already logged (by :class:`~audit_logging.TrainingRun`),
#: so that the hooks do not log it a second time when it reaches them.
_REPORTED: Final = "__audit_logging_reported__"


def mark_reported(exc: BaseException) -> None:
    """Tell :func:`log_exception` that ``exc``'s warning is already logged."""
    try:
        setattr(exc, _REPORTED, True)
    except Exception:
        pass  # an exception type that takes no attributes: logged twice, not lost


def log_exception(
    exc_type: type[BaseException],
    exc: BaseException | None,
    tb: types.TracebackType | None,
    logger: logging.Logger | None = None,
    thread: str | None = None,
) -> None:
    """Log ``training_interrupted`` (KeyboardInterrupt) or ``training_failed``; never raises."""
    try:
        if getattr(exc, _REPORTED, False):
            return
        log = _logger(logger)
        name = _type_name(exc_type)
        text = _short(safe_str(exc)) if exc is not None else ""
        details: dict[str, Any] = {"exception_type": name, "exception": text}
        if thread is not None:
            details["thread"] = thread
        details["traceback"] = traceback_summary(tb)
        if issubclass(exc_type, KeyboardInterrupt):
            log.info(
                "Training interrupted (KeyboardInterrupt)",
                extra={
                    "warning_type": "training_interrupted",
                    "details": details,
                    "recommendation": "Resume from the last checkpoint if the stop was not meant",
                },
            )
        else:
            log.error(
                "Training failed: %s%s",
                name,
                f": {text}" if text else "",
                extra={
                    "warning_type": "training_failed",
                    "details": details,
                    "recommendation": "Fix the error, then resume from the last checkpoint",
                },
            )
    except Exception:
        pass  # the hook must still chain to the previous one


class _State:
    def __init__(self) -> None:
        self.installed = False
        self.logger: logging.Logger | None = None
        self.prev_excepthook: _ExceptHook | None = None
        self.prev_threading_hook: _ThreadHook | None = None
        self.prev_sigterm: _SignalHandler = None
        self.sigterm_installed = False


_state = _State()
_install_lock = threading.Lock()


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: types.TracebackType | None
) -> None:
    if _state.installed:
        log_exception(exc_type, exc, tb, _state.logger)
    prev = _state.prev_excepthook or sys.__excepthook__
    prev(exc_type, exc, tb)


def _threading_excepthook(args: Any) -> None:
    if _state.installed and not issubclass(args.exc_type, SystemExit):
        thread = args.thread.name if args.thread is not None else None
        log_exception(args.exc_type, args.exc_value, args.exc_traceback, _state.logger, thread)
    prev = _state.prev_threading_hook or threading.__excepthook__
    prev(args)


def drain_logging() -> None:
    """``flush()`` every live logging handler: queued audit records are written when it returns."""
    for ref in list(getattr(logging, "_handlerList", [])):
        handler = ref() if callable(ref) else None
        if handler is None:
            continue
        try:
            handler.flush()
        except Exception:
            pass


def _sigterm_handler(signum: int, frame: types.FrameType | None) -> None:
    prev = _state.prev_sigterm
    if _state.installed:
        try:
            _logger(_state.logger).info(
                "Training interrupted (SIGTERM)",
                extra={
                    "warning_type": "training_interrupted",
                    "details": {"signal": "SIGTERM", "pid": os.getpid()},
                    "recommendation": "Resume from the last checkpoint if the stop was not meant",
                },
            )
        except Exception:
            pass
        drain_logging()
    if callable(prev):
        prev(signum, frame)
        return
    # The default action, as if we had never been here: die of SIGTERM.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_hooks(logger: logging.Logger | None = None) -> None:
    """Log how the run ends: uncaught exceptions, KeyboardInterrupt and SIGTERM (see module docs).

    Chains to the hooks already installed. Calling it again only changes the
    logger. SIGTERM is handled only when called from the main thread (Python
    delivers signals there) and when SIGTERM was not set to be ignored.
    """
    with _install_lock:
        _state.logger = logger
        if _state.installed:
            return
        if sys.excepthook is not _excepthook:
            _state.prev_excepthook = sys.excepthook
            sys.excepthook = _excepthook
        if threading.excepthook is not _threading_excepthook:
            _state.prev_threading_hook = threading.excepthook
            threading.excepthook = _threading_excepthook
        _install_sigterm()
        _state.installed = True


def _install_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is signal.SIG_IGN or current is _sigterm_handler:
            return
        _state.prev_sigterm = current
        signal.signal(signal.SIGTERM, _sigterm_handler)
        _state.sigterm_installed = True
    except (ValueError, OSError, AttributeError):
        pass  # no SIGTERM here, or not allowed: the exception hooks still work


def uninstall_hooks() -> None:
    """Undo :func:`install_hooks`; hooks installed on top of ours keep working (ours pass on)."""
    with _install_lock:
        if not _state.installed:
            return
        _state.installed = False
        if sys.excepthook is _excepthook:
            sys.excepthook = _state.prev_excepthook or sys.__excepthook__
            _state.prev_excepthook = None
        if threading.excepthook is _threading_excepthook:
            threading.excepthook = _state.prev_threading_hook or threading.__excepthook__
            _state.prev_threading_hook = None
        if _state.sigterm_installed and threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGTERM) is _sigterm_handler:
                    prev = _state.prev_sigterm
                    signal.signal(signal.SIGTERM, prev if prev is not None else signal.SIG_DFL)
                    _state.prev_sigterm = None
                    _state.sigterm_installed = False
            except (ValueError, OSError):
                pass


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
            error_type: str | None = _type_name(type(error))
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
