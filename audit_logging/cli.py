"""The ``audit-logging`` command (also ``python -m audit_logging``): parse, call read/, print.

Every command reads through :mod:`audit_logging.read`, so they agree: a
missing path is exit 2 with one line on stderr; a folder without audit output
says "no audit logs found" and exits 0 (``verify``: 2, nothing was proven).
Errors are one line on stderr, never a traceback; a malformed line is reported
with its file and line number and the rest is still processed.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from audit_logging import __version__
from audit_logging._files import size_between_batches
from audit_logging.chain import hasher_from_env
from audit_logging.read import Catalogue, Record, catalogue, iter_records, summarize, verify
from audit_logging.read.progress import Progress
from audit_logging.read.query import (
    Query,
    columns_for,
    kinds_in,
    parse_time,
    select,
    write_csv,
    write_json,
    write_jsonl,
)
from audit_logging.read.tail import last_lines, newest_journal
from audit_logging.read.verify import compare_with_bucket

__all__ = ["build_parser", "main"]


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _warn(message: str) -> None:
    print(f"audit-logging: {message}", file=sys.stderr)


def _note_empty(paths: str | Sequence[str]) -> None:
    where = paths if isinstance(paths, str) else " ".join(paths)
    print(f"no audit logs found under {where}", file=sys.stderr)


def _open(paths: Sequence[str]) -> Catalogue:
    try:
        return catalogue(paths)
    except ImportError as exc:  # the gcs extra is missing
        raise CommandError(str(exc)) from exc
    except OSError:
        raise
    except Exception as exc:  # a bucket that cannot be listed: one line, not a traceback
        raise CommandError(f"cannot list {' '.join(paths)}: {type(exc).__name__}: {exc}") from exc


def _size(cat: Catalogue, *kinds: str) -> int:
    return sum(f.path.stat().st_size for f in cat.files if not kinds or f.kind in kinds)


# ---------------------------------------------------------------------- tables


def _width(args: argparse.Namespace) -> int | None:
    """The terminal's width, or ``None`` (no cut) with ``--wide`` or when not a terminal."""
    if getattr(args, "wide", False) or not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((100, 24)).columns


