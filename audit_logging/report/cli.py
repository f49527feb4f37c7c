"""The ``report`` and ``compare`` commands, added to the ``audit-logging`` parser.

``report PATH... [-o report.html] [--run SESSION]``
    One self-contained HTML page per run (``report-<session>.html`` when the
    folder holds several runs and no ``--run`` is given); prints each path.
``compare A B [-o compare.html] [--run-a S] [--run-b S] [--format html|table] [--json]``
    Two runs side by side (the latest run under each path unless named).

Errors are one line on stderr and exit status 2; a failed verification is
shown in the page (and said on stderr), not an error of the command.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_commands"]


def _say(message: str) -> None:
    print(f"audit-logging: {message}", file=sys.stderr)


def _fail(message: str) -> int:
    _say(message)
    return 2


def _cmd_report(args: argparse.Namespace) -> int:
    from audit_logging.report import ReportError, write_report

    try:
        written = write_report(args.paths, args.output, session=args.run, on_error=_say)
    except (ReportError, ImportError) as exc:
        return _fail(str(exc))
    for path in written:
        print(path)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from audit_logging.report import ReportError, compare_runs, write_compare

    try:
        if args.json or args.format == "table":
            from audit_logging.report.compare import compare_table

            result, _, _ = compare_runs(
                [args.a], [args.b], session_a=args.run_a, session_b=args.run_b, on_error=_say
            )
            if args.json:
                json.dump(result, sys.stdout, indent=2, ensure_ascii=False, default=str)
                print()
            else:
                sys.stdout.write(compare_table(result))
            return 0
        path = write_compare(
            [args.a],
            [args.b],
            args.output,
            session_a=args.run_a,
            session_b=args.run_b,
            on_error=_say,
        )
    except (ReportError, ImportError) as exc:
        return _fail(str(exc))
    print(path)
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``report`` and ``compare`` to the ``audit-logging`` sub-command parsers."""
    p = subparsers.add_parser("report", help="an HTML report of each run (charts, decisions)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="folder(s) or file(s) of one run")
    p.add_argument("-o", "--output", default="report.html", help="default: report.html")
    p.add_argument("--run", metavar="SESSION", help="the run's session id (or a unique prefix)")
    p.set_defaults(func=_cmd_report)

    p = subparsers.add_parser("compare", help="two runs side by side")
    p.add_argument("a", metavar="A", help="folder or file of run A")
    p.add_argument("b", metavar="B", help="folder or file of run B")
    p.add_argument("-o", "--output", default="compare.html", help="default: compare.html")
    p.add_argument("--run-a", metavar="SESSION", help="run A's session (default: the latest)")
    p.add_argument("--run-b", metavar="SESSION", help="run B's session (default: the latest)")
    p.add_argument(
        "--format", choices=("html", "table"), default="html", help="table: text on stdout"
    )
    p.add_argument("--json", action="store_true", help="the comparison as JSON on stdout")
    p.set_defaults(func=_cmd_compare)
