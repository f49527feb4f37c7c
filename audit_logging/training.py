"""TrainingRun: the journal events of one training run, with decisions, reasons and issues.

::

    with TrainingRun(logger=log, dataset="churn.csv", model="RandomForest") as run:
        run.decide("ALGORITHM_SELECTED", "Baseline model selection",
                   reasoning="tabular, 12000 rows, class ratio 0.82")
        run.hyperparameters({"n_estimators": 200, "max_depth": None}, defaults_used=["max_depth"])
        for epoch in range(50):
            ...
            run.progress(step=epoch, train_loss=tl, val_loss=vl)
            if run.should_stop:          # a plateau: "Early stopping triggered"
                break
        run.evaluated(accuracy=0.84, f1_score=0.80)
        run.saved("model.pkl")

What is written, and why it is built this way:

* Only ``logging`` calls (``logger.info(msg, extra={"event": ...})``), like
  any user code: the handlers the application configured decide where the
  records go, and this module imports no writer. Journal records carry
  ``event, dataset, model, decision, reasoning, metrics_snapshot``; the two
  persistent warnings (``training_failed``, ``training_interrupted``) are
  *separate* records carrying ``warning_type`` and ``details`` and no
  ``event``, so each reaches its own writer once.
* The default logger is ``logging.getLogger("audit_logging.training")``: a
  child of ``audit_logging``, so it propagates to the root logger that
  :func:`audit_logging.configure` sets up, and can be routed or silenced by name.
* Entering logs TRAINING_STARTED with the session id, host, pid and, when
  readable, the git commit and whether the working tree is dirty (read with
  :func:`audit_logging.probes.git.check_git`, which ignores the output folders
  of the configured writers). The probe's ``dirty_git`` warning is written
  only with ``warn_dirty_git=True``: whether a dirty tree deserves a
  persistent warning file is the application's choice (it calls
  ``check_git`` itself, usually once per process). The dirty flag is still in
  the journal line.
* Every ending writes exactly one closing line with the reason, the last
  metrics, the duration and ``ending`` in ``metrics_snapshot``:
  ``completed`` and ``early_stopped`` (TRAINING_COMPLETED), ``failed``
  (TRAINING_FAILED, traceback in ``exception``, plus a ``training_failed``
  warning; the exception propagates), ``interrupted`` (Ctrl-C:
  TRAINING_STOPPED plus a ``training_interrupted`` warning), ``terminated``
  (SIGTERM while :func:`audit_logging.install_hooks` is installed:
  TRAINING_STOPPED, the hook writes the warning), ``stopped``
  (:meth:`TrainingRun.stop`) and ``exited`` (``SystemExit``). Whether
  :attr:`~TrainingRun.should_stop` was acted on is decided from what the run
  can see: no :meth:`~TrainingRun.progress` call after it became true, then
  the run closed; the line says what was seen.
* :meth:`TrainingRun.progress` feeds every call to an
  :class:`~audit_logging.detect.IssueDetector`. A TRAINING_PROGRESS line is
  written for every call carrying a validation metric (a name starting with
  ``val_``, or listed in ``validation_metrics``): evaluations are rare and are
  what an auditor checks. Training-only calls write a line every
  ``progress_every`` calls (default 100) or when ``progress_seconds`` (default
  30) have passed since the last line, and always when an issue is logged.
  The calls in between are not lost: the next line (and the closing line)
  carries their summary, see :meth:`TrainingRun.progress`. A call that writes
  no line costs a few microseconds (see the README for measured numbers).
* The same kind of issue is logged again only once its episode ended (see
  :mod:`audit_logging.detect`: hysteresis) *and* at least ``progress_every``
  progress calls after its previous line; episodes that start sooner are
  counted, and the count is in the closing line (``issues_detected`` /
  ``issues_logged``).
* In a distributed job every rank runs this code: run-level lines come from
  global rank 0 only, per-rank ones (a failure, a divergence, an interruption,
  a signal, an exit, their warnings) from the rank where they happen
  (:mod:`audit_logging.context`). Nothing here calls a collective.
* Nothing is invented: each number written is a value the caller passed, a
  count or size of what was read, a clock reading, or a named result of those.
* Logging must not stop training: failures to read a file are reported in the
  journal (at WARNING) instead of raised, and the exit handler never replaces
  the training's own exception.
"""

