"""Two runs side by side: what differs, as a dict (``--json``), a text table, or an HTML page."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from audit_logging.detect import metric_mode
from audit_logging.report.charts import Series, chart_svg
from audit_logging.report.data import Verification
from audit_logging.report.model import Marker, RunData, chart_groups, is_validation
from audit_logging.report.page import document, esc, fmt_duration, fmt_value, table
from audit_logging.report.run_page import outcome_badge, verification_badge

__all__ = ["compare_dict", "compare_page", "compare_table"]

_RUN_COLORS = ("#1f77b4", "#ff7f0e")


def _side(run: RunData, check: Verification, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "session": run.session,
        "dataset": run.dataset,
        "model": run.model,
        "host": run.host,
        "git_commit": run.git_commit,
        "git_dirty": run.git_dirty,
        "start": run.started or run.first,
        "end": run.ended or run.last,
        "duration_seconds": run.duration,
        "outcome": run.outcome,
        "ending": run.ending,
        "outcome_reason": run.outcome_reason,
        "verification": check.status,
        "verification_problems": len(check.problems),
        "issues": dict(Counter(str(i.get("kind")) for i in run.issues)),
    }


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def compare_dict(
    a: RunData, b: RunData, check_a: Verification, check_b: Verification, sources: tuple[str, str]
) -> dict[str, Any]:
    """The comparison as plain data (the ``compare --json`` shape; differences are B - A)."""
    hp_a, defaults_a = a.hyperparameters_now
    hp_b, defaults_b = b.hyperparameters_now
    missing = object()
    hyper = [
        {
            "name": name,
            "a": hp_a.get(name),
            "b": hp_b.get(name),
            "a_default": name in defaults_a,
            "b_default": name in defaults_b,
        }
        for name in dict.fromkeys([*hp_a, *hp_b])
        if hp_a.get(name, missing) != hp_b.get(name, missing)
    ]
    metrics = []
    for name in sorted(set(a.final) | set(b.final)):
        best_a = a.best.get(name, (None, None))[0]
        best_b = b.best.get(name, (None, None))[0]
        mode = metric_mode(name)
        better = None
        if best_a is not None and best_b is not None:
            if math.isclose(best_a, best_b):
                better = "same"
            else:
                better = "a" if (best_a > best_b) == (mode == "max") else "b"
        metrics.append(
            {
                "name": name,
                "mode": mode,
                "final_a": a.final.get(name),
                "final_b": b.final.get(name),
                "final_diff": _diff(a.final.get(name), b.final.get(name)),
                "best_a": best_a,
                "best_b": best_b,
                "best_diff": _diff(best_a, best_b),
                "better": better,
            }
        )
    return {
        "a": _side(a, check_a, sources[0]),
        "b": _side(b, check_b, sources[1]),
        "hyperparameters_differing": hyper,
        "hyperparameters_same": len(set(hp_a) & set(hp_b))
        - sum(1 for h in hyper if h["name"] in hp_a and h["name"] in hp_b),
        "metrics": metrics,
        "evaluation": _evaluation(a, b),
    }


def _evaluation(a: RunData, b: RunData) -> list[dict[str, Any]]:
    """The metrics of each run's last MODEL_EVALUATED line, side by side."""
    last_a = a.evaluations[-1]["metrics"] if a.evaluations else {}
    last_b = b.evaluations[-1]["metrics"] if b.evaluations else {}
    rows = []
    for name in dict.fromkeys([*last_a, *last_b]):
        va, vb = last_a.get(name), last_b.get(name)
        numbers = [v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
                   for v in (va, vb)]  # fmt: skip
        rows.append({"name": name, "a": va, "b": vb, "diff": _diff(*numbers)})
    return rows


def compare_table(data: dict[str, Any]) -> str:
    """The comparison as text for a terminal."""
    a, b = data["a"], data["b"]
    rows: list[tuple[str, str, str]] = [
        (key, fmt_value(a[key]) or "-", fmt_value(b[key]) or "-")
        for key in ("source", "session", "dataset", "model", "outcome", "verification")
    ]
    rows.insert(
        5, ("duration", fmt_duration(a["duration_seconds"]), fmt_duration(b["duration_seconds"]))
    )
    rows.append(("issues", _issue_text(a["issues"]), _issue_text(b["issues"])))
    lines = _columns(("", "A", "B"), rows)
    for side, info in (("A", a), ("B", b)):
        if info["outcome_reason"] and info["outcome"] != "completed":
            lines.append(f"{side} {info['outcome']}: {info['outcome_reason']}")
    lines.append("")
    if data["hyperparameters_differing"]:
        lines.append("hyperparameters that differ")
        hp_rows = [
            (h["name"], _hp(h["a"], h["a_default"]), _hp(h["b"], h["b_default"]))
            for h in data["hyperparameters_differing"]
        ]
        lines += _columns(("name", "A", "B"), hp_rows, indent="  ")
    else:
        lines.append("hyperparameters: no difference")
    lines.append("")
    metric_rows = [
        (
            m["name"],
            fmt_value(m["final_a"]),
            fmt_value(m["final_b"]),
            fmt_value(m["final_diff"]),
            fmt_value(m["best_a"]),
            fmt_value(m["best_b"]),
            fmt_value(m["best_diff"]),
            m["better"] or "",
        )
        for m in data["metrics"]
    ]
    headers = ("metric", "final A", "final B", "B-A", "best A", "best B", "B-A", "better")
    lines += _columns(headers, metric_rows) if metric_rows else ["metrics: none"]
    if data["evaluation"]:
        lines += ["", "evaluation (the last MODEL_EVALUATED of each run)"]
        rows_e = [
            (e["name"], fmt_value(e["a"]), fmt_value(e["b"]), fmt_value(e["diff"]))
            for e in data["evaluation"]
        ]
        lines += _columns(("metric", "A", "B", "B-A"), rows_e, indent="  ")
    return "\n".join(lines) + "\n"


