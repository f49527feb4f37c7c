"""The ``audit-logging`` command (also ``python -m audit_logging``).

``summary PATH... [--json]``
    Counts by event, action type, status, warning type and severity; time span; sessions.
``query PATH... [--event E] [--action A] [--status S] [--type T] [--since ISO] [--until ISO]
[--session ID] [--format jsonl|json|csv|table] [--limit N]``
    Matching records, newest first, streamed.
``verify PATH... [--key KEY]``
    Check the journals' hash chains and digests: exit 0 when intact, else 1 and
    one line per problem (file, line, what is wrong).
``tail PATH [-n N] [-f]``
    The last lines of the newest journal; with ``-f``, follow it across day rotation.
``export PATH --to csv|json [--output FILE]``
    Journal lines as a spreadsheet or a JSON array.
``warnings DIR``
    Warning files per type and severity, then the list, newest first.
``demo [--out DIR]``
    Simulate a short training run, write real logs under DIR, print a summary.

PATH may be a folder (searched recursively), a file, or ``gs://bucket/prefix``
(with the ``gcs`` extra). Errors are one line on stderr and a non-zero exit
status, never a traceback; a malformed line is reported with its file and line
number and the rest is still processed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from audit_logging import reader, sql
from audit_logging._files import size_between_batches
from audit_logging.chain import hasher_from_env, iter_journals, log_kind, verify_paths
from audit_logging.records import cell
from audit_logging.schema import (
    ACTION_FIELDS,
    JOURNAL_CONTEXT_FIELDS,
    JOURNAL_FIELDS,
    WARNING_FIELDS,
)

__all__ = ["main"]


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _warn(message: str) -> None:
    print(f"audit-logging: {message}", file=sys.stderr)


# ---------------------------------------------------------------------- output helpers


def _fields_for(kind: str) -> tuple[str, ...]:
    if kind == "journal":
        return (*JOURNAL_FIELDS, *JOURNAL_CONTEXT_FIELDS)
    if kind == "action":
        return ACTION_FIELDS
    return WARNING_FIELDS


def _table_row(entry: reader.Entry) -> list[str]:
    d = entry.data
    if entry.kind == "journal":
        what, state, text = d.get("event"), d.get("level"), d.get("reasoning") or d.get("message")
    elif entry.kind == "action":
        what, state, text = (
            d.get("action_type"),
            d.get("status"),
            d.get("error") or d.get("details"),
        )
    else:
        what, state, text = d.get("type"), d.get("severity"), d.get("message")
    if isinstance(text, (dict, list)):
        text = json.dumps(text, ensure_ascii=False)
    text = " ".join(str(text or "").split())
    return [entry.timestamp, entry.kind, str(what or ""), str(state or ""), text[:80]]


def _print_table(rows: list[list[str]], out: TextIO, headers: Sequence[str]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


def _split(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """Local paths and ``gs://`` prefixes."""
    return [p for p in paths if not p.startswith("gs://")], [
        p for p in paths if p.startswith("gs://")
    ]


def _sources(paths: Sequence[str]) -> reader.Sources:
    local, remote = _split(paths)
    sources = reader.discover(local)
    if remote:
        sources = _add_gcs_sources(sources, remote)
    return sources


def _add_gcs_sources(sources: reader.Sources, urls: Sequence[str]) -> reader.Sources:
    try:
        from audit_logging.writers import gcs
    except ImportError as exc:  # pragma: no cover - the gcs extra is missing
        raise CommandError(str(exc)) from exc
    cache = Path(os.environ.get("AUDIT_LOG_CACHE") or _temp_dir())
    for url in urls:
        try:
            objects = gcs.list_gcs_objects(url)
        except Exception as exc:
            raise CommandError(f"cannot list {url}: {type(exc).__name__}: {exc}") from exc
        for obj in objects:
            # Streamed to a local spool file chunk by chunk (never held in memory),
            # so the same readers serve local and remote logs.
            target = cache / obj.bucket / obj.name
            target.parent.mkdir(parents=True, exist_ok=True)
            with gcs.open_gcs_object(obj) as stream, target.open("wb") as fh:
                while chunk := stream.read(1 << 20):
                    fh.write(chunk)
            reader.classify(target, sources)
    return sources


