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
* A SIGTERM also closes every open :class:`~audit_logging.TrainingRun`
  (it registers itself with :func:`track_run` when it starts): each writes its
  one closing TRAINING_STOPPED line before the pipeline is drained.
* The resume and checkpoint checks (:func:`check_resume_config`,
  :func:`report_checkpoint_corrupted`, :func:`checkpoint_load`) live in
  :mod:`audit_logging.resume` and are importable from here too.

Records go to ``logger``, by default ``logging.getLogger("audit_logging.hooks")``
(propagating to the root logger that :func:`audit_logging.configure` sets up).
The exception's traceback goes into ``details`` as a short list of frames
rather than ``exc_info``: the original excepthook still prints the full
traceback, and console handlers would otherwise print it twice.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
import types
import weakref
from collections.abc import Callable
from typing import Any, Final, Protocol

from audit_logging.resume import (
    MISSING,
    ConfigDifference,
    check_resume_config,
    checkpoint_load,
    report_checkpoint_corrupted,
    type_name,
)
from audit_logging.schema import safe_str

__all__ = [
    "MISSING",
    "ConfigDifference",
    "check_resume_config",
    "checkpoint_load",
    "install_hooks",
    "report_checkpoint_corrupted",
    "track_run",
    "uninstall_hooks",
    "untrack_run",
]

_LOGGER_NAME: Final = "audit_logging.hooks"
_MAX_FRAMES: Final = 20
_MAX_TEXT: Final = 500

_ExceptHook = Callable[[type[BaseException], BaseException, "types.TracebackType | None"], Any]
_ThreadHook = Callable[[Any], Any]
_SignalHandler = Callable[[int, "types.FrameType | None"], Any] | int | signal.Handlers | None


def _logger(logger: logging.Logger | None) -> logging.Logger:
    return logger if logger is not None else logging.getLogger(_LOGGER_NAME)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


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
        name = type_name(exc_type)
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


class _ClosableRun(Protocol):
    def close_on_signal(self, name: str) -> None: ...


# Open training runs, weakly: a run never closed must not be kept alive by us.
_open_runs: weakref.WeakSet[_ClosableRun] = weakref.WeakSet()


def track_run(run: _ClosableRun) -> None:
    """Have a SIGTERM (with :func:`install_hooks`) call ``run.close_on_signal("SIGTERM")``."""
    _open_runs.add(run)


def untrack_run(run: _ClosableRun) -> None:
    """Undo :func:`track_run` (the run has written its closing line)."""
    _open_runs.discard(run)


def _close_runs(name: str) -> None:
    for run in list(_open_runs):
        try:
            run.close_on_signal(name)
        except Exception:
            pass  # the other runs, the warning and the drain still happen


def _sigterm_handler(signum: int, frame: types.FrameType | None) -> None:
    prev = _state.prev_sigterm
    if _state.installed:
        _close_runs("SIGTERM")
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
