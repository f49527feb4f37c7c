"""HTML building blocks shared by the run report and the comparison.

Every value that comes from a log passes through :func:`esc` (``html.escape``):
log content is untrusted, and a reasoning or a details value may hold
``<script>``. The page references nothing outside itself: inline CSS, inline
SVG, no script, and a Content-Security-Policy of ``default-src 'none'`` (inline
styles allowed) so that a browser fetches nothing even if something slipped
through.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["document", "esc", "fmt_duration", "fmt_value", "kv_table", "table"]

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #1d2330; background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 18px 22px 40px; }
h1 { font-size: 22px; margin: 4px 0 10px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d8dce3; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
header.run { background: #fff; border: 1px solid #d8dce3; border-radius: 8px; padding: 14px 18px; }
.badges { display: flex; gap: 10px; flex-wrap: wrap; margin: 6px 0 10px; }
.badge { display: inline-block; font-weight: 700; font-size: 15px; padding: 6px 12px;
  border-radius: 6px; color: #fff; }
.ok { background: #1b7f3b; } .bad { background: #b42318; } .warn { background: #b54708; }
.unknown { background: #667085; }
.reason { margin: 4px 0 10px; white-space: pre-wrap; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 0; }
dl.facts dt { color: #555e6e; } dl.facts dd { margin: 0; font-family: ui-monospace, monospace;
  overflow-wrap: anywhere; }
.alert { border: 2px solid #b42318; background: #fef3f2; border-radius: 6px; padding: 8px 12px;
  margin-top: 10px; }
nav { margin: 12px 0; font-size: 13px; } nav a { margin-right: 12px; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 13px; }
th, td { border: 1px solid #e1e4ea; padding: 4px 7px; text-align: left; vertical-align: top;
  overflow-wrap: anywhere; }
th { background: #eef0f4; font-weight: 600; }
table.sides { table-layout: fixed; }
table.log td:first-child { white-space: nowrap; font-size: 12px; }
table.log td:nth-child(2) { white-space: nowrap; }
table.issues td:first-child { width: 14em; } table.issues td:nth-child(3) { width: 11em; }
table.issues td:nth-child(4) { width: 32%; }
table.sides th:first-child, table.sides td:first-child { width: 10em; }
td.num { text-align: right; font-family: ui-monospace, monospace; white-space: nowrap; }
.mono { font-family: ui-monospace, monospace; }
.tag { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 4px;
  background: #eef0f4; color: #344054; margin-left: 4px; }
.chart { background: #fff; border: 1px solid #d8dce3; border-radius: 8px; margin: 10px 0;
  padding: 6px; }
.legend span { margin-right: 14px; } .swatch { display: inline-block; width: 12px; height: 12px;
  border-radius: 2px; vertical-align: -1px; margin-right: 4px; }
ol.markers li { margin: 3px 0; } ol.markers li:target { background: #fff6d6; }
.muted { color: #667085; } footer { margin-top: 30px; font-size: 12px; color: #667085; }
.changes td { border: 0; padding: 0 6px 0 0; } .before { color: #b42318; }
.after { color: #1b7f3b; }
"""


def esc(value: Any) -> str:
    """``value`` as escaped HTML text (mappings and lists as compact JSON)."""
    if isinstance(value, (Mapping, list, tuple)):
        try:
            value = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            value = str(value)
    return html.escape("" if value is None else str(value), quote=True)


def fmt_value(value: Any) -> str:
    """A number with 6 significant digits, anything else as text (not escaped)."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def fmt_duration(seconds: float | None) -> str:
    """``1 h 02 min 03 s``, ``4.2 s``; ``unknown`` for ``None``."""
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.3g} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str = "None.", cls: str = ""
) -> str:
    """A table of already-escaped cells; ``empty`` (escaped here) when there is no row."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>\n" for row in rows)
    if not body:
        return f'<p class="muted">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    attribute = f' class="{esc(cls)}"' if cls else ""
    return f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def kv_table(values: Mapping[str, Any], empty: str = "None.") -> str:
    """A two-column table name / value of a mapping (escaped here)."""
    rows = [(f'<span class="mono">{esc(k)}</span>', esc(fmt_value(v))) for k, v in values.items()]
    return table(("name", "value"), rows, empty)


def document(title: str, body: str) -> str:
    """A whole self-contained HTML page."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