def _temp_dir() -> str:
    import atexit
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="audit-logging-gcs-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# ---------------------------------------------------------------------- summary


def _cmd_summary(args: argparse.Namespace) -> int:
    summary = reader.summarize(_sources(args.paths), on_error=_warn)
    data = summary.as_dict()
    if args.json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    print(f"journal lines  {data['journal_lines']}")
    print(f"actions        {data['actions']}")
    print(f"warnings       {data['warnings']}")
    print(f"time span      {data['first'] or '-'} .. {data['last'] or '-'}")
    print(
        f"sessions       {len(data['sessions'])}"
        + (
            f"  ({', '.join(data['sessions'][:5])}"
            + (", ..." if len(data["sessions"]) > 5 else "")
            + ")"
            if data["sessions"]
            else ""
        )
    )
    for title, key in (
        ("by event", "by_event"),
        ("by action type", "by_action_type"),
        ("by status", "by_status"),
        ("by warning type", "by_warning_type"),
        ("by severity", "by_severity"),
    ):
        counts = data[key]
        if counts:
            print(f"\n{title}")
            for name, count in counts.items():
                print(f"  {count:8d}  {name}")
    return 0


# ---------------------------------------------------------------------- query


def _query_from(args: argparse.Namespace) -> reader.Query:
    try:
        since = reader.parse_time(args.since) if args.since else None
        until = reader.parse_time(args.until) if args.until else None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return reader.Query(
        event=args.event, action=args.action, status=args.status, type=args.type,
        session=args.session, since=since, until=until,
    )  # fmt: skip


def _matching(
    sources: reader.Sources, query: reader.Query, limit: int | None
) -> Iterator[reader.Entry]:
    sources.journals = [p for p in sources.journals if not query.skips_journal(p)]
    if query.event is not None or query.session is not None:
        sources.actions_json, sources.actions_csv, sources.warnings = [], [], []
    count = 0
    for entry in reader.iter_entries(sources, newest_first=True, on_error=_warn):
        if query.matches(entry):
            yield entry
            count += 1
            if limit is not None and count >= limit:
                return


def _write_json_array(out: TextIO, entries: Iterable[reader.Entry]) -> None:
    """``entries`` as one JSON array, an entry per line, streamed (never held whole)."""
    out.write("[")
    for n, entry in enumerate(entries):
        out.write(("," if n else "") + "\n  " + json.dumps(entry.data, ensure_ascii=False))
    out.write("\n]\n")


def _cmd_query(args: argparse.Namespace) -> int:
    entries = _matching(_sources(args.paths), _query_from(args), args.limit)
    out = sys.stdout
    if args.format == "jsonl":
        for entry in entries:
            print(json.dumps(entry.data, ensure_ascii=False), file=out)
    elif args.format == "json":
        _write_json_array(out, entries)
    elif args.format == "csv":
        writer = csv.writer(out)
        header: tuple[str, ...] | None = None
        for entry in entries:
            if header is None:
                header = ("kind", *_fields_for(entry.kind))
                writer.writerow(header)
            writer.writerow([entry.kind, *(cell(entry.data.get(f)) for f in header[1:])])
    else:
        _print_table(
            [_table_row(e) for e in entries],
            out,
            ("timestamp", "kind", "what", "level/status", "text"),
        )
    return 0


# ---------------------------------------------------------------------- verify


