"""SQL over the audit logs of any number of runs, on DuckDB (``audit-logging sql PLACE QUERY``).

Three views over the files found under ``PLACE`` (a folder, searched
recursively; a bucket's layout pulled or copied to disk reads the same):

``journal``
    every journal line (``*.jsonl``, and ``journal/dt=YYYY-MM-DD/*.jsonl``);
``actions``
    every action entry: ``audit_log*.json`` arrays, action-audit CSV files
    (``timestamp,action_type,...`` header; cells restored from their formula
    guard) and ``actions/dt=YYYY-MM-DD/*.jsonl`` lines. An entry present in
    both the array and the CSV of one folder (one writer set fills both) is
    one row, the array's;
``warnings``
    every persistent warning (``training_logs/warnings/*.json`` files and
    ``warnings/dt=YYYY-MM-DD/*.jsonl`` lines).

The columns are the members of each kind's JSON Schema (``audit_logging/schemas``),
in its order, with the type the schema gives, so that a query never depends
on what the files happen to hold: ``timestamp`` is a ``TIMESTAMP`` (UTC),
integers ``BIGINT``, text ``VARCHAR``, and ``metrics_snapshot``, ``details``,
``extra`` are ``JSON`` (``metrics_snapshot->>'$.val_loss'``). A member a file
lacks (files written before it existed) is ``NULL``; a value of another type
than the schema's is ``NULL`` too for numbers and times, its JSON text for
text. Each view adds ``file`` (the path below ``PLACE``) and ``folder`` (the
run folder below ``PLACE``: the file's folder without the writers' ``logs``
or ``training_logs/warnings``, or the prefix of the partitioned layout);
``actions`` adds ``source`` (``json``, ``csv`` or ``jsonl``). A line that is
not JSON is skipped (``verify`` names it).

Output (``--format``): an aligned ``table`` (cells cut at 80 characters), ``csv``,
``json`` (one array, JSON columns as values) or ``jsonl``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import decimal
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from audit_logging import schemas
from audit_logging._optional import require_module
from audit_logging.bucket_layout import is_partition
from audit_logging.formats import kind_of

__all__ = ["VIEWS", "SqlFiles", "add_commands", "connect", "find_files", "run_query"]

VIEWS = ("journal", "actions", "warnings")
FORMATS = ("table", "csv", "json", "jsonl")
_PARTITION = re.compile(r"^dt=\d{4}-\d{2}-\d{2}$")
# Big enough for any line a writer keeps (values are cut long before that).
_MAX_OBJECT = 64 << 20


def _duckdb() -> Any:
    """The ``duckdb`` module; :class:`MissingExtraError` naming the ``sql`` extra without it."""
    return require_module("duckdb", extra="sql", package="duckdb", feature="audit-logging sql")


# ---------------------------------------------------------------------- files


@dataclass
class SqlFiles:
    """The files under a place, sorted by how they are read."""

    journals: list[Path] = field(default_factory=list)
    arrays: list[Path] = field(default_factory=list)
    csvs: list[Path] = field(default_factory=list)
    action_lines: list[Path] = field(default_factory=list)
    warning_files: list[Path] = field(default_factory=list)
    warning_lines: list[Path] = field(default_factory=list)

    def all(self) -> list[Path]:
        return [
            *self.journals, *self.arrays, *self.csvs,
            *self.action_lines, *self.warning_files, *self.warning_lines,
        ]  # fmt: skip


def _classify(path: Path, files: SqlFiles) -> None:
    # Pieces of a bucket copied as it is ({kind}/dt=YYYY-MM-DD/...): the layout's
    # own rule; anything else: the rule every reader uses.
    parts = path.parts
    if len(parts) >= 3 and is_partition(f"{parts[-3]}/{parts[-2]}"):
        area = {"journal": files.journals, "actions": files.action_lines}
        area["warnings"] = files.warning_lines
        target = area.get(parts[-3])  # seals, csv pieces and other files hold no rows
        if target is not None and path.suffix == ".jsonl":
            target.append(path)
        return
    target = {
        "journal": files.journals,
        "array": files.arrays,
        "csv": files.csvs,
        "warning": files.warning_files,
    }.get(kind_of(path) or "")
    if target is not None:
        target.append(path)


def find_files(place: str | os.PathLike[str]) -> SqlFiles:
    """The audit outputs under ``place`` (a folder, searched recursively, or one file)."""
    root = Path(place)
    files = SqlFiles()
    if root.is_file():
        _classify(root, files)
        return files
    if not root.is_dir():
        raise FileNotFoundError(2, "No such file or directory", str(root))
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            _classify(Path(directory, name), files)
    return files


def _folder(path: Path, root: Path) -> str:
    """The run folder of ``path`` below ``root``: what ``configure(root_dir=...)`` was given."""
    parent = path.parent
    if parent.name == "warnings" and parent.parent.name == "training_logs":
        parent = parent.parent.parent
    elif parent.name == "logs":
        parent = parent.parent
    elif _PARTITION.match(parent.name):  # {prefix}/{journal,actions,warnings}/dt=.../
        parent = parent.parent.parent
    try:
        rel = parent.relative_to(root)
    except ValueError:
        return ""
    return rel.as_posix()


# ---------------------------------------------------------------------- columns


def _resolve(kind_schema: dict[str, Any], member: dict[str, Any]) -> dict[str, Any]:
    ref = member.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {**kind_schema["$defs"][ref[len("#/$defs/") :]], **member}
    return member


def _sql_type(member: dict[str, Any]) -> str:
    """The DuckDB type of a schema member."""
    if member.get("format") == "date-time":
        return "TIMESTAMP"
    if "const" in member:
        return "BIGINT" if isinstance(member["const"], int) else "VARCHAR"
    kinds = member.get("type", [])
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    kinds.discard("null")
    if kinds == {"string"}:
        return "VARCHAR"
    if kinds == {"integer"}:
        return "BIGINT"
    if kinds <= {"integer", "number"} and kinds:
        return "DOUBLE"
    if kinds == {"boolean"}:
        return "BOOLEAN"
    return "JSON"


def columns(kind: str) -> list[tuple[str, str]]:
    """``(name, DuckDB type)`` of each member of ``kind``'s schema, in order."""
    schema = schemas.load(kind)
    return [(name, _sql_type(_resolve(schema, m))) for name, m in schema["properties"].items()]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _paths(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(_lit(str(p)) for p in paths) + "]"


def _read_json(paths: Sequence[Path], cols: list[tuple[str, str]], fmt: str) -> str:
    # Read what may hold another type as VARCHAR or JSON (never fails), then cast
    # with TRY_CAST: one odd value must not break a query over hundreds of runs.
    raw = {n: ("VARCHAR" if t in ("VARCHAR", "TIMESTAMP") else "JSON") for n, t in cols}
    spec = "{" + ", ".join(f"{_lit(n)}: {_lit(t)}" for n, t in raw.items()) + "}"
    return (
        f"read_json({_paths(paths)}, format={_lit(fmt)}, columns={spec}, filename=true, "
        f"ignore_errors=true, maximum_object_size={_MAX_OBJECT})"
    )


def _typed(cols: list[tuple[str, str]], prefix: str = "r.") -> str:
    out = []
    for name, sql_type in cols:
        ref = prefix + _q(name)
        if sql_type in ("VARCHAR", "JSON"):
            out.append(f"{ref} AS {_q(name)}")
        else:
            out.append(f"TRY_CAST({ref} AS {sql_type}) AS {_q(name)}")
    return ", ".join(out)


def _empty(cols: list[tuple[str, str]], *extra: str) -> str:
    names = [f"CAST(NULL AS {t}) AS {_q(n)}" for n, t in cols]
    names += [f"CAST(NULL AS VARCHAR) AS {_q(e)}" for e in extra]
    return f"SELECT {', '.join(names)} WHERE false"


#: The member that makes a record one of its kind; a line without it (a line that
#: is not JSON reads as all NULL) is no record of that kind.
_KEY = {"journal": "event", "action": "action_type", "warning": "type"}


def _select(source: str, kind: str, tag: str | None = None) -> str:
    tagged = f", {_lit(tag)} AS source" if tag else ""
    return (
        f"SELECT {_typed(columns(kind))}, f.file, f.folder{tagged} "
        f"FROM {source} AS r JOIN _files AS f ON r.filename = f.path "
        f"WHERE r.{_q(_KEY[kind])} IS NOT NULL"
    )


def _restored(name: str) -> str:
    # audit_log.csv writes a cell starting with = + - @ tab or CR behind a quote
    # (formula injection); undo it as csv.restore_cell does.
    ref = f"c.{_q(name)}"
    return f"CASE WHEN regexp_matches({ref}, '^''[=+\\-@\\t\\r]') THEN {ref}[2:] ELSE {ref} END"


def _csv_select(paths: Sequence[Path], cols: list[tuple[str, str]]) -> str:
    present = {"timestamp", "action_type", "status", "details", "error"}
    parts = []
    for name, sql_type in cols:
        if name not in present:
            parts.append(f"CAST(NULL AS {sql_type}) AS {_q(name)}")
        elif name == "timestamp":
            parts.append(f"TRY_CAST(c.timestamp AS TIMESTAMP) AS {_q(name)}")
        elif name == "details":
            parts.append(f"COALESCE(TRY_CAST({_restored(name)} AS JSON), '{{}}') AS details")
        else:
            parts.append(f"{_restored(name)} AS {_q(name)}")
    source = (
        f"read_csv({_paths(paths)}, header=true, all_varchar=true, union_by_name=true, "
        "filename=true, ignore_errors=true)"
    )
    return (
        f"SELECT {', '.join(parts)}, f.file, f.folder, 'csv' AS source "
        f"FROM {source} AS c JOIN _files AS f ON c.filename = f.path "
        "WHERE c.action_type IS NOT NULL"
    )


def _views(files: SqlFiles) -> dict[str, str]:
    journal, action, warning = columns("journal"), columns("action"), columns("warning")
    lines, views = "newline_delimited", {}
    if files.journals:
        views["journal"] = _select(_read_json(files.journals, journal, lines), "journal")
    else:
        views["journal"] = _empty(journal, "file", "folder")

    parts = []
    if files.warning_files:
        parts.append(_select(_read_json(files.warning_files, warning, "unstructured"), "warning"))
    if files.warning_lines:
        parts.append(_select(_read_json(files.warning_lines, warning, lines), "warning"))
    views["warnings"] = " UNION ALL ".join(parts) or _empty(warning, "file", "folder")

    json_parts = []
    if files.arrays:
        json_parts.append(_select(_read_json(files.arrays, action, "array"), "action", "json"))
    if files.action_lines:
        source = _read_json(files.action_lines, action, lines)
        json_parts.append(_select(source, "action", "jsonl"))
    rich = " UNION ALL ".join(json_parts) or _empty(action, "file", "folder", "source")
    if not files.csvs:
        views["actions"] = rich
        return views
    # One writer set puts an action in both the array and the CSV of a folder:
    # keep the array's row (it has every member), drop its CSV copy.
    same = " AND ".join(
        f"c.{_q(n)} IS NOT DISTINCT FROM j.{_q(n)}"
        for n in ("folder", "timestamp", "action_type", "status", "error")
    )
    views["actions"] = (
        f"WITH j AS ({rich}), c AS ({_csv_select(files.csvs, action)}) "
        "SELECT * FROM j UNION ALL SELECT * FROM c WHERE NOT EXISTS "
        f"(SELECT 1 FROM j WHERE {same} AND json(c.details) = json(j.details))"
    )
    return views


def connect(place: str | os.PathLike[str]) -> Any:
    """An in-memory DuckDB connection with the views ``journal``, ``actions``, ``warnings``.

    Raises ``FileNotFoundError`` if ``place`` does not exist, ``ImportError``
    (naming the ``sql`` extra) without DuckDB.
    """
    duckdb = _duckdb()
    root = Path(place)
    files = find_files(root)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    base = root if root.is_dir() else root.parent
    rows = [(str(p), p.relative_to(base).as_posix(), _folder(p, base)) for p in files.all()]
    con.execute("CREATE TABLE _files (path VARCHAR, file VARCHAR, folder VARCHAR)")
    if rows:
        con.executemany("INSERT INTO _files VALUES (?, ?, ?)", rows)
    for name, body in _views(files).items():
        con.execute(f"CREATE VIEW {name} AS {body}")
    return con


# ---------------------------------------------------------------------- output


def _iso(value: dt.datetime) -> str:
    text = value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text + "Z" if value.tzinfo is None or value.utcoffset() == dt.timedelta(0) else text


def _value(value: Any, is_json: bool) -> Any:
    """A result cell as a JSON value: JSON columns parsed, times as our ISO text."""
    if value is None:
        return None
    if is_json and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (list, tuple)):
        return [_value(v, False) for v in value]
    if isinstance(value, dict):
        return {str(k): _value(v, False) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _text(value: Any, is_json: bool) -> str:
    """A result cell as text for a table or CSV: JSON as compact JSON, ``NULL`` as empty."""
    shown = _value(value, is_json)
    if shown is None:
        return ""
    if isinstance(shown, str):
        return shown
    return json.dumps(shown, ensure_ascii=False, separators=(",", ":"))


def _rows(cursor: Any, batch: int = 10_000) -> Iterator[tuple[Any, ...]]:
    while chunk := cursor.fetchmany(batch):
        yield from chunk


def write_result(cursor: Any, fmt: str, out: TextIO) -> int:
    """Write the rows of an executed ``cursor`` to ``out`` as ``fmt``; the number of rows."""
    names = [d[0] for d in cursor.description or ()]
    is_json = [str(d[1]) == "JSON" for d in cursor.description or ()]
    count = 0
    if fmt == "table":
        cells = [
            [c if len(c) <= 80 else c[:79] + "…" for c in map(_text, row, is_json)]
            for row in _rows(cursor)
        ]
        widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
        for row in [names, ["-" * w for w in widths], *cells]:
            print(
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out
            )
        return len(cells)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for found in _rows(cursor):
            writer.writerow(list(map(_text, found, is_json)))
            count += 1
        return count
    for found in _rows(cursor):
        obj = {n: _value(v, j) for n, v, j in zip(names, found, is_json, strict=True)}
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str)
        if fmt == "jsonl":
            out.write(text + "\n")
        else:
            out.write(("[\n" if count == 0 else ",\n") + text)
        count += 1
    if fmt == "json":
        out.write("\n]\n" if count else "[]\n")
    return count


def run_query(
    place: str | os.PathLike[str], query: str, fmt: str = "table", out: TextIO | None = None
) -> int:
    """Run ``query`` over the views of ``place`` and write the result; the number of rows."""
    con = connect(place)
    try:
        return write_result(con.execute(query), fmt, out or sys.stdout)
    finally:
        con.close()


# ---------------------------------------------------------------------- command


def _command(args: argparse.Namespace) -> int:
    try:
        duckdb = _duckdb()
    except ImportError as exc:
        print(f"audit-logging: {exc}", file=sys.stderr)
        return 2
    try:
        run_query(args.place, args.query, args.format)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"audit-logging: sql: {first}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"audit-logging: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2
    return 0


def add_commands(subparsers: Any) -> None:
    """Add the ``sql`` command to the ``audit-logging`` parser's subparsers."""
    p = subparsers.add_parser(
        "sql",
        help="SQL over the logs (DuckDB): views journal, actions, warnings",
        description=(__doc__ or "").split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "place", metavar="PLACE", help="a folder of runs (searched recursively) or a file"
    )
    p.add_argument(
        "query", metavar="QUERY", help='e.g. "SELECT event, count(*) FROM journal GROUP BY 1"'
    )
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=_command)
