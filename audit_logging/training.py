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
  readable, the git commit and whether the working tree is dirty. The commit
  is read with :func:`audit_logging.probes.git.check_git`, imported lazily
  (without the probe or gitpython the commit is simply ``null``). That probe
  logs a ``dirty_git`` warning for a dirty tree; TrainingRun hands it a
  private silent logger unless ``warn_dirty_git=True``, because whether a
  dirty tree deserves a persistent warning file is the application's choice
  (it calls ``check_git`` itself, usually once per process), not a side
  effect of starting a run. The dirty flag is still in the journal line.
* Leaving: normally, TRAINING_COMPLETED with the last metrics and the
  duration (nothing more after an explicit :meth:`TrainingRun.stop`, whose
  TRAINING_STOPPED line ends the run); on an exception, TRAINING_FAILED
  (type and message in ``reasoning``, traceback in ``exception``) plus a
  ``training_failed`` warning, then the exception propagates; on
  ``KeyboardInterrupt``, TRAINING_STOPPED plus a ``training_interrupted``
  warning, then it propagates.
* :meth:`TrainingRun.progress` feeds every call to an
  :class:`~audit_logging.detect.IssueDetector` and writes a TRAINING_PROGRESS
  line only every ``progress_every`` calls (default 100) or when
  ``progress_seconds`` (default 30) have passed since the last line,
  whichever comes first, and always when an issue starts (followed by its
  ISSUE_DETECTED line). For a 100k-step run that is about 1000 lines, and a
  slow run still shows a heartbeat twice a minute. A call that writes no line
  costs a few microseconds (see the README for measured numbers).
* Files given to :meth:`~TrainingRun.dataset` and :meth:`~TrainingRun.saved`
  are streamed in 1 MiB chunks (the CSV through :mod:`csv` over the same
  hashing stream, so a file is read once), never loaded whole.
* Nothing is invented: each number written is a value the caller passed, a
  count or size of what was read, a clock reading, or a named result of those.
* Logging must not stop training: failures to read a file are reported in the
  journal (at WARNING) instead of raised, and the exit handler never replaces
  the training's own exception.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
import random
import time
import types
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from audit_logging import hooks, schema
from audit_logging.detect import Issue, IssueDetector, fmt, metric_mode
from audit_logging.probes.git import check_git

__all__ = ["DatasetInfo", "TrainingRun", "run_demo_training"]

_LOGGER_NAME = "audit_logging.training"
_CHUNK = 1024 * 1024
_NO_ISSUES: tuple[Issue, ...] = ()

_FAILED_RECOMMENDATION = (
    "Read the TRAINING_FAILED journal line (exception and traceback), fix the cause "
    "and restart from the last good checkpoint"
)
_INTERRUPTED_RECOMMENDATION = (
    "If the interruption was not intended, resume from the last checkpoint; "
    "results of this run are incomplete"
)


@dataclass(frozen=True)
class DatasetInfo:
    """What :meth:`TrainingRun.dataset` read from a CSV file."""

    path: str
    size_bytes: int
    sha256: str
    rows: int | None
    columns: int | None
    ragged_rows: int | None
    error: str | None = None


