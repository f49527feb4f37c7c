"""Load runs, pick one, write the report or the comparison: what the commands call."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from audit_logging.report.data import Verification, read_items, verify
from audit_logging.report.model import RunData, build_runs

__all__ = ["ReportError", "compare_runs", "load_runs", "pick_run", "write_compare", "write_report"]

PathLike = str | os.PathLike[str]
Paths = PathLike | Sequence[PathLike]


class ReportError(ValueError):
    """Nothing to report on, or a run that is not there: a message for the user."""


def _ignore(_: str) -> None:
    pass


def _paths(paths: Paths) -> list[PathLike]:
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return list(paths)


def _verify_meanwhile(paths: list[PathLike]) -> Callable[[], Verification]:
    """Start verifying ``paths``; the returned function waits for the result.

    Verifying reads every byte a second time (about 3 s of a 1 M-line
    journal's report): a forked child does it on another core while this
    process reads and draws. Forking is only safe without other threads
    (their locks would be copied held), so with threads it runs here, later.
    """
    if threading.active_count() > 1 or "fork" not in mp.get_all_start_methods():
        return lambda: verify(paths)
    try:
        pool = ProcessPoolExecutor(1, mp_context=mp.get_context("fork"))
        future = pool.submit(verify, paths)
    except OSError:  # no process can be started here: verify in this one
        return lambda: verify(paths)

    def result() -> Verification:
        try:
            return future.result()
        finally:
            pool.shutdown()

    return result


def load_runs(paths: Paths, *, on_error: Callable[[str], None] = _ignore) -> list[RunData]:
    """Every run (session) found under ``paths``, oldest first.

    Raises ``FileNotFoundError`` for a missing path and :class:`ReportError`
    when there is no audit output at all.
    """
    runs = build_runs(read_items(_paths(paths), on_error))
    if not runs:
        raise ReportError("no audit output found under " + " ".join(map(str, _paths(paths))))
    return runs


def pick_run(runs: Sequence[RunData], session: str | None) -> RunData:
    """The run of ``session`` (its id or a unique prefix); the latest run when ``None``."""
    if session is None:
        return runs[-1]
    exact = [r for r in runs if r.session == session]
    matches = exact or [r for r in runs if r.session.startswith(session)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(r.session or "(none)" for r in runs)
    what = "is ambiguous" if matches else "not found"
    raise ReportError(f"run {session!r} {what}; runs here: {known}")


def write_report(
    paths: Paths,
    out: PathLike = "report.html",
    *,
    session: str | None = None,
    on_error: Callable[[str], None] = _ignore,
) -> list[Path]:
    """Write the HTML report of each run under ``paths``; return the files written.

    With ``session`` (or when there is one run) the report goes to ``out``;
    with several runs, each to ``out`` with the session id added before the
    suffix (``report-<session>.html``). Needs the ``report`` extra.
    """
    from audit_logging.report.run_page import render_run

    verification = _verify_meanwhile(_paths(paths))
    runs = load_runs(paths, on_error=on_error)
    chosen = [pick_run(runs, session)] if session is not None else runs
    check = verification()
    if check.status == "tampered":
        on_error(f"the files do not verify ({len(check.problems)} problem(s)): the report says so")
    target = Path(out)
    written = []
    for run in chosen:
        path = target
        if len(chosen) > 1:
            path = target.with_name(f"{target.stem}-{run.session or 'none'}{target.suffix}")
        text = render_run(run, check)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def compare_runs(
    a: Paths,
    b: Paths,
    *,
    session_a: str | None = None,
    session_b: str | None = None,
    on_error: Callable[[str], None] = _ignore,
) -> tuple[dict[str, Any], tuple[RunData, RunData], tuple[Verification, Verification]]:
    """Compare run A with run B (each the given session, or the latest under its paths).

    Returns the comparison as data (the ``--json`` shape), the two runs and
    what verifying each one's files found.
    """
    from audit_logging.report.compare import compare_dict

    run_a = pick_run(load_runs(a, on_error=on_error), session_a)
    run_b = pick_run(load_runs(b, on_error=on_error), session_b)
    check_a, check_b = verify(_paths(a)), verify(_paths(b))
    names = (" ".join(map(str, _paths(a))), " ".join(map(str, _paths(b))))
    return compare_dict(run_a, run_b, check_a, check_b, names), (run_a, run_b), (check_a, check_b)


def write_compare(
    a: Paths,
    b: Paths,
    out: PathLike = "compare.html",
    *,
    session_a: str | None = None,
    session_b: str | None = None,
    on_error: Callable[[str], None] = _ignore,
) -> Path:
    """Write the HTML comparison of two runs to ``out``; needs the ``report`` extra."""
    from audit_logging.report.compare import compare_page

    result, (run_a, run_b), (check_a, check_b) = compare_runs(
        a, b, session_a=session_a, session_b=session_b, on_error=on_error
    )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(compare_page(run_a, run_b, check_a, check_b, result), encoding="utf-8")
    return path