from __future__ import annotations

import logging
import math
import os
import time
import types
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from audit_logging import context, hooks, schema
from audit_logging.detect import Issue, IssueDetector
from audit_logging.detect_common import FLAGGED
from audit_logging.probes.git import check_git
from audit_logging.training_endings import EARLY_STOP, RunEndings
from audit_logging.training_files import DatasetInfo, file_sha256, scan_csv
from audit_logging.training_summary import FOLD, Summary

__all__ = ["DatasetInfo", "TrainingRun", "file_sha256", "scan_csv"]

_LOGGER_NAME = "audit_logging.training"
_NO_ISSUES: tuple[Issue, ...] = ()


def __getattr__(name: str) -> Any:
    # The demo sits above this module (audit_logging.demo); kept importable from here.
    if name == "run_demo_training":
        from audit_logging.demo import run_demo_training

        return run_demo_training
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _git_facts(path: str | os.PathLike[str], warn_logger: logging.Logger | None) -> dict[str, Any]:
    """Commit, branch and dirty flag from the git probe (which logs ``dirty_git`` to
    ``warn_logger``, if given), or the reason they are unknown."""
    status = check_git(path, logger=warn_logger, warn=warn_logger is not None)
    if status.commit is None:
        return {"git_commit": None, "git_unknown_reason": status.reason}
    return {"git_commit": status.commit, "git_branch": status.branch, "git_dirty": status.dirty}


