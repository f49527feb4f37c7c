"""The HTML page of one run: header, curves with markers, and the lists an auditor reads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from audit_logging import __version__
from audit_logging.report.charts import MARKER_COLORS, Series, chart_svg
from audit_logging.report.curves import Curve
from audit_logging.report.data import Verification
from audit_logging.report.model import Marker, RunData, chart_groups, is_validation
from audit_logging.report.page import (
    document,
    esc,
    fmt_duration,
    fmt_value,
    kv_table,
    table,
)

__all__ = ["outcome_badge", "render_run", "verification_badge"]

_OUTCOME_CLASS = {"completed": "ok", "failed": "bad", "stopped": "warn", "unknown": "unknown"}
_OUTCOME_TEXT = {
    "completed": "Completed",
    "failed": "Failed",
    "stopped": "Stopped",
    "unknown": "Outcome unknown: no closing line (still running, or killed)",
}


def outcome_badge(run: RunData) -> str:
    """The outcome as a coloured badge with ``id="outcome"`` and ``data-outcome``."""
    text = _OUTCOME_TEXT[run.outcome]
    if run.ending and run.ending != run.outcome:  # completed (early stopped), stopped (terminated)
        text += f" ({run.ending.replace('_', ' ')})"
    return (
        f'<span id="outcome" class="badge {_OUTCOME_CLASS[run.outcome]}" '
        f'data-outcome="{esc(run.outcome)}">{esc(text)}</span>'
    )


def verification_badge(check: Verification) -> str:
    """The verification status as a badge with ``id="verification"`` and ``data-status``."""
    if check.status == "intact":
        text, cls = f"Files verified intact ({check.files} files, {check.lines} lines)", "ok"
    elif check.status == "tampered":
        text, cls = f"Verification FAILED: {len(check.problems)} problem(s)", "bad"
    else:
        text, cls = "Not verified: no hash-chained file found", "warn"
    return (
        f'<span id="verification" class="badge {cls}" data-status="{check.status}">'
        f"{esc(text)}</span>"
    )


def _header(run: RunData, check: Verification) -> str:
    if run.git_commit:
        dirty = (
            " (working tree state unknown)"
            if run.git_dirty is None
            else " (dirty working tree)"
            if run.git_dirty
            else " (clean working tree)"
        )
        branch = f" on {run.git_branch}" if run.git_branch else ""
        git = f"{run.git_commit}{branch}{dirty}"
    else:
        git = "unknown" + (f" ({run.git_unknown})" if run.git_unknown else "")
    facts = [
        ("dataset", run.dataset or "unknown"),
        ("model", run.model or "unknown"),
        ("session", run.session or "(none recorded)"),
        ("host", (run.host or "unknown") + (f" (pid {run.pid})" if run.pid is not None else "")),
        ("git commit", git),
        ("start", run.started or run.first or "unknown"),
        ("end", run.ended or run.last or "unknown"),
        ("duration", fmt_duration(run.duration)),
        ("journal lines", f"{run.lines} ({run.progress_lines} TRAINING_PROGRESS)"),
        ("built from", ", ".join(sorted(run.sources)) or "-"),
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    reason = run.outcome_reason or ""
    if run.outcome_decision and run.outcome_decision not in reason:
        reason = f"{run.outcome_decision}. {reason}"
    alert = ""
    if check.status == "tampered":
        items = "".join(f"<li>{esc(p)}</li>" for p in check.problems[:200])
        more = len(check.problems) - 200
        extra = f"<li>... and {more} more</li>" if more > 0 else ""
        alert = (
            '<div class="alert" id="verification-problems"><strong>The files this report was '
            "built from do not verify: what follows may have been edited.</strong>"
            f"<ul>{items}{extra}</ul></div>"
        )
    title = f"Training run: {run.model or 'model'} on {run.dataset or 'dataset'}"
    return (
        f'<header class="run" id="header"><h1>{esc(title)}</h1>'
        f'<div class="badges">{outcome_badge(run)}{verification_badge(check)}</div>'
        + (f'<p class="reason" id="outcome-reason">{esc(reason)}</p>' if reason else "")
        + f'<dl class="facts">{dl}</dl>{alert}</header>'
    )


def _curves(run: RunData) -> str:
    # A metric seen only in summaries (every call between two lines) still gets its band.
    groups = chart_groups(dict.fromkeys([*run.curves, *run.bands]))
    if not groups:
        return '<p class="muted">No TRAINING_PROGRESS line with metrics in this run.</p>'
    legend = "".join(
        f'<span><span class="swatch" style="background:{color}"></span>{esc(kind)}</span>'
        for kind, color in MARKER_COLORS.items()
    )
    parts = [
        f'<p class="legend">Markers (hover for the reasoning, click for the list): {legend}</p>'
    ]
    for index, (title, names) in enumerate(groups.items()):
        series = [
            Series(n, run.curves.get(n) or Curve(), run.bands.get(n), dashed=is_validation(n))
            for n in sorted(names, key=lambda n: (is_validation(n), n))
        ]
        svg = chart_svg(f"c{index}", title, series, run.markers)
        parts.append(f'<div class="chart" id="chart-{esc(title)}">{svg}</div>')
    return "\n".join(parts)


def _step(marker: Marker) -> str:
    if marker.x is None:
        return "before the first progress line"
    return f"step {int(marker.x) if float(marker.x).is_integer() else marker.x}"


def _markers(markers: Sequence[Marker]) -> str:
    if not markers:
        return '<p class="muted">No issue, decision or hyperparameter change.</p>'
    items = "".join(
        f'<li id="marker-{m.number}" data-kind="{esc(m.kind)}">'
        f'<span class="swatch" style="background:{MARKER_COLORS.get(m.kind, "#555")}"></span>'
        f'<strong>{esc(m.label)}</strong> <span class="muted">{esc(_step(m))}, '
        f"{esc(m.timestamp)}</span><br>{esc(m.text)}</li>"
        for m in markers
    )
    return f'<ol class="markers">{items}</ol>'


def _issues(issues: Sequence[Mapping[str, Any]]) -> str:
    """One row per issue: what it decided, why, and the numbers it was judged by."""
    rows = []
    for n, issue in enumerate(issues, 1):
        formulas = dict(issue.get("formulas") or {})
        inputs = "<br>".join(
            f'<span class="mono">{esc(k)} = {esc(fmt_value(v))}</span>'
            + (f' <span class="muted">= {esc(formulas[k])}</span>' if k in formulas else "")
            for k, v in dict(issue.get("inputs") or {}).items()
        )
        thresholds = "<br>".join(
            f'<span class="mono">{esc(k)} = {esc(fmt_value(v))}</span>'
            for k, v in dict(issue.get("thresholds") or {}).items()
        )
        rows.append(
            (
                f'<strong id="issue-{n}" class="mono">{esc(issue.get("kind"))}</strong> at step '
                f"{esc(fmt_value(issue.get('step')))}<br>"
                f'<span class="tag">{esc(issue.get("decision"))}</span><br>'
                f'<span class="muted">{esc(issue.get("timestamp"))}</span>',
                esc(issue.get("reasoning")),
                thresholds,
                inputs,
            )
        )
    headers = ("issue", "reasoning", "thresholds", "inputs")
    return table(headers, rows, "No ISSUE_DETECTED line.", cls="issues")


def _hyperparameters(run: RunData) -> str:
    if not run.hyperparameters:
        return '<p class="muted">No HYPERPARAMETERS_SET line.</p>'
    out = []
    for hp in run.hyperparameters:
        defaults = set(hp["defaults"])
        rows = [
            (
                f'<span class="mono">{esc(k)}</span>'
                + (' <span class="tag default">default</span>' if k in defaults else ""),
                f'<span class="mono">{esc(fmt_value(v))}</span>',
            )
            for k, v in hp["params"].items()
        ]
        rows += [
            (
                f'<span class="mono">{esc(k)}</span> <span class="tag default">default</span>',
                '<span class="muted">value not given</span>',
            )
            for k in hp["defaults"]
            if k not in hp["params"]
        ]
        when = f"Set at {hp['timestamp']}" if len(run.hyperparameters) > 1 else ""
        out.append((f"<h3>{esc(when)}</h3>" if when else "") + table(("name", "value"), rows))
    return "\n".join(out)


def _metrics(run: RunData) -> str:
    rows = []
    for name in sorted(run.final):
        best, at = run.best.get(name, (None, None))
        rows.append(
            (
                f'<span class="mono">{esc(name)}</span>',
                f'<span class="mono">{esc(fmt_value(run.final[name]))}</span>',
                f'<span class="mono">{esc(fmt_value(best))}</span>',
                esc("" if at is None else fmt_value(int(at) if at.is_integer() else at)),
            )
        )
    out = ["<h3>Training metrics</h3>" + table(("metric", "last", "best", "best at step"), rows)]
    for ev in run.evaluations:
        out.append(
            f'<h3>MODEL_EVALUATED <span class="muted">{esc(ev["timestamp"])}</span></h3>'
            + (f"<p>{esc(ev['reasoning'])}</p>" if ev.get("reasoning") else "")
            + kv_table(ev["metrics"])
        )
    if not run.evaluations:
        out.append('<p class="muted">No MODEL_EVALUATED line.</p>')
    return "\n".join(out)


def _changes(details: Any) -> str:
    """Before/after of an action's details, as a small table (escaped here)."""
    if not isinstance(details, Mapping):
        return esc(fmt_value(details))
    pairs: list[tuple[str, Any, Any]] = []
    changes = details.get("changes")
    before, after = details.get("before"), details.get("after")
    if isinstance(changes, Mapping):
        for key, change in changes.items():
            if isinstance(change, Mapping):
                old = change.get("before", change.get("old"))
                new = change.get("after", change.get("new"))
            elif isinstance(change, (list, tuple)) and len(change) == 2:
                old, new = change
            else:
                old, new = None, change
            pairs.append((str(key), old, new))
    elif isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in dict.fromkeys([*before, *after]):
            if before.get(key) != after.get(key):
                pairs.append((str(key), before.get(key), after.get(key)))
    if not pairs:
        return kv_inline(details)
    rows = "".join(
        f'<tr><td class="mono">{esc(k)}</td><td class="before mono">{esc(fmt_value(old))}</td>'
        f'<td>&rarr;</td><td class="after mono">{esc(fmt_value(new))}</td></tr>'
        for k, old, new in pairs
    )
    rest = {k: v for k, v in details.items() if k not in ("changes", "before", "after")}
    return f'<table class="changes">{rows}</table>' + (kv_inline(rest) if rest else "")


