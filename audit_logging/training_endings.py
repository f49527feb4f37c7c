"""How a training run ends: the one closing journal line of every ending, and its warning.

:class:`RunEndings` is a part of :class:`audit_logging.training.TrainingRun`
(which inherits it); the endings and their lines are listed in
:mod:`audit_logging.training`. :meth:`RunEndings._close` is the only writer
of a closing line and writes at most one per run, whatever ends it first
(``stop()``, the ``with`` block, an exception, a signal).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from audit_logging import hooks, schema
from audit_logging.detect import Issue, fmt
from audit_logging.training_events import RunEvents, describe_error

__all__ = ["EARLY_STOP", "RunEndings"]

#: The decision of an issue that stops the run, and of the early stop's closing line.
EARLY_STOP = "Early stopping triggered"

_FAILED_RECOMMENDATION = (
    "Read the TRAINING_FAILED journal line (exception and traceback), fix the cause "
    "and restart from the last good checkpoint"
)
_INTERRUPTED_RECOMMENDATION = (
    "If the interruption was not intended, resume from the last checkpoint; "
    "results of this run are incomplete"
)


#: The endings that happen to one rank of a distributed job: each rank writes its own.
_PER_RANK_ENDINGS = frozenset({"failed", "interrupted", "terminated", "exited"})


class RunEndings(RunEvents):
    """The closing of :class:`~audit_logging.training.TrainingRun` (on top of its events)."""

    logger: logging.Logger
    model: str | None
    git_commit: str | None
    ending: str | None
    should_stop: bool
    stop_reason: str | None
    stopped_by: Issue | None
    _stop_call: int | None
    last_step: Any
    last_metrics: Mapping[str, Any]
    calls: int

    @property
    def duration(self) -> float | None:
        raise NotImplementedError

    def _run_facts(self, ending: str) -> dict[str, Any]:
        raise NotImplementedError

    def _warn(
        self, level: int, wtype: str, message: str, recommendation: str, exc: BaseException
    ) -> None:
        self.logger.log(
            level,
            message,
            extra={
                "warning_type": wtype,
                "git_commit": self.git_commit,
                "recommendation": recommendation,
                "details": {
                    "dataset": self.dataset_name,
                    "model": self.model,
                    "exception_type": type(exc).__name__,
                    "exception_message": schema.safe_str(exc),
                    "step": self.last_step,
                    "progress_calls": self.calls,
                    "duration_seconds": self.duration,
                    "last_metrics": dict(self.last_metrics),
                    "session_id": schema.session_id(),
                    "host": schema.HOST,
                },
            },
        )
        hooks.mark_reported(exc)  # install_hooks() would log the same ending again

    def _where(self) -> str:
        return (
            f"at step {self.last_step} after {self.calls} progress calls and {fmt(self.duration)} s"
        )

    def _close(
        self,
        ending: str,
        level: int,
        message: str,
        event: schema.Event,
        decision: str | None,
        reasoning: str,
        exc: BaseException | None = None,
    ) -> bool:
        """Write the one closing line of the run; ``False`` if it was already written."""
        if self.ending is not None:
            return False
        self.ending = ending
        hooks.untrack_run(self)
        failed = event is schema.Event.TRAINING_FAILED
        self._log(
            level,
            message,
            event.value,
            decision,
            reasoning,
            self._run_facts(ending),
            exc_info=exc if failed else None,
            # Completed and stopped are the job's (rank 0); the others happen on a rank.
            per_rank=ending in _PER_RANK_ENDINGS,
        )
        return True

    def _finish(self, exc: BaseException | None) -> None:
        where = self._where()
        model = self.model or "the model"
        Event = schema.Event
        if exc is None:
            first = self.stopped_by
            if first is not None and self._stop_call == self.calls:
                self._close(
                    "early_stopped",
                    logging.INFO,
                    "Training stopped early",
                    Event.TRAINING_COMPLETED,
                    EARLY_STOP,
                    f"Stopped early on the {first.kind} detected at step {first.step}: no "
                    f"progress call followed it ({self.calls} progress calls, "
                    f"{fmt(self.duration)} s). {first.reasoning}",
                )
            elif self._stop_call is not None:
                cause = f"the {first.kind} detected at step {first.step}" if first else "it"
                self._close(
                    "completed",
                    logging.INFO,
                    "Training completed",
                    Event.TRAINING_COMPLETED,
                    None,
                    f"Finished {where}; should_stop was set by {cause} and not acted on: "
                    f"{self.calls - self._stop_call} progress calls followed it.",
                )
            else:
                self._close(
                    "completed",
                    logging.INFO,
                    "Training completed",
                    Event.TRAINING_COMPLETED,
                    None,
                    f"Finished normally {where}.",
                )
        elif isinstance(exc, KeyboardInterrupt):
            if self._close(
                "interrupted",
                logging.WARNING,
                "Training interrupted",
                Event.TRAINING_STOPPED,
                "Training stopped",
                f"Interrupted by the user (KeyboardInterrupt) {where}.",
            ):
                self._warn(
                    logging.WARNING,
                    schema.WarningType.TRAINING_INTERRUPTED.value,
                    f"Training of {model} was interrupted {where}",
                    _INTERRUPTED_RECOMMENDATION,
                    exc,
                )
        elif not isinstance(exc, Exception):  # SystemExit, GeneratorExit: a stop, not a failure
            self._close(
                "exited",
                logging.WARNING,
                "Training stopped",
                Event.TRAINING_STOPPED,
                "Training stopped",
                f"{describe_error(exc)} {where}.",
            )
        else:
            # After stop() the closing line is written: the failure is still a warning file.
            self._close(
                "failed",
                logging.ERROR,
                "Training failed",
                Event.TRAINING_FAILED,
                "Training aborted",
                f"{describe_error(exc)} raised {where}.",
                exc,
            )
            self._warn(
                logging.ERROR,
                schema.WarningType.TRAINING_FAILED.value,
                f"Training of {model} failed: {describe_error(exc)}",
                _FAILED_RECOMMENDATION,
                exc,
            )

    def close_on_signal(self, name: str) -> None:
        """Write the closing line of a run ended by signal ``name`` (called by the SIGTERM hook)."""
        self._close(
            "terminated",
            logging.WARNING,
            "Training terminated",
            schema.Event.TRAINING_STOPPED,
            "Training stopped",
            f"Terminated by {name} {self._where()}.",
        )

    def stop(self, reason: str) -> None:
        """Log TRAINING_STOPPED with ``reason``; the run ends there (no TRAINING_COMPLETED).

        Only the first closing line counts: after it, ``stop`` writes nothing.
        """
        self.should_stop = True
        if self.ending is None:
            self.stop_reason = reason
        self._close(
            "stopped",
            logging.INFO,
            "Training stopped",
            schema.Event.TRAINING_STOPPED,
            "Training stopped",
            reason,
        )