def _print_table(
    rows: list[list[str]], out: TextIO, headers: Sequence[str], width: int | None = None
) -> None:
    """Rows in aligned columns; with ``width``, the last column is cut to fit it."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    if width is not None:  # cut the widest columns (never the first) until the row fits
        room = width - 2 * (len(widths) - 1)
        while sum(widths) > room:
            widest = max(range(1, len(widths)), key=lambda i: widths[i])
            if widths[widest] <= 4:
                break
            widths[widest] -= 1

    def line(cells: Sequence[str]) -> str:
        cut = [
            c if len(c) <= w else c[: max(0, w - 1)] + "…"
            for c, w in zip(cells, widths, strict=True)
        ]
        return "  ".join(c.ljust(w) for c, w in zip(cut, widths, strict=True)).rstrip()

    print(line(headers), file=out)
    for row in rows:
        print(line(row), file=out)


def _table_row(record: Record) -> list[str]:
    d = record.data
    if record.kind == "journal":
        what, state, text = d.get("event"), d.get("level"), d.get("reasoning") or d.get("message")
    elif record.kind == "action":
        what, state, text = (
            d.get("action_type"),
            d.get("status"),
            d.get("error") or d.get("details"),
        )
    elif record.kind == "rejected":
        what, state, text = d.get("writer"), "rejected", d.get("reason")
    else:
        what, state, text = d.get("type"), d.get("severity"), d.get("message")
    if isinstance(text, (dict, list)):
        text = json.dumps(text, ensure_ascii=False)
    return [
        record.timestamp,
        record.kind,
        str(what or ""),
        str(state or ""),
        " ".join(str(text or "").split()),
    ]


# ---------------------------------------------------------------------- summary


def _cmd_summary(args: argparse.Namespace) -> int:
    cat = _open(args.paths)
    if cat.is_empty and not args.json:
        _note_empty(args.paths)
        return 0
    with Progress(_size(cat, "journal"), "summary") as advance:
        summary = summarize(cat, on_error=_warn, on_bytes=advance)
    data = summary.as_dict()
    if args.json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    print(f"journal lines  {data['journal_lines']}")
    print(f"actions        {data['actions']}")
    print(f"warnings       {data['warnings']}")
    print(f"rejected       {data['rejected']}")
    print(f"time span      {data['first'] or '-'} .. {data['last'] or '-'}")
    sessions = data["sessions"]
    listed = (
        f"  ({', '.join(sessions[:5])}{', ...' if len(sessions) > 5 else ''})" if sessions else ""
    )
    print(f"sessions       {len(sessions)}{listed}")
    for title, key in (
        ("by event", "by_event"),
        ("by action type", "by_action_type"),
        ("by status", "by_status"),
        ("by warning type", "by_warning_type"),
        ("by severity", "by_severity"),
        ("rejected by reason", "by_rejected_reason"),
    ):
        counts = data[key]
        if counts:
            print(f"\n{title}")
            for name, count in counts.items():
                print(f"  {count:8d}  {name}")
    return 0


# ---------------------------------------------------------------------- query


def _query_from(args: argparse.Namespace) -> Query:
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return Query(
        event=args.event, action=args.action, status=args.status, type=args.type,
        session=args.session, since=since, until=until,
    )  # fmt: skip


def _cmd_query(args: argparse.Namespace) -> int:
    query = _query_from(args)
    cat = _open(args.paths)
    if cat.is_empty:
        _note_empty(args.paths)
        return 0
    records = select(cat, query, limit=args.limit, on_error=_warn)
    out = sys.stdout
    if args.format == "jsonl":
        write_jsonl(out, records)
    elif args.format == "json":
        write_json(out, records)
    elif args.format == "csv":
        write_csv(out, records, columns_for(kinds_in(cat, query)))
    else:
        rows = [_table_row(r) for r in records]
        _print_table(rows, out, ("timestamp", "kind", "what", "level/status", "text"), _width(args))
    return 0


# ---------------------------------------------------------------------- verify


def _cmd_verify(args: argparse.Namespace) -> int:
    cat = _open(args.paths)
    if cat.is_empty and not cat.of("manifest") and not args.against:
        raise CommandError(
            "no audit logs found under " + " ".join(args.paths) + ": nothing to verify"
        )
    hasher = hasher_from_env(args.key)
    with Progress(_size(cat), "verify") as advance:
        previous = [0]

        def on_file(log: Any) -> None:
            advance(previous[0])
            previous[0] = log.path.stat().st_size

        try:
            report = verify(
                cat,
                hasher=hasher,
                public_key=args.public_key,
                verification_key=args.verification_key,
                since=args.since,
                on_file=on_file,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if args.against:
        compare_with_bucket(cat, _open([args.against]), report)
    failed = not report.ok or (args.strict and bool(report.unproven))
    if args.json:
        json.dump(report.as_dict(), sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 1 if failed else 0
    for problem in sorted(report.problems, key=lambda p: (p.path, p.line or 0)):
        print(problem)
    for item in report.unproven:
        print(item)
    for name in sorted(report.retired):
        print(f"{name}: retired")
    status = "intact" if report.ok else f"{len(report.problems)} problem(s)"
    unproven = ""
    if report.unproven:
        total = sum(u.bytes for u in report.unproven)
        unproven = f", {len(report.unproven)} unproven ({total} byte(s))"
    print(f"{report.files} file(s), {report.lines} line(s): {status}{unproven}", file=sys.stderr)
    return 1 if failed else 0


# ---------------------------------------------------------------------- tail


def _cmd_tail(args: argparse.Namespace) -> int:
    root = Path(args.path)
    if not root.exists():
        raise FileNotFoundError(2, "No such file or directory", str(root))
    current = newest_journal(root)
    if current is None and not args.follow:
        _note_empty(args.path)
        return 0
    position = 0
    if current is not None:
        # Taken before reading, between two batches: what comes later is followed,
        # and a batch being appended is not printed in part.
        position = size_between_batches(current)
        for line in last_lines(current, args.lines, position):
            sys.stdout.write(line.decode("utf-8", "replace") + "\n")
    sys.stdout.flush()
    if not args.follow:
        return 0
    deadline = time.monotonic() + args.max_seconds if args.max_seconds else None
    pending = b""
    while deadline is None or time.monotonic() < deadline:
        newest = newest_journal(root) if root.is_dir() else current
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
    cat = _open([args.path])
    if cat.is_empty:
        _note_empty(args.path)
        return 0
    records = iter_records(cat, newest_first=False, on_error=_warn)
    out: TextIO
    with open(args.output, "w", newline="", encoding="utf-8") if args.output else _stdout() as out:
        if args.to == "csv":
            write_csv(out, records, columns_for(kinds_in(cat)))
        elif args.to == "jsonl":
            write_jsonl(out, records)
        else:
            write_json(out, records)
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
    cat = _open([args.directory])
    entries = list(iter_records(cat, newest_first=True, kinds=("warning",), on_error=_warn))
    if not entries and not args.json:
        _note_empty(args.directory)
        return 0
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
            [e.timestamp, str(e.data.get("severity")), str(e.data.get("type")),
             " ".join(str(e.data.get("message") or "").split())]
            for e in entries
        ],
        sys.stdout,
        ("timestamp", "severity", "type", "message"),
        _width(args),
    )  # fmt: skip
    return 0


# ---------------------------------------------------------------------- demo


def _cmd_demo(args: argparse.Namespace) -> int:
    from audit_logging.demo import run_demo, write_demo_report

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
    cat = catalogue([out])
    totals = summarize(cat).as_dict()
    checked = verify(cat)
    print(
        f"\nSummary: {totals['journal_lines']} journal lines, {totals['actions']} actions, "
        f"{totals['warnings']} warning(s), {len(totals['sessions'])} run(s); verify: "
        + ("intact" if checked.ok else f"{len(checked.problems)} problem(s)")
    )
    try:
        pages = write_demo_report(out)
    except ImportError as exc:  # the report extra is not installed
        print(f"Report: not written ({exc})")
    else:
        for page in pages:
            print(f"Report: {page.resolve()}")
    print(f"\nNext: audit-logging summary {out}   |   audit-logging verify {out}")
    return 0


# ---------------------------------------------------------------------- main

_EXAMPLES = {
    "summary": "example:\n  audit-logging summary runs/ --json | jq .by_event",
    "query": (
        "examples:\n  audit-logging query runs/ --limit 10 --format table\n"
        "  audit-logging query runs/ --event ISSUE_DETECTED --since 2026-05-01\n"
        "  audit-logging query gs://bucket/runs --action tag_add --format csv > tags.csv"
    ),
    "verify": (
        "examples:\n  audit-logging verify runs/   # exit 0 intact, 1 not, 2 nothing to check\n"
        "  audit-logging verify runs/ --json --strict\n"
        "  audit-logging verify runs/ --against gs://bucket/runs"
    ),
    "tail": "example:\n  audit-logging tail runs/logs -n 20 -f",
    "export": (
        "examples:\n  audit-logging export runs/ --to csv -o all.csv\n"
        "  audit-logging export runs/audit_log.json --to jsonl"
    ),
    "warnings": "example:\n  audit-logging warnings training_logs/warnings --json",
    "demo": "example:\n  audit-logging demo --out demo-logs && audit-logging summary demo-logs",
}


def _sub(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=_EXAMPLES.get(name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _limit(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audit-logging",
        description="Read, check and demo audit_logging outputs.",
        epilog="PATH: a folder (searched recursively), a file, or gs://bucket/prefix.\n"
        "Run `audit-logging COMMAND --help` for an example of each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"audit-logging {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _sub(sub, "summary", "counts by event, action, status, warning type, rejection reason")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="the stable machine-readable shape")
    p.set_defaults(func=_cmd_summary)

    p = _sub(sub, "query", "filtered records of every kind, newest first")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--event")
    p.add_argument("--action", help="action_type")
    p.add_argument("--status")
    p.add_argument("--type", help="warning type")
    p.add_argument("--since", help="ISO 8601 time (UTC unless it says otherwise)")
    p.add_argument("--until", help="ISO 8601 time (UTC unless it says otherwise)")
    p.add_argument("--session")
    p.add_argument("--format", choices=("jsonl", "json", "csv", "table"), default="jsonl")
    p.add_argument("--limit", type=_limit, help="at most N records, the newest (0: none)")
    p.add_argument("--wide", action="store_true", help="table: do not cut to the terminal")
    p.set_defaults(func=_cmd_query)

    p = _sub(sub, "verify", "check hash chains, digests, the manifest and the bucket's copy")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--key", help="HMAC key (default: $AUDIT_LOG_HMAC_KEY)")
    p.add_argument("--json", action="store_true", help="the stable machine-readable shape")
    p.add_argument("--strict", action="store_true", help="exit 1 when any byte is unproven")
    p.add_argument("--against", metavar="GS_URL", help="compare with the bucket's copy")
    p.add_argument("--public-key", help="Ed25519 public key to check the seals' signatures with")
    p.add_argument("--verification-key", help="forward-secure verification key (or its file)")
    p.add_argument("--since", metavar="CHECKPOINT", help="an earlier checkpoint to extend")
    p.set_defaults(func=_cmd_verify)

    p = _sub(sub, "tail", "the last lines of the newest journal; -f follows it")
    p.add_argument("path", metavar="PATH")
    p.add_argument("-n", "--lines", type=int, default=10)
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.add_argument("--max-seconds", type=float, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_tail)

    p = _sub(sub, "export", "every record (journal, array, CSV, warnings) as CSV, JSON or JSONL")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--to", choices=("csv", "json", "jsonl"), required=True)
    p.add_argument("--output", "-o", help="file to write (default: stdout)")
    p.set_defaults(func=_cmd_export)

    p = _sub(sub, "warnings", "warning files per type and severity")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.add_argument("--wide", action="store_true", help="do not cut to the terminal")
    p.set_defaults(func=_cmd_warnings)

    p = _sub(sub, "demo", "simulate a short training run and write real logs")
    p.add_argument("--out", default="demo-logs", help="folder for the logs (default: demo-logs)")
    p.set_defaults(func=_cmd_demo)

    # `sql`, `pull`, and `report`/`compare` and `keygen`/`prove`/`check-proof` when those parts
    # are present: each part adds its own subcommands.
    homes = ("audit_logging.sql", "audit_logging.pull", "audit_logging.report.cli")
    for home in (*homes, "audit_logging.seals.cli"):
        try:
            module = importlib.import_module(home)
        except ImportError:
            continue
        module.add_commands(sub)  # pragma: no cover - the report and seals parts
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CommandError as exc:
        _warn(str(exc))
        return 2
    except ImportError as exc:  # an optional extra the command needs (e.g. a key given, no `sign`)
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