class _HashingRaw(io.RawIOBase):
    """A raw stream that hashes and counts the bytes read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n: int = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.digest.update(memoryview(buffer)[:n])
            self.size += n
        return n


def file_sha256(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


def scan_csv(path: str | os.PathLike[str], encoding: str = "utf-8-sig") -> DatasetInfo:
    """Rows, columns, size and SHA-256 of a CSV file, in one streaming pass.

    ``rows`` excludes the header and blank lines; ``ragged_rows`` counts rows
    whose number of fields differs from the header's. A file that the
    :mod:`csv` module cannot parse still gets its size and hash, with the
    parse error in ``error``. Raises ``OSError`` when the file cannot be read.
    """
    with open(path, "rb", buffering=0) as raw:
        hashing = _HashingRaw(raw)
        buffered = io.BufferedReader(hashing, _CHUNK)
        text = io.TextIOWrapper(buffered, encoding=encoding, errors="replace", newline="")
        rows = columns = ragged = 0
        error: str | None = None
        try:
            reader = csv.reader(text)
            header = next(reader, None)
            columns = len(header) if header is not None else 0
            for row in reader:
                if not row:
                    continue
                rows += 1
                if len(row) != columns:
                    ragged += 1
        except (csv.Error, UnicodeError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        # Hash whatever the parser did not consume (all of it after a parse error).
        while buffered.read(_CHUNK):
            pass
        text.detach()
    if error is not None:
        return DatasetInfo(
            os.fspath(path), hashing.size, hashing.digest.hexdigest(), None, None, None, error
        )
    return DatasetInfo(
        os.fspath(path), hashing.size, hashing.digest.hexdigest(), rows, columns, ragged
    )


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {schema.safe_str(exc)}"


def _git_facts(path: str | os.PathLike[str], warn_logger: logging.Logger | None) -> dict[str, Any]:
    """Commit, branch and dirty flag from the git probe (which logs ``dirty_git`` to
    ``warn_logger``, if given), or the reason they are unknown."""
    status = check_git(path, logger=warn_logger, warn=warn_logger is not None)
    if status.commit is None:
        return {"git_commit": None, "git_unknown_reason": status.reason}
    return {"git_commit": status.commit, "git_branch": status.branch, "git_dirty": status.dirty}


class TrainingRun:
    """A context manager logging the journal events of one training run.

    Parameters:

    ``logger``
        a :class:`logging.Logger` or a logger name; default
        ``logging.getLogger("audit_logging.training")``.
    ``dataset``, ``model``
        names written in the ``dataset`` and ``model`` field of every line.
    ``progress_every``, ``progress_seconds``
        a TRAINING_PROGRESS line is written every ``progress_every`` calls of
        :meth:`progress` or when ``progress_seconds`` have passed since the
        last one, whichever comes first (the first call always writes one).
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
        #: The issues reported so far (the most recent 100) and a count per kind.
        self.issues: deque[Issue] = deque(maxlen=100)
        self.issue_counts: Counter[str] = Counter()
        #: The issue that set :attr:`should_stop` first (kept: :attr:`issues` keeps the last 100).
        self.stopped_by: Issue | None = None
        self.stop_reason: str | None = None
        self.git_commit: str | None = None
        self.last_step: Any = None
        self.last_metrics: Mapping[str, Any] = {}
        self.calls = 0
        self._next_step: Any = 0
        self._since_line = progress_every  # so that the first call writes a line
        self._last_line = -math.inf
        self._started: float | None = None
        self._ended = False

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
        **kwargs: Any,
    ) -> None:
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

    def _run_facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = dict(self.last_metrics)
        facts["step"] = self.last_step
        facts["progress_calls"] = self.calls
        facts["duration_seconds"] = self.duration
        return facts

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

    def _finish(self, exc: BaseException | None) -> None:
        if self._ended and exc is None:
            return
        self._ended = True
        where = (
            f"at step {self.last_step} after {self.calls} progress calls and {fmt(self.duration)} s"
        )
        model = self.model or "the model"
        # The journal line (level, message, event, decision, reasoning) and the warning, if any.
        warning: tuple[int, str, str, str] | None = None
        if exc is None:
            first = self.stopped_by
            reasoning = f"Finished normally {where}."
            if first is not None:
                reasoning += (
                    f" Stopped early on the {first.kind} detected at step {first.step}: "
                    f"{first.reasoning}"
                )
            line = (
                logging.INFO,
                "Training completed",
                schema.Event.TRAINING_COMPLETED.value,
                "Early stopping triggered" if first is not None else None,
                reasoning,
            )
        elif isinstance(exc, KeyboardInterrupt):
            line = (
                logging.WARNING,
                "Training interrupted",
                schema.Event.TRAINING_STOPPED.value,
                "Training stopped",
                f"Interrupted by the user (KeyboardInterrupt) {where}.",
            )
            warning = (
                logging.WARNING,
                schema.WarningType.TRAINING_INTERRUPTED.value,
                f"Training of {model} was interrupted {where}",
                _INTERRUPTED_RECOMMENDATION,
            )
        elif not isinstance(exc, Exception):  # SystemExit, GeneratorExit: a stop, not a failure
            line = (
                logging.WARNING,
                "Training stopped",
                schema.Event.TRAINING_STOPPED.value,
                "Training stopped",
                f"{_describe_error(exc)} {where}.",
            )
        else:
            line = (
                logging.ERROR,
                "Training failed",
                schema.Event.TRAINING_FAILED.value,
                "Training aborted",
                f"{_describe_error(exc)} raised {where}.",
            )
            warning = (
                logging.ERROR,
                schema.WarningType.TRAINING_FAILED.value,
                f"Training of {model} failed: {_describe_error(exc)}",
                _FAILED_RECOMMENDATION,
            )
        failed = line[2] == schema.Event.TRAINING_FAILED.value
        self._log(*line, metrics=self._run_facts(), exc_info=exc if failed else None)
        if warning is not None and exc is not None:
            self._warn(*warning, exc)

    # ------------------------------------------------------------------ events

    def decide(
        self,
        event: str | schema.Event,
        decision: str,
        *,
        reasoning: str,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """Log a decision (ALGORITHM_SELECTED, DATASET_PREPROCESSED, ...) with its reasoning."""
        name = event.value if isinstance(event, schema.Event) else event
        snapshot = dict(metrics) if metrics is not None else None  # the caller may reuse it
        self._log(logging.INFO, decision, name, decision, reasoning, snapshot)

    def hyperparameters(self, params: Mapping[str, Any], defaults_used: Iterable[str] = ()) -> None:
        """Log HYPERPARAMETERS_SET; ``defaults_used`` names the ones left at their defaults."""
        params = dict(params)
        defaults = list(defaults_used)
        explicit = [k for k in params if k not in defaults]
        parts = []
        if explicit:
            parts.append("set explicitly: " + ", ".join(f"{k}={params[k]!r}" for k in explicit))
        if defaults:
            parts.append(
                "defaults used: "
                + ", ".join(
                    f"{k}={params[k]!r}" if k in params else f"{k} (value not given)"
                    for k in defaults
                )
            )
        self._log(
            logging.INFO,
            "Hyperparameters set",
            schema.Event.HYPERPARAMETERS_SET.value,
            "Defaults applied" if defaults else "Hyperparameters set",
            (f"{len(params)} hyperparameters; " + "; ".join(parts) + ".") if parts else None,
            {"hyperparameters": params, "defaults_used": defaults},
        )

    def progress(self, step: Any = None, **metrics: Any) -> Sequence[Issue]:
        """Record the metrics of one step; return the issues that start at this step.

        Every call is seen by the detector; a TRAINING_PROGRESS line is written
        only as ``progress_every`` / ``progress_seconds`` allow, or when an
        issue starts. ``step`` defaults to the previous step + 1 (from 0).
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
        if issues or self._since_line >= self.progress_every:
            self._write_progress(step, metrics, issues, self._clock())
        elif self.progress_seconds != math.inf:
            now = self._clock()
            if now - self._last_line >= self.progress_seconds:
                self._write_progress(step, metrics, issues, now)
        return issues

    def _write_progress(
        self, step: Any, metrics: Mapping[str, Any], issues: Sequence[Issue], now: float
    ) -> None:
        self._since_line = 0
        self._last_line = now
        snapshot = {"step": step, **metrics}
        self._log(
            logging.INFO,
            "Training progress at step %s",  # merged on the listener, not in the training loop
            schema.Event.TRAINING_PROGRESS.value,
            metrics=snapshot,
            args=(step,),
        )
        for issue in issues:
            self.report(issue)

    def report(self, issue: Issue) -> None:
        """Log ISSUE_DETECTED for ``issue`` (called by :meth:`progress`; usable on its own)."""
        stops = issue.kind in self.stop_on
        decision = "Early stopping triggered" if stops else issue.decision
        if stops:
            self.should_stop = True
            if self.stopped_by is None:
                self.stopped_by = issue
        self.issues.append(issue)
        self.issue_counts[issue.kind] += 1
        self._log(
            logging.WARNING,
            f"Issue detected: {issue.kind} at step {issue.step}",
            schema.Event.ISSUE_DETECTED.value,
            decision,
            f"{issue.reasoning} Probable cause: {issue.probable_cause}.",
            issue.snapshot(),
        )

    def stop(self, reason: str) -> None:
        """Log TRAINING_STOPPED with ``reason``; the run ends there (no TRAINING_COMPLETED)."""
        self.should_stop = True
        self.stop_reason = reason
        self._ended = True
        self._log(
            logging.INFO,
            "Training stopped",
            schema.Event.TRAINING_STOPPED.value,
            "Training stopped",
            reason,
            self._run_facts(),
        )

    def evaluated(
        self,
        *,
        decision: str = "Performance assessment completed",
        reasoning: str | None = None,
        **metrics: Any,
    ) -> None:
        """Log MODEL_EVALUATED with the metrics as given."""
        if reasoning is None and metrics:
            reasoning = "Metrics computed by the training code: " + ", ".join(
                f"{k} {fmt(v)}" for k, v in metrics.items()
            )
            reasoning += "."
        self._log(
            logging.INFO,
            "Model evaluated",
            schema.Event.MODEL_EVALUATED.value,
            decision,
            reasoning,
            metrics,
        )

    def saved(self, path: str | os.PathLike[str]) -> tuple[int, str] | None:
        """Log MODEL_SAVED with the file's size and SHA-256; return them, ``None`` if unreadable."""
        where = os.fspath(path)
        try:
            size, digest = file_sha256(where)
        except OSError as exc:
            self._log(
                logging.WARNING,
                "Saved model could not be read",
                schema.Event.MODEL_SAVED.value,
                None,
                f"{where} could not be read to record its size and hash: {_describe_error(exc)}.",
                {"path": where},
            )
            return None
        self._log(
            logging.INFO,
            "Model saved",
            schema.Event.MODEL_SAVED.value,
            "Model persisted",
            f"Saved to {where}: {size} bytes, SHA-256 {digest}.",
            {"path": where, "size_bytes": size, "sha256": digest},
        )
        return size, digest

    def dataset(
        self,
        path: str | os.PathLike[str],
        *,
        event: str | schema.Event = schema.Event.DATASET_UPLOADED,
        encoding: str = "utf-8-sig",
    ) -> DatasetInfo | None:
        """Read a CSV once; log ``event`` (size, SHA-256) and DATASET_VALIDATED (rows, columns).

        The run's ``dataset`` name becomes the file's name when none was given.
        Returns what was read, or ``None`` when the file could not be read.
        """
        where = os.fspath(path)
        name = event.value if isinstance(event, schema.Event) else event
        if self.dataset_name is None:
            self.dataset_name = os.path.basename(where)
        try:
            info = scan_csv(where, encoding)
        except OSError as exc:
            self._log(
                logging.WARNING,
                "Dataset could not be read",
                name,
                None,
                f"{where} could not be read: {_describe_error(exc)}.",
                {"path": where},
            )
            return None
        self._log(
            logging.INFO,
            "Dataset received",
            name,
            "Dataset registered",
            f"{where}: {info.size_bytes} bytes, SHA-256 {info.sha256}.",
            {"path": where, "size_bytes": info.size_bytes, "sha256": info.sha256},
        )
        snapshot = {
            "path": where,
            "rows": info.rows,
            "columns": info.columns,
            "ragged_rows": info.ragged_rows,
            "size_bytes": info.size_bytes,
            "sha256": info.sha256,
        }
        if info.error is not None:
            decision = "Validation failed"
            reasoning = f"The file is not readable as CSV: {info.error}."
            level = logging.WARNING
        elif info.ragged_rows:
            decision = "Validation found problems"
            reasoning = (
                f"{info.ragged_rows} of {info.rows} rows do not have the header's "
                f"{info.columns} columns."
            )
            level = logging.WARNING
        elif not info.rows:
            decision = "Validation found problems"
            reasoning = f"No data rows (header with {info.columns} columns only)."
            level = logging.WARNING
        else:
            decision = "Validation passed"
            reasoning = f"{info.rows} rows, each with the header's {info.columns} columns."
            level = logging.INFO
        self._log(
            level,
            "Dataset validated",
            schema.Event.DATASET_VALIDATED.value,
            decision,
            reasoning,
            snapshot,
        )
        return info

    def compare(
        self,
        a: Mapping[str, Any],
        b: Mapping[str, Any],
        metric: str,
        *,
        mode: str | None = None,
    ) -> str | None:
        """Log MODEL_COMPARED between two models' metric dicts; return the better one's name.

        Each dict holds the model's metrics and its name under ``"model"`` (or
        ``"name"``; else ``"a"`` / ``"b"``). ``mode`` (``"max"``/``"min"``)
        defaults from the metric's name (:func:`~audit_logging.detect.metric_mode`).
        On a tie the first model is kept. ``None`` when a value is missing.
        """
        name_a = str(a.get("model", a.get("name", "a")))
        name_b = str(b.get("model", b.get("name", "b")))
        direction = mode or metric_mode(metric)
        va, vb = a.get(metric), b.get(metric)
        snapshot: dict[str, Any] = {"metric": metric, "a": dict(a), "b": dict(b)}
        numeric = all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in (va, vb)
        )
        if not numeric:
            self._log(
                logging.WARNING,
                "Models could not be compared",
                schema.Event.MODEL_COMPARED.value,
                None,
                f"{metric} is not a finite number for both models "
                f"({name_a}: {va!r}, {name_b}: {vb!r}).",
                snapshot,
            )
            return None
        assert isinstance(va, (int, float)) and isinstance(vb, (int, float))
        difference = va - vb
        snapshot["difference"] = difference
        snapshot["formulas"] = {"difference": f"a.{metric} - b.{metric}"}
        better_a = difference >= 0 if direction == "max" else difference <= 0
        winner, loser = (name_a, name_b) if better_a else (name_b, name_a)
        sense = "higher" if direction == "max" else "lower"
        if difference == 0:
            reasoning = f"{name_a} and {name_b} have the same {metric} {fmt(va)}; kept the first."
        else:
            reasoning = (
                f"{winner} has the {sense} {metric}: {name_a} {fmt(va)} vs {name_b} "
                f"{fmt(vb)} (difference {fmt(difference)}; {sense} is better)."
            )
        self._log(
            logging.INFO,
            f"Models compared on {metric}",
            schema.Event.MODEL_COMPARED.value,
            f"Selected {winner} over {loser}",
            reasoning,
            snapshot,
        )
        return winner


