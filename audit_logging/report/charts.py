"""Metric charts as inline SVG text, drawn by matplotlib (the ``report`` extra).

Each chart is a :class:`matplotlib.figure.Figure` rendered by the SVG canvas
(no pyplot, so no global backend is switched and nothing opens a window).
Artists get stable ids the tests and the page rely on:

* ``{chart}-series-{metric}``: the line of one metric (one per metric);
* ``{chart}-band-{metric}``: the summarised range between journal lines;
* ``{chart}-marker-{n}``: marker ``n`` (an issue, a decision, a change), a
  link to ``#marker-{n}`` in the page's list, with the reasoning in an SVG
  ``<title>`` so that a browser shows it on hover.

matplotlib has no API for ``<title>``; its own tooltip example inserts it in
the SVG text after rendering, as :func:`_add_titles` does.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit_logging._optional import require_module
from audit_logging.report.curves import Band, Curve, numpy
from audit_logging.report.model import Marker

__all__ = ["MARKER_COLORS", "Series", "chart_svg"]

MARKER_COLORS = {"issue": "#d62728", "decision": "#2ca02c", "hyperparameters": "#9467bd"}
_SVG_START = re.compile(r"<svg\b[^>]*>", re.S)
_LINK = re.compile(r'<a xlink:href="#marker-(\d+)"(?: target="_blank")?>')
_DRAW_ORDER = {"decision": 0, "hyperparameters": 1, "issue": 2}
_SIZE = re.compile(r'\s(width|height)="[^"]*"')
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


@dataclass(frozen=True)
class Series:
    """One line of a chart: its label, points, optional band, and style."""

    name: str
    curve: Curve
    band: Band | None = None
    color: str | None = None
    dashed: bool = False


def _matplotlib() -> tuple[Any, Any, Any]:
    """matplotlib, its Figure and SVG canvas; MissingExtraError names the ``report`` extra."""
    matplotlib = require_module(
        "matplotlib", extra="report", package="matplotlib", feature="The run report"
    )
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    return matplotlib, Figure, FigureCanvasSVG


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def chart_svg(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    markers: Sequence[Marker] = (),
    xlabel: str = "step",
) -> str:
    """One chart as an ``<svg>`` element (no XML prolog), scaled to its container's width."""
    matplotlib, figure_class, canvas_class = _matplotlib()
    np = numpy()
    # parse_math off: a metric named "cost$" is a name, not a broken formula.
    rc = {
        "svg.fonttype": "none",
        "svg.hashsalt": chart_id,
        "font.size": 9,
        "text.parse_math": False,
    }
    with matplotlib.rc_context(rc):
        fig = figure_class(figsize=(9, 3.4), layout="constrained")
        canvas_class(fig)
        ax = fig.add_subplot()
        ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
        ax.set_xlabel(xlabel)
        ax.grid(True, color="#e5e5e5", linewidth=0.6)
        lows: list[float] = []
        legend: list[tuple[Any, str]] = []  # given whole: a name starting with "_" is kept
        for index, one in enumerate(series):
            color = one.color or f"C{index % 10}"
            slug = _slug(one.name)
            if one.band is not None and len(one.band):
                x0, x1, lo, hi = one.band.ranges()
                xs = np.column_stack((x0, x1)).ravel()
                band = ax.fill_between(
                    xs,
                    np.repeat(lo, 2),
                    np.repeat(hi, 2),
                    color=color,
                    alpha=0.18,
                    linewidth=0,
                    gid=f"{chart_id}-band-{slug}",
                )
                legend.append((band, f"{one.name} (range between lines)"))
                lows.append(float(x0.min()))
            x, y = one.curve.points()
            if len(x):
                lows.append(float(x.min()))
            (line,) = ax.plot(
                x,
                y,
                color=color,
                linewidth=1.3,
                linestyle="--" if one.dashed else "-",
                marker="o" if len(x) < 40 else None,
                markersize=2.5,
            )
            line.set_gid(f"{chart_id}-series-{slug}")
            legend.append((line, one.name))
        left = min(lows) if lows else 0.0
        # One line collection and one triangle collection per kind (thousands of
        # markers stay cheap), each element a link to its list entry; issues drawn
        # last, on top of a decision at the same step.
        xaxis = ax.get_xaxis_transform()
        for kind in sorted({m.kind for m in markers}, key=lambda k: _DRAW_ORDER.get(k, 0)):
            mine = [m for m in markers if m.kind == kind]
            xs = [m.x if m.x is not None else left for m in mine]
            urls = [f"#marker-{m.number}" for m in mine]
            color = MARKER_COLORS.get(kind, "#555555")
            lines = ax.vlines(
                xs,
                0,
                1,
                transform=xaxis,
                colors=color,
                linewidth=1.0,
                alpha=0.75,
                linestyles=":",
                gid=f"{chart_id}-markers-{kind}",
            )
            lines.set_urls(urls)
            heads = ax.scatter(
                xs,
                [1.0] * len(xs),
                transform=xaxis,
                marker="v",
                s=40,
                color=color,
                clip_on=False,
                zorder=3,
                gid=f"{chart_id}-heads-{kind}",
            )
            heads.set_urls(urls)
        if legend:
            artists, labels = zip(*legend, strict=True)
            ax.legend(artists, labels, loc="upper right", fontsize=8, framealpha=0.85)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return _inline(_add_titles(buffer.getvalue(), chart_id, markers))


def _add_titles(svg: str, chart_id: str, markers: Sequence[Marker]) -> str:
    """A ``<title>`` (the hover text) in each marker's link."""
    titles = {
        str(m.number): html.escape(
            f"#{m.number} {m.label}, step {_step(m.x)}, {m.timestamp}\n{m.text}"
        )
        for m in markers
    }

    def add(match: re.Match[str]) -> str:
        # matplotlib opens links in a new tab; the list is on the same page.
        number = match.group(1)
        return f'<a xlink:href="#marker-{number}"><title>{titles.get(number, "")}</title>'

    return _LINK.sub(add, svg)


def _step(x: float | None) -> str:
    if x is None:
        return "(before the first progress line)"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _inline(svg: str) -> str:
    """The ``<svg>`` element alone, its fixed size replaced by the container's width."""
    start = svg.find("<svg")
    svg = svg[start:]
    match = _SVG_START.match(svg)
    if match is None:  # pragma: no cover - matplotlib always writes one
        return svg
    tag = _SIZE.sub("", match.group(0))
    tag = tag[:-1] + ' width="100%" role="img">'
    # The RDF metadata names namespaces by URL; a report references nothing outside itself.
    return tag + _METADATA.sub("", svg[match.end() :], count=1)