def _cmd_verify(args: argparse.Namespace) -> int:
    hasher = hasher_from_env(args.key)
    local, remote = _split(args.paths)
    paths: list[str | Path] = list(local)
    if remote:
        spooled = _add_gcs_sources(reader.Sources(), remote)
        # Every chained log of the bucket, chosen as verify chooses them in a folder.
        found = (*spooled.journals, *spooled.actions_json, *spooled.actions_csv)
        paths += [p for p in found if log_kind(p)]
    progress = sys.stderr.isatty()

    def show(n: int, total: int, journal: Path) -> None:
        if progress and total > 1:
            done = int(30 * n / total)
            bar = f"[{'#' * done}{'.' * (30 - done)}] {n}/{total} {journal.name[:40]:<40}"
            sys.stderr.write("\r" + bar)
            sys.stderr.flush()

    report = verify_paths(paths, hasher, on_file=show)
    if progress:
        sys.stderr.write("\r" + " " * 80 + "\r")
    if not report.files:
        raise CommandError(
            "no journal, audit_log*.json or chained CSV found under " + " ".join(args.paths)
        )
    for problem in sorted(report.problems, key=lambda p: (p.path, p.line or 0)):
        print(problem)
    status = "intact" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"{report.files} file(s), {report.lines} line(s): {status}", file=sys.stderr)
    return 0 if report.ok else 1


# ---------------------------------------------------------------------- tail


def _newest_journal(path: Path) -> Path | None:
    if path.is_file():
        return path
    journals = sorted(
        path.rglob("*.jsonl"), key=lambda p: (reader.journal_day(p), p.stat().st_mtime)
    )
    return journals[-1] if journals else None


def _cmd_tail(args: argparse.Namespace) -> int:
    root = Path(args.path)
    if not root.exists():
        raise FileNotFoundError(2, "No such file or directory", str(root))
    current = _newest_journal(root)
    position = 0
    if current is not None:
        # Taken before reading, between two batches: what comes later is followed,
        # and a batch being appended is not printed in part.
        position = size_between_batches(current)
        for line in _last_lines(current, args.lines, position):
            sys.stdout.write(line.decode("utf-8", "replace") + "\n")
    sys.stdout.flush()
    if not args.follow:
        return 0
    deadline = time.monotonic() + args.max_seconds if args.max_seconds else None
    pending = b""
    while deadline is None or time.monotonic() < deadline:
        newest = _newest_journal(root) if root.is_dir() else current
        if newest is not None and newest != current:
            if current is not None:  # finish the old day before moving on
                pending, _ = _print_from(current, position, pending)
            current, position, pending = newest, 0, b""
        if current is not None and current.exists():
            size = current.stat().st_size
            if size < position:
                position = 0  # truncated or replaced
            if size > position:
                pending, position = _print_from(current, position, pending)
        time.sleep(args.interval)
    return 0


def _last_lines(path: Path, count: int, end: int) -> Iterator[bytes]:
    lines: list[bytes] = []
    for _, line in reader.iter_lines_backwards(path, end):
        if len(lines) >= count:
            break
        lines.append(line)
    return reversed(lines)


def _print_from(path: Path, position: int, pending: bytes) -> tuple[bytes, int]:
    """Print the whole lines from ``position`` on; the unfinished rest and where reading stopped."""
    with path.open("rb") as fh:
        fh.seek(position)
        data = pending + fh.read()
        position = fh.tell()  # not a size taken earlier: what was read, exactly once
    *complete, rest = data.split(b"\n")
    for line in complete:
        sys.stdout.write(line.decode("utf-8", "replace") + "\n")
    sys.stdout.flush()
    return rest, position


# ---------------------------------------------------------------------- export


def _cmd_export(args: argparse.Namespace) -> int:
    journals = list(iter_journals([args.path]))
    if not journals:
        raise CommandError(f"no journal (*.jsonl) found under {args.path}")
    sources = reader.Sources(journals=journals)
    entries = reader.iter_entries(sources, on_error=_warn)
    out: TextIO
    with open(args.output, "w", newline="", encoding="utf-8") if args.output else _stdout() as out:
        if args.to == "csv":
            fields = (*JOURNAL_FIELDS, *JOURNAL_CONTEXT_FIELDS, "hash")
            writer = csv.writer(out)
            writer.writerow(fields)
            for entry in entries:
                writer.writerow([cell(entry.data.get(f)) for f in fields])
        else:
            _write_json_array(out, entries)
    return 0