class TrainingRun(RunEndings):
    """A context manager logging the journal events of one training run.

    Parameters:

    ``logger``
        a :class:`logging.Logger` or a logger name; default
        ``logging.getLogger("audit_logging.training")``.
    ``dataset``, ``model``
        names written in the ``dataset`` and ``model`` field of every line.
    ``progress_every``, ``progress_seconds``
        a TRAINING_PROGRESS line of a training-only call is written every
        ``progress_every`` calls of :meth:`progress` or when
        ``progress_seconds`` have passed since the last line, whichever comes
        first (the first call always writes one); a call carrying a validation
        metric always writes one.
    ``validation_metrics``
        names of metrics computed on held-out data besides the ``val_*`` ones
        (``eval_loss``, ``test_auc``, ...).
    ``detector``
        an :class:`~audit_logging.detect.IssueDetector`, a dict of its
        parameters, ``None`` for the defaults, or ``False`` for no detection.
    ``stop_on``
        issue kinds that set :attr:`should_stop` and are logged with the
        decision "Early stopping triggered" (default: plateau only).
    ``git``
        where to look for the repository of the commit (default ``"."``);
        ``None`` to not look.
    ``warn_dirty_git``
        let the git probe log its ``dirty_git`` warning to this run's logger.
    ``clock``
        the monotonic clock for durations and ``progress_seconds``.
    """

    def __init__(
        self,
        logger: logging.Logger | str | None = None,
        dataset: str | None = None,
        model: str | None = None,
        *,
        progress_every: int = 100,
        progress_seconds: float = 30.0,
        validation_metrics: Iterable[str] = (),
        detector: IssueDetector | Mapping[str, Any] | bool | None = None,
        stop_on: Iterable[str] = ("plateau",),
        git: str | os.PathLike[str] | None = ".",
        warn_dirty_git: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if progress_every < 1:
            raise ValueError(f"progress_every must be at least 1, got {progress_every}")
        if isinstance(logger, str) or logger is None:
            logger = logging.getLogger(logger or _LOGGER_NAME)
        self.logger = logger
        self.dataset_name = dataset
        self.model = model
        self.progress_every = progress_every
        self.progress_seconds = progress_seconds
        self.validation_metrics = frozenset(validation_metrics)
        if detector is None or detector is True:
            detector = IssueDetector()
        elif isinstance(detector, Mapping):
            detector = IssueDetector(**detector)
        self.detector: IssueDetector | None = detector or None
        self.stop_on = frozenset(stop_on)
        self.git_path = git
        self.warn_dirty_git = warn_dirty_git
        self._clock = clock
        self.should_stop = False
        #: The issues detected so far (the most recent 100), and per kind the
        #: episodes detected and the ones logged (at most one line per
        #: ``progress_every`` progress calls and kind).
        self.issues: deque[Issue] = deque(maxlen=100)
        self.issue_counts: Counter[str] = Counter()
        self.issues_logged: Counter[str] = Counter()
        self._issue_call: dict[str, int] = {}
        #: The issue that set :attr:`should_stop` first (kept: :attr:`issues` keeps the last 100).
        self.stopped_by: Issue | None = None
        self.stop_reason: str | None = None
        self._stop_call: int | None = None  # the progress call count when should_stop was set
        self.git_commit: str | None = None
        self.last_step: Any = None
        self.last_metrics: Mapping[str, Any] = {}
        self.calls = 0
        #: How the run ended (``None`` while it runs); see the module docstring.
        self.ending: str | None = None
        self._next_step: Any = 0
        self._since_line = progress_every  # so that the first call writes a line
        self._last_line = -math.inf
        self._pending = Summary()
        self._validation_keys: dict[tuple[str, ...], bool] = {}
        self._started: float | None = None

    # ------------------------------------------------------------------ helpers

    def _log(
        self,
        level: int,
        message: str,
        event: str,
        decision: str | None = None,
        reasoning: str | None = None,
        metrics: dict[str, Any] | None = None,
        args: tuple[Any, ...] = (),
        *,
        per_rank: bool = False,
        **kwargs: Any,
    ) -> None:
        # Every rank runs this: run-level lines from global rank 0 only (module docs).
        if not per_rank and not context.is_global_zero():
            return
        self.logger.log(
            level,
            message,
            *args,
            extra={
                "event": event,
                "dataset": self.dataset_name,
                "model": self.model,
                "decision": decision,
                "reasoning": reasoning,
                # Built here for each line (decide() copies the caller's mapping).
                "metrics_snapshot": metrics,
            },
            **kwargs,
        )

    @property
    def duration(self) -> float | None:
        """Seconds since the run was entered (``None`` before)."""
        return None if self._started is None else self._clock() - self._started

    def _run_facts(self, ending: str) -> dict[str, Any]:
        facts: dict[str, Any] = dict(self.last_metrics)
        facts["step"] = self.last_step
        facts["progress_calls"] = self.calls
        facts["duration_seconds"] = self.duration
        facts["ending"] = ending
        if self.issue_counts:
            facts["issues_detected"] = dict(self.issue_counts)
            facts["issues_logged"] = dict(self.issues_logged)
        summary = self._pending.take()
        if summary is not None:
            facts["since_last_line"] = summary
        return facts

    # ------------------------------------------------------------------ context

    def __enter__(self) -> TrainingRun:
        self.start()
        return self

    def start(self) -> None:
        """Log TRAINING_STARTED (called by ``with``)."""
        self._started = self._clock()
        facts: dict[str, Any] = {
            "session_id": schema.session_id(),
            "host": schema.HOST,
            "pid": os.getpid(),
        }
        if self.git_path is not None:
            warn = self.logger if self.warn_dirty_git else None
            facts.update(_git_facts(self.git_path, warn))
            self.git_commit = facts.get("git_commit")
        parts = [f"Session {facts['session_id']} on host {facts['host']} (pid {facts['pid']})"]
        if self.git_commit is not None:
            dirty = facts.get("git_dirty")
            state = (
                "dirty working tree"
                if dirty is True
                else "clean working tree"
                if dirty is False
                else "working tree state unknown"
            )
            parts.append(f"at git commit {self.git_commit} ({state})")
        elif self.git_path is not None:
            parts.append(f"git commit unknown ({facts.get('git_unknown_reason')})")
        self._log(
            logging.INFO,
            "Training started",
            schema.Event.TRAINING_STARTED.value,
            reasoning=", ".join(parts) + ".",
            metrics=facts,
        )
        hooks.track_run(self)  # so that a SIGTERM closes it (install_hooks)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        try:
            self._finish(exc)
        except Exception:  # never replace the training's own outcome
            logging.getLogger(_LOGGER_NAME).debug("TrainingRun exit logging failed", exc_info=True)

    # ------------------------------------------------------------------ progress

    def progress(self, step: Any = None, **metrics: Any) -> Sequence[Issue]:
        """Record the metrics of one step; return the issues that start at this step.

        Every call is seen by the detector. A TRAINING_PROGRESS line is written
        when the call carries a validation metric, when an issue is logged, and
        otherwise as ``progress_every`` / ``progress_seconds`` allow. Its
        ``metrics_snapshot`` holds ``step`` and this call's metrics as given;
        when calls wrote no line since the previous one, it also holds
        ``since_last_line``: ``{"calls", "first_step", "last_step",
        "metrics": {name: {"count", "min", "max", "mean", "last"}}}`` over
        those calls (``count``, ``min``, ``max``, ``mean`` over the finite
        numbers; ``last`` the last value as given). ``step`` defaults to the
        previous step + 1 (from 0).
        """
        if step is None:
            step = self._next_step
        try:
            self._next_step = step + 1
        except TypeError:
            pass
        self.calls += 1
        self.last_step = step
        self.last_metrics = metrics
        detector = self.detector
        issues = detector.update(metrics, step) if detector is not None else _NO_ISSUES
        self._since_line += 1
        keys = tuple(metrics)
        validation = self._validation_keys.get(keys)
        if validation is None:
            validation = self._validation_keys[keys] = any(
                k.startswith("val_") or k in self.validation_metrics for k in keys
            )
        logged = self._admit(issues) if issues else _NO_ISSUES
        if logged or validation or self._since_line >= self.progress_every:
            self._write_progress(step, metrics, logged, self._clock())
        elif self.progress_seconds != math.inf and (
            (now := self._clock()) - self._last_line >= self.progress_seconds
        ):
            self._write_progress(step, metrics, logged, now)
        else:
            pending = self._pending  # Summary.add, inline: this is the hot path
            pending.steps.append(step)
            pending.metrics.append(metrics)
            if self._since_line >= FOLD and not self._since_line % FOLD:
                pending.fold()
        return issues

    def _admit(self, issues: Sequence[Issue]) -> Sequence[Issue]:
        """The issues to log now: at most one line per kind every ``progress_every`` calls."""
        logged = []
        for issue in issues:
            last = self._issue_call.get(issue.kind)
            self._account(issue)
            if last is None or self.calls - last >= self.progress_every:
                self._issue_call[issue.kind] = self.calls
                logged.append(issue)
        return logged

    def _account(self, issue: Issue) -> bool:
        """Count ``issue``; set :attr:`should_stop` if it stops; ``True`` when it does."""
        self.issues.append(issue)
        self.issue_counts[issue.kind] += 1
        stops = issue.kind in self.stop_on or any(k in self.stop_on for k in issue.also_matched)
        if stops:
            if not self.should_stop:
                self._stop_call = self.calls
            self.should_stop = True
            if self.stopped_by is None:
                self.stopped_by = issue
        return stops

    def _write_progress(
        self, step: Any, metrics: Mapping[str, Any], issues: Sequence[Issue], now: float
    ) -> None:
        self._since_line = 0
        self._last_line = now
        snapshot = {"step": step, **metrics}
        summary = self._pending.take()
        if summary is not None:
            snapshot["since_last_line"] = summary
        self._log(
            logging.INFO,
            "Training progress at step %s",  # merged on the listener, not in the training loop
            schema.Event.TRAINING_PROGRESS.value,
            metrics=snapshot,
            args=(step,),
        )
        for issue in issues:
            self._write_issue(issue)

    def report(self, issue: Issue) -> None:
        """Log ISSUE_DETECTED for ``issue`` (called by :meth:`progress`; usable on its own)."""
        self._account(issue)
        self._write_issue(issue)

    def _write_issue(self, issue: Issue) -> None:
        stops = issue.kind in self.stop_on or any(k in self.stop_on for k in issue.also_matched)
        self.issues_logged[issue.kind] += 1
        self._log(
            logging.WARNING,
            f"Issue detected: {issue.kind} at step {issue.step}",
            schema.Event.ISSUE_DETECTED.value,
            EARLY_STOP if stops else FLAGGED,
            f"{issue.reasoning} Probable cause: {issue.probable_cause}.",
            issue.snapshot(),
            # A divergence (NaN, inf, a loss blowing up) is this rank's own loss.
            per_rank=issue.kind == "divergence",
        )