def _hp(value: Any, default: bool) -> str:
    return fmt_value(value) + (" (default)" if default else "")


def _issue_text(counts: dict[str, int]) -> str:
    if not counts:
        return "0"
    return f"{sum(counts.values())} (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"


def _columns(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    out = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        out.append(
            indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
    return out


def _issue_markers(a: RunData, b: RunData) -> list[Marker]:
    markers: list[Marker] = []
    for side, run in (("A", a), ("B", b)):
        for m in run.markers:
            if m.kind == "issue":
                markers.append(
                    Marker(len(markers) + 1, m.kind, m.x, m.timestamp, f"{side}: {m.label}", m.text)
                )
    return markers


def compare_page(
    a: RunData, b: RunData, check_a: Verification, check_b: Verification, data: dict[str, Any]
) -> str:
    """The comparison as a self-contained HTML page, curves of both runs on shared axes."""
    facts = [
        ("run", f"A: {data['a']['source']}", f"B: {data['b']['source']}"),
        (
            "outcome",
            outcome_badge(a).replace('id="outcome"', 'id="outcome-a"'),
            outcome_badge(b).replace('id="outcome"', 'id="outcome-b"'),
        ),
        (
            "verification",
            verification_badge(check_a).replace('id="verification"', 'id="verification-a"'),
            verification_badge(check_b).replace('id="verification"', 'id="verification-b"'),
        ),
    ]
    rows = [
        (esc(k), va if k != "run" else esc(va), vb if k != "run" else esc(vb))
        for k, va, vb in facts
    ]
    for key in ("session", "dataset", "model", "git_commit", "start", "end", "outcome_reason"):
        value_a, value_b = (esc(fmt_value(data[side][key]) or "-") for side in ("a", "b"))
        rows.append((esc(key), value_a, value_b))
    rows.append(("duration", esc(fmt_duration(a.duration)), esc(fmt_duration(b.duration))))
    rows.append(
        ("issues", esc(_issue_text(data["a"]["issues"])), esc(_issue_text(data["b"]["issues"])))
    )
    hyper = table(
        ("hyperparameter", "A", "B"),
        [
            (esc(h["name"]), esc(_hp(h["a"], h["a_default"])), esc(_hp(h["b"], h["b_default"])))
            for h in data["hyperparameters_differing"]
        ],
        "No hyperparameter differs.",
    )
    metrics = table(
        ("metric", "final A", "final B", "B - A", "best A", "best B", "B - A", "better"),
        [
            tuple(
                esc(fmt_value(m[k]))
                for k in (
                    "name",
                    "final_a",
                    "final_b",
                    "final_diff",
                    "best_a",
                    "best_b",
                    "best_diff",
                    "better",
                )
            )
            for m in data["metrics"]
        ],
    )
    evaluation = table(
        ("metric", "A", "B", "B - A"),
        [tuple(esc(fmt_value(e[k])) for k in ("name", "a", "b", "diff"))
         for e in data["evaluation"]],
        "No MODEL_EVALUATED line in either run.",
    )  # fmt: skip
    markers = _issue_markers(a, b)
    charts = []
    groups = chart_groups(dict.fromkeys([*a.curves, *b.curves]))
    for index, (title, names) in enumerate(groups.items()):
        series = []
        for side, run, color in (("A", a, _RUN_COLORS[0]), ("B", b, _RUN_COLORS[1])):
            for name in sorted(names, key=lambda n: (is_validation(n), n)):
                if name in run.curves:
                    series.append(
                        Series(
                            f"{side} {name}",
                            run.curves[name],
                            run.bands.get(name),
                            color=color,
                            dashed=is_validation(name),
                        )
                    )
        svg = chart_svg(f"c{index}", title, series, markers)
        charts.append(f'<div class="chart" id="chart-{esc(title)}">{svg}</div>')
    issue_list = "".join(
        f'<li id="marker-{m.number}"><strong>{esc(m.label)}</strong> '
        f'<span class="muted">{esc(m.timestamp)}</span><br>{esc(m.text)}</li>'
        for m in markers
    )
    body = (
        "<h1>Run comparison</h1>"
        + table(("", "A", "B"), rows, cls="sides")
        + f"<h2>Hyperparameters that differ</h2>{hyper}"
        + f"<h2>Final and best metrics</h2>{metrics}"
        + f"<h2>Evaluation (the last MODEL_EVALUATED of each run)</h2>{evaluation}"
        + "<h2>Curves (A blue, B orange; validation dashed)</h2>"
        + ("\n".join(charts) or '<p class="muted">No metric curve in either run.</p>')
        + "<h2>Issues</h2>"
        + (f'<ol class="markers">{issue_list}</ol>' if markers else '<p class="muted">None.</p>')
    )
    return document(f"Run comparison: {a.session} vs {b.session}", body)