# ---------------------------------------------------------------------- demo


def _demo_rows(n: int, rng: random.Random) -> list[tuple[float, float, int]]:
    rows = []
    for _ in range(n):
        x1, x2 = rng.gauss(0, 1), rng.gauss(0, 1)
        rows.append((x1, x2, 1 if 1.5 * x1 - x2 + rng.gauss(0, 0.8) > 0 else 0))
    return rows


def _demo_eval(w: Sequence[float], rows: Sequence[tuple[float, float, int]]) -> tuple[float, float]:
    loss = 0.0
    correct = 0
    for x1, x2, y in rows:
        z = w[0] * x1 + w[1] * x2 + w[2]
        p = min(max(1 / (1 + math.exp(-z)), 1e-12), 1 - 1e-12)
        loss -= y * math.log(p) + (1 - y) * math.log(1 - p)
        correct += (p >= 0.5) == (y == 1)
    return loss / len(rows), correct / len(rows)


def run_demo_training(
    logger: logging.Logger | str | None = None, directory: str | os.PathLike[str] | None = None
) -> None:
    """Train a tiny pure-Python logistic regression through :class:`TrainingRun`.

    The journal shows an algorithm decision with its reasoning, the
    hyperparameters with the defaults used, progress, a plateau of the
    validation loss detected with "Early stopping triggered", completion and
    evaluation. With ``directory``, the data set is written there as
    ``demo-data.csv`` and the weights as ``demo-model.json``, so that
    DATASET_UPLOADED / DATASET_VALIDATED and MODEL_SAVED (with SHA-256) appear too.
    Needs no numpy and no download; deterministic (seeded).
    """
    rng = random.Random(7)
    rows = _demo_rows(600, rng)
    train, val = rows[:480], rows[480:]
    csv_path = model_path = None
    if directory is not None:
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        csv_path = folder / "demo-data.csv"
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["x1", "x2", "label"])
            writer.writerows(rows)
        model_path = folder / "demo-model.json"
    with TrainingRun(
        logger, dataset="demo-data.csv", model="LogisticRegression", progress_every=10, git=None
    ) as run:
        if csv_path is not None:
            run.dataset(csv_path)
        positive = sum(r[2] for r in rows)
        run.decide(
            schema.Event.ALGORITHM_SELECTED,
            "Logistic regression baseline",
            reasoning=(
                f"{len(rows)} rows, 2 numeric features, binary label with {positive} "
                f"positives: a linear model is the simplest baseline to beat"
            ),
            metrics={"rows": len(rows), "features": 2, "positives": positive},
        )
        params = {"learning_rate": 0.5, "max_epochs": 300, "l2": 0.0, "validation_rows": len(val)}
        run.hyperparameters(params, defaults_used=["l2"])
        w = [0.0, 0.0, 0.0]
        lr = params["learning_rate"]
        for epoch in range(1, int(params["max_epochs"]) + 1):
            grad = [0.0, 0.0, 0.0]
            for x1, x2, y in train:
                p = 1 / (1 + math.exp(-(w[0] * x1 + w[1] * x2 + w[2])))
                grad[0] += (p - y) * x1
                grad[1] += (p - y) * x2
                grad[2] += p - y
            w = [wi - lr * g / len(train) for wi, g in zip(w, grad, strict=True)]
            train_loss, train_acc = _demo_eval(w, train)
            val_loss, val_acc = _demo_eval(w, val)
            run.progress(
                step=epoch,
                train_loss=train_loss,
                val_loss=val_loss,
                train_accuracy=train_acc,
                val_accuracy=val_acc,
            )
            if run.should_stop:
                break
        run.evaluated(val_loss=val_loss, val_accuracy=val_acc)
        if model_path is not None:
            model_path.write_text(
                f'{{"weights": [{w[0]!r}, {w[1]!r}], "bias": {w[2]!r}}}\n', encoding="utf-8"
            )
            run.saved(model_path)
