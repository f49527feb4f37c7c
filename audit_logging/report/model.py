"""What a report shows of a run, built in one pass over its records, in bounded memory.

:func:`build_runs` takes the records from :mod:`audit_logging.report.data`
and returns one :class:`RunData` per session. Nothing is held per journal
line: a metric's points go to a :class:`~audit_logging.report.curves.Curve`
(bounded); decisions, issues, hyperparameters, evaluations, warnings and
actions are kept whole (they are the rare lines an auditor reads).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audit_logging.detect import metric_mode
from audit_logging.report.curves import COMPACT_AT, Band, Curve
from audit_logging.report.data import Item

__all__ = ["Marker", "RunData", "build_runs", "chart_groups", "is_validation"]

CLOSING = {
    "TRAINING_COMPLETED": "completed",
    "TRAINING_FAILED": "failed",
    "TRAINING_STOPPED": "stopped",
}
_OWN_MARKERS = {"TRAINING_PROGRESS", "ISSUE_DETECTED", "HYPERPARAMETERS_SET"}
_TRAIN_PREFIXES = ("train_", "training_")
_VAL_PREFIXES = ("val_", "valid_", "validation_", "eval_", "test_")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass
class Marker:
    """A point of the run worth a vertical line on the charts: an issue, a decision, a change."""

    number: int
    kind: str  # issue | decision | hyperparameters
    x: float | None  # the step; None before the first progress line
    timestamp: str
    label: str
    text: str


@dataclass
class RunData:
    """Everything the report of one run shows (see the module docstring)."""

    session: str
    dataset: str | None = None
    model: str | None = None
    host: str | None = None
    pid: int | None = None
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    git_unknown: str | None = None
    first: str | None = None
    last: str | None = None
    started: str | None = None
    ended: str | None = None
    duration_seconds: float | None = None
    outcome: str = "unknown"  # completed | failed | stopped | unknown
    outcome_event: str | None = None
    ending: str | None = None  # the closing line's own word: early_stopped, interrupted, ...
    outcome_decision: str | None = None
    outcome_reason: str | None = None
    lines: int = 0
    progress_lines: int = 0
    curves: dict[str, Curve] = field(default_factory=dict)
    bands: dict[str, Band] = field(default_factory=dict)
    markers: list[Marker] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    hyperparameters: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)
    closing_metrics: dict[str, float] = field(default_factory=dict)
    _last_x: float | None = None
    _ticks: list[tuple[str, float]] = field(default_factory=list)
    _tick_stride: int = 1
    _modes: dict[str, bool] = field(default_factory=dict)
    _source: str = ""

    # ------------------------------------------------------------------ derived

    @property
    def duration(self) -> float | None:
        """Seconds from start to end: as the closing line says, else from the timestamps."""
        if self.duration_seconds is not None:
            return self.duration_seconds
        start, end = self.started or self.first, self.ended or self.last
        if not start or not end:
            return None
        try:
            return (_parse_ts(end) - _parse_ts(start)).total_seconds()
        except ValueError:
            return None

    @property
    def hyperparameters_now(self) -> tuple[dict[str, Any], list[str]]:
        """The last hyperparameters set and the names left at their defaults."""
        if not self.hyperparameters:
            return {}, []
        last = self.hyperparameters[-1]
        return dict(last["params"]), list(last["defaults"])

    def step_at(self, timestamp: str) -> float | None:
        """The step of the last progress line at or before ``timestamp`` (sampled)."""
        index = bisect.bisect_right(self._ticks, (timestamp, math.inf))
        return self._ticks[index - 1][1] if index else None

    # ------------------------------------------------------------------ building

    def _marker(self, kind: str, x: float | None, timestamp: str, label: str, text: str) -> None:
        self.markers.append(Marker(len(self.markers) + 1, kind, x, timestamp, label, text))

    def _tick(self, timestamp: str, x: float) -> None:
        self._ticks.append((timestamp, x))
        if len(self._ticks) > 4096:  # bounded: keep every other one, sample half as often
            self._ticks = self._ticks[::2]
            self._tick_stride *= 2

    def _higher_is_better(self, name: str) -> bool:
        known = self._modes.get(name)
        if known is None:
            known = self._modes[name] = metric_mode(name) == "max"
        return known

    def _band(self, name: str, x0: float, x1: float, summary: Mapping[str, Any]) -> None:
        lo, hi = _number(summary.get("min")), _number(summary.get("max"))
        if lo is None or hi is None:
            return
        band = self.bands.get(name)
        if band is None:
            band = self.bands[name] = Band()
        band.add(x0, x1, lo, hi)

    def _summary(self, summary: Mapping[str, Any], previous: float, x: float) -> None:
        """Bands from ``since_last_line``: the calls that wrote no line since the previous one.

        Its shape (TrainingRun's): ``{"calls", "first_step", "last_step",
        "metrics": {name: {"count", "min", "max", "mean", "last"}}}``.
        """
        metrics = summary.get("metrics")
        if not isinstance(metrics, Mapping):
            return
        first, last = _number(summary.get("first_step")), _number(summary.get("last_step"))
        for name, stats in metrics.items():
            if isinstance(stats, Mapping):
                self._band(str(name), previous if first is None else first,
                           x if last is None else last, stats)  # fmt: skip

    def _progress(self, ts: str, snap: Mapping[str, Any]) -> None:
        # The hot loop of a large run (once per metric per line): no helper calls
        # on the common path, a float or an int.
        step = snap.get("step")
        kind = type(step)
        x = float(step) if kind is int or kind is float else math.nan  # type: ignore[arg-type]
        if not -math.inf < x < math.inf:  # no step, or not a finite one: the line's rank
            x = float(self.progress_lines)
        previous = self._last_x if self._last_x is not None else x
        curves = self.curves
        for name, value in snap.items():
            kind = type(value)
            if kind is float or kind is int:
                if name == "step" or not -math.inf < value < math.inf:
                    continue
                curve = curves.get(name)
                if curve is None:
                    curve = curves[name] = Curve()
                curve.xs.append(x)
                curve.ys.append(value)
            elif isinstance(value, Mapping):
                if name == "since_last_line":
                    self._summary(value, previous, x)
                elif "min" in value and "max" in value:  # one metric's summary, under its name
                    self._band(name, previous, x, value)
        self._last_x = x
        if self.progress_lines % self._tick_stride == 0:
            self._tick(ts, x)
        self.progress_lines += 1
        # A line adds at most one point to a curve: checking every COMPACT_AT lines bounds them.
        if self.progress_lines % COMPACT_AT == 0:
            for curve in curves.values():
                if len(curve) >= COMPACT_AT // 2:
                    curve.compact()

    def add_journal(self, data: Mapping[str, Any], source: str) -> None:
        """Take one journal line into the run."""
        if source is not self._source:
            self.sources.add(source)
            self._source = source
        self.lines += 1
        ts = data.get("timestamp")
        if type(ts) is not str:
            ts = ""
        elif self.first is None:
            self.first = self.last = ts
        elif ts > self.last:  # type: ignore[operator]
            self.last = ts
        elif ts < self.first:
            self.first = ts
        if self.dataset is None or self.model is None or self.host is None:
            self.dataset = self.dataset or _text(data.get("dataset"))
            self.model = self.model or _text(data.get("model"))
            self.host = self.host or _text(data.get("host"))
        if self.pid is None and isinstance(data.get("pid"), int):
            self.pid = data["pid"]
        event = data.get("event")
        raw = data.get("metrics_snapshot")
        snap: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        if event == "TRAINING_PROGRESS":
            self._progress(ts, snap)
            return
        event = str(event or "")
        decision, reasoning = _text(data.get("decision")), _text(data.get("reasoning"))
        if decision or reasoning:
            self.decisions.append(
                {
                    "timestamp": ts,
                    "event": event,
                    "decision": decision,
                    "reasoning": reasoning,
                    "level": data.get("level"),
                }
            )
        if event == "TRAINING_STARTED":
            self.started = self.started or ts
            if "git_commit" in snap:
                self.git_commit = _text(snap.get("git_commit"))
                self.git_branch = _text(snap.get("git_branch"))
                dirty = snap.get("git_dirty")
                self.git_dirty = dirty if isinstance(dirty, bool) else None
                self.git_unknown = _text(snap.get("git_unknown_reason"))
        elif event == "ISSUE_DETECTED":
            step = _number(snap.get("step"))
            x = step if step is not None else self._last_x
            self.issues.append(
                {
                    "timestamp": ts,
                    "step": snap.get("step"),
                    "kind": snap.get("issue"),
                    "decision": decision,
                    "reasoning": reasoning,
                    "thresholds": snap.get("thresholds") or {},
                    "formulas": snap.get("formulas") or {},
                    "inputs": {
                        k: v
                        for k, v in snap.items()
                        if k not in ("thresholds", "formulas", "issue")
                    },
                }
            )
            label = f"{snap.get('issue') or 'issue'}: {decision or 'issue detected'}"
            self._marker("issue", x, ts, label, reasoning or "")
        elif event == "HYPERPARAMETERS_SET":
            params = snap.get("hyperparameters")
            defaults = snap.get("defaults_used")
            self.hyperparameters.append(
                {
                    "timestamp": ts,
                    "params": dict(params) if isinstance(params, Mapping) else {},
                    "defaults": [str(d) for d in defaults] if isinstance(defaults, list) else [],
                    "reasoning": reasoning,
                }
            )
            self._marker(
                "hyperparameters", self._last_x, ts, "hyperparameters set", reasoning or ""
            )
        elif event == "MODEL_EVALUATED":
            self.evaluations.append(
                {"timestamp": ts, "metrics": dict(snap), "reasoning": reasoning}
            )
        if event in CLOSING:
            self.outcome = CLOSING[event]
            self.outcome_event, self.outcome_decision = event, decision
            self.outcome_reason = reasoning
            self.ending = _text(snap.get("ending"))
            self.ended = ts
            self.duration_seconds = _number(snap.get("duration_seconds"))
            self.closing_metrics = {
                k: v for k, v in snap.items() if k != "step" and _number(v) is not None
            }
            summary = snap.get("since_last_line")
            if isinstance(summary, Mapping) and self._last_x is not None:
                self._summary(summary, self._last_x, self._last_x)
        if decision and event not in _OWN_MARKERS:
            self._marker("decision", self._last_x, ts, f"{event}: {decision}", reasoning or "")

    def add_action(self, data: Mapping[str, Any]) -> None:
        """Take one action-audit entry into the run (an ``hp_change`` is also a marker)."""
        self.actions.append(dict(data))
        if data.get("action_type") == "hp_change":
            ts = str(data.get("timestamp") or "")
            details = data.get("details")
            self._marker(
                "hyperparameters",
                self.step_at(ts),
                ts,
                "hp_change (action)",
                _short(details) + (f" (status {data.get('status')})" if data.get("status") else ""),
            )

    def finish(self) -> None:
        """Last and best value of each metric; markers and lists in time order."""
        for name, curve in self.curves.items():
            # The closing line states the last metrics; else the point of the last step.
            at_end = curve.xs.index(max(curve.xs))
            self.final[name] = self.closing_metrics.get(name, curve.ys[at_end])
            best = max(curve.ys) if self._higher_is_better(name) else min(curve.ys)
            self.best[name] = (best, curve.xs[curve.ys.index(best)])
        self.markers.sort(key=lambda m: m.timestamp)
        for number, marker in enumerate(self.markers, 1):
            marker.number = number
        self.actions.sort(key=lambda a: str(a.get("timestamp") or ""))
        self.warnings.sort(key=lambda w: str(w.get("timestamp") or ""))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v!r}" for k, v in value.items())
    return "" if value is None else str(value)


def _parse_ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def chart_groups(names: Iterable[str]) -> dict[str, list[str]]:
    """Metric names by chart: ``train_loss``, ``loss`` and ``val_loss`` share the ``loss`` chart."""
    groups: dict[str, list[str]] = {}
    for name in names:
        base = name
        for prefix in (*_TRAIN_PREFIXES, *_VAL_PREFIXES):
            if name.startswith(prefix) and len(name) > len(prefix):
                base = name[len(prefix) :]
                break
        groups.setdefault(base, []).append(name)
    return groups


def is_validation(name: str) -> bool:
    """Whether a metric name says it was measured on held-out data (``val_...``)."""
    return name.startswith(_VAL_PREFIXES)


def build_runs(items: Iterable[Item]) -> list[RunData]:
    """One :class:`RunData` per session found in ``items``, oldest first.

    Actions and warnings carry no session: with one run they all belong to
    it; with several, a warning naming its session goes there, anything else
    to the run whose time span holds it (else the latest run started before).
    """
    runs: dict[str, RunData] = {}
    others: list[Item] = []
    run: RunData | None = None
    last: Any = object()
    for item in items:
        kind, source, record = item
        if kind != "journal":
            others.append(item)
            continue
        found = record.get("session_id")
        if found != last or run is None:  # lines of one session come in long stretches
            last = found
            session = str(found or "")
            run = runs.get(session)
            if run is None:
                run = runs[session] = RunData(session)
        run.add_journal(record, source)
    ordered = sorted(runs.values(), key=lambda r: r.first or "")
    if not ordered and others:
        ordered = [RunData("")]
    for item in others:
        run = _owner(ordered, item)
        run.sources.add(item.source)
        if item.kind == "action":
            run.add_action(item.data)
        elif item.kind == "warning":
            run.warnings.append(dict(item.data))
    for run in ordered:
        run.finish()
    return ordered


def _owner(runs: list[RunData], item: Item) -> RunData:
    if len(runs) == 1:
        return runs[0]
    details = item.data.get("details")
    if isinstance(details, Mapping) and details.get("session_id"):
        for run in runs:
            if run.session == details["session_id"]:
                return run
    ts = str(item.data.get("timestamp") or "")
    chosen = runs[0]
    for run in runs:
        if run.first and run.first <= ts:
            chosen = run
            if run.last and ts <= run.last:
                break
    return chosen