def _stdout() -> Any:
    class _Borrowed(io.TextIOWrapper):
        def close(self) -> None:  # never close the real stdout
            self.flush()
            self.detach()

    return _Borrowed(sys.stdout.buffer, encoding="utf-8", newline="", write_through=True)


# ---------------------------------------------------------------------- warnings


def _cmd_warnings(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if not directory.is_dir():
        raise FileNotFoundError(2, "No such directory", str(directory))
    sources = reader.discover([directory])
    entries = list(
        reader.iter_entries(
            reader.Sources(warnings=sources.warnings), newest_first=True, on_error=_warn
        )
    )
    counts = Counter((str(e.data.get("type")), str(e.data.get("severity"))) for e in entries)
    if args.json:
        json.dump(
            {
                "by_type_and_severity": [
                    {"type": t, "severity": s, "count": c} for (t, s), c in counts.most_common()
                ],
                "warnings": [dict(e.data, file=Path(e.source).name) for e in entries],
            },
            sys.stdout,
            indent=2,
            ensure_ascii=False,
        )
        print()
        return 0
    _print_table(
        [[t, s, str(c)] for (t, s), c in counts.most_common()],
        sys.stdout,
        ("type", "severity", "count"),
    )
    print()
    _print_table(
        [
            [
                e.timestamp,
                str(e.data.get("severity")),
                str(e.data.get("type")),
                " ".join(str(e.data.get("message") or "").split())[:70],
            ]
            for e in entries
        ],
        sys.stdout,
        ("timestamp", "severity", "type", "message"),
    )
    return 0


# ---------------------------------------------------------------------- demo


def _cmd_demo(args: argparse.Namespace) -> int:
    from audit_logging.demo import run_demo

    out = Path(args.out)
    files = run_demo(out)
    print(f"Demo training run logged under {out.resolve()}")
    for rel, info in files.items():
        size = f"  ({info['bytes']} bytes)" if isinstance(info, dict) and "bytes" in info else ""
        print(f"  {rel}{size}")
        if isinstance(info, dict) and "events" in info:
            for event, count in info["events"].items():
                print(f"      {count:4d}  {event}")
            for issue in info["issues"]:
                print(f"      issue: {issue}")
    print(f"\nNext: audit-logging summary {out}   |   audit-logging verify {out}")
    return 0


# ---------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audit-logging", description="Read, check and demo audit_logging outputs."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="counts by event, action, status, warning type")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("query", help="filtered records, newest first")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--event")
    p.add_argument("--action", help="action_type")
    p.add_argument("--status")
    p.add_argument("--type", help="warning type")
    p.add_argument("--since", help="ISO 8601 time (UTC unless it says otherwise)")
    p.add_argument("--until", help="ISO 8601 time (UTC unless it says otherwise)")
    p.add_argument("--session")
    p.add_argument("--format", choices=("jsonl", "json", "csv", "table"), default="jsonl")
    p.add_argument("--limit", type=int)
    p.set_defaults(func=_cmd_query)

    p = sub.add_parser("verify", help="check hash chains and digests")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--key", help="HMAC key (default: $AUDIT_LOG_HMAC_KEY)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("tail", help="the last lines of the journal; -f follows it")
    p.add_argument("path", metavar="PATH")
    p.add_argument("-n", "--lines", type=int, default=10)
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.add_argument("--max-seconds", type=float, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_tail)

    p = sub.add_parser("export", help="journal to CSV or a JSON array")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--to", choices=("csv", "json"), required=True)
    p.add_argument("--output", "-o", help="file to write (default: stdout)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("warnings", help="warning files per type and severity")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_warnings)

    p = sub.add_parser("demo", help="simulate a short training run and write real logs")
    p.add_argument("--out", default="demo-logs", help="folder for the logs (default: demo-logs)")
    p.set_defaults(func=_cmd_demo)
    sql.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CommandError as exc:
        _warn(str(exc))
        return 2
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _warn(f"{exc.strerror or exc}{where}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