def kv_inline(values: Mapping[str, Any]) -> str:
    return "<br>".join(
        f'<span class="mono">{esc(k)}</span> = {esc(fmt_value(v))}' for k, v in values.items()
    )


def render_run(run: RunData, check: Verification) -> str:
    """The whole HTML page of ``run``; ``check`` is what verifying its files found."""
    decisions = [
        (
            esc(d["timestamp"]),
            f'<span class="mono">{esc(d["event"])}</span>',
            esc(d["decision"]),
            esc(d["reasoning"]),
        )
        for d in run.decisions
    ]
    warnings = [
        (
            esc(w.get("timestamp")),
            esc(w.get("type")),
            esc(w.get("severity")),
            esc(w.get("message")),
            esc(w.get("recommendation")),
        )
        for w in run.warnings
    ]
    actions = [
        (
            esc(a.get("timestamp")),
            f'<span class="mono">{esc(a.get("action_type"))}</span>',
            esc(a.get("actor")),
            esc(a.get("status")),
            _changes(a.get("details")),
            esc(a.get("error")),
        )
        for a in run.actions
    ]
    sections = [
        ("curves", "Metric curves", _curves(run)),
        ("markers", "Markers", _markers(run.markers)),
        (
            "decisions",
            "Decisions and reasoning",
            table(("time", "event", "decision", "reasoning"), decisions, cls="log"),
        ),
        ("issues", f"Issues detected ({len(run.issues)})", _issues(run.issues)),
        ("hyperparameters", "Hyperparameters", _hyperparameters(run)),
        ("metrics", "Metrics and evaluation", _metrics(run)),
        (
            "warnings",
            f"Warnings ({len(run.warnings)})",
            table(("time", "type", "severity", "message", "recommendation"), warnings, cls="log"),
        ),
        (
            "actions",
            f"Action audit ({len(run.actions)})",
            table(
                ("time", "action", "actor", "status", "changes / details", "error"),
                actions,
                cls="log",
            ),
        ),
    ]
    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in sections)
    body = "\n".join(
        f'<section id="{sid}"><h2>{esc(title)}</h2>\n{content}</section>'
        for sid, title, content in sections
    )
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    footer = (
        f"<footer>Written by audit-logging {esc(__version__)} at {now}. Rebuild with "
        f'<span class="mono">audit-logging report DIR --run {esc(run.session)}</span>.</footer>'
    )
    title = f"Run report: {run.model or 'model'} on {run.dataset or 'dataset'} ({run.session})"
    return document(title, _header(run, check) + f"<nav>{nav}</nav>\n{body}\n{footer}")
