"""Reading speed: ``verify``, ``summary`` and ``query --limit 10`` beside ``jq``, in one run.

Usage (from the repository root)::

    python -m benchmarks.read_model            # ~1 GB journal, about 2.5 M lines
    python -m benchmarks.read_model --quick    # 100k lines: a smoke test
    python -m benchmarks.read_model --lines N --dir DIR   # keep the journal in DIR for reruns

The journal is written by the real writer (``JsonlHandler``, hash chain on)
with a payload padded to about 400 bytes a line. Each command runs as a user
runs it, in its own process (interpreter start-up included), ``--rounds``
times (median reported), side by side with the ``jq`` command a user would
run without this package:

* verify: ``jq`` can only check that ``seq`` runs 1, 2, 3, ... (it has no
  SHA-256), so its command does less than ours;
* summary: ``jq -n 'reduce inputs as $l ({}; .[$l.event] += 1)'``;
* query --limit 10: ``jq -c . FILE | tail -n 10`` (jq reads the whole file).

Peak memory is the child's maximum resident set (``wait4``), its worker
processes included. Targets (issue 14): verify >= 1 M lines/s, summary >=
500 k lines/s, query --limit 10 < 100 ms, each >= 3x faster than jq, peak
memory < 200 MB. ``query`` is also timed inside the process (without the
interpreter's and the package's start-up), which is what the library controls.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FULL_LINES = 2_500_000
QUICK_LINES = 100_000
TARGETS = {"verify": 1_000_000, "summary": 500_000}
QUERY_MS = 100.0
PEAK_MB = 200.0
RATIO = 3.0


def build(directory: Path, lines: int) -> Path:
    """A chained journal of ``lines`` lines in ``directory`` (reused when already complete)."""
    marker = directory / f".complete-{lines}"
    if marker.exists():
        return next(directory.glob("bench-*.jsonl"))
    shutil.rmtree(directory, ignore_errors=True)
    from audit_logging.writers.jsonl import JsonlHandler

    handler = JsonlHandler(directory=directory, prefix="bench", digest_interval=3600)
    reasoning = "val loss down"
    batch = []
    start = 1_779_926_400.0  # 2026-05-28T00:00:00Z: every line in one UTC day
    for n in range(lines):
        record = logging.LogRecord("bench", logging.INFO, __file__, 1, "step", None, None)
        record.created = start + n * 0.02
        record.__dict__.update(
            event="TRAINING_PROGRESS" if n % 100 else "MODEL_EVALUATED",
            dataset="churn.csv",
            model="RandomForest",
            decision="continue training",
            reasoning=reasoning,
            metrics_snapshot={"step": n, "loss": 0.3412, "accuracy": 0.8731, "f1": 0.8315},
        )
        batch.append(record)
        if len(batch) == 5000:
            handler.handle_batch(batch)
            batch = []
    if batch:
        handler.handle_batch(batch)
    handler.close()
    marker.touch()
    return next(directory.glob("bench-*.jsonl"))


def measure(argv: list[str], shell: bool = False) -> tuple[float, float, int, str]:
    """``(wall seconds, peak RSS MB, exit status, stdout tail)`` of one command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv if not shell else " ".join(argv),
        shell=shell,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    # The shell's own rusage does not matter for jq; for our commands wait4
    # already happened in communicate(), so take the children's maximum so far.
    import resource

    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak, proc.returncode, (out[-200:] + err[-300:]).decode("utf-8", "replace")


def run_ours(name: str, argv: list[str]) -> tuple[float, float, int, str]:
    """Our command in a fresh child whose own peak RSS is reported (RUSAGE_CHILDREN is global)."""
    code = (
        "import resource, subprocess, sys, time, json\n"
        "t0 = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True)\n"
        "wall = time.perf_counter() - t0\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps([wall, peak, p.returncode, (p.stdout[-200:] + p.stderr[-300:]).decode()]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    wall, peak, status, tail = json.loads(done.stdout)
    del name
    return float(wall), float(peak), int(status), str(tail)


def query_in_process(path: Path) -> float:
    """Milliseconds ``query --limit 10`` takes inside a process that has imported the package."""
    code = (
        "import io, sys, time, contextlib\n"
        "from audit_logging.cli import main\n"
        "t0 = time.perf_counter()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['query', sys.argv[1], '--limit', '10'])\n"
        "print((time.perf_counter() - t0) * 1000)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--lines", type=int)
    parser.add_argument("--dir", help="where the journal is kept (default: a temporary folder)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help="folder for the JSON result (default: print only)")
    args = parser.parse_args()
    lines = args.lines or (QUICK_LINES if args.quick else FULL_LINES)
    rounds = 1 if args.quick else args.rounds
    jq = shutil.which("jq")
    temporary = None
    if args.dir:
        directory = Path(args.dir)
    else:
        temporary = tempfile.mkdtemp(prefix="audit-read-bench-")
        directory = Path(temporary)
    try:
        t0 = time.perf_counter()
        journal = build(directory, lines)
        built = time.perf_counter() - t0
        size = journal.stat().st_size
        print(f"journal: {lines} lines, {size / 1e6:.0f} MB ({size / lines:.0f} B/line), "
              f"built in {built:.0f} s")  # fmt: skip
        cli = [sys.executable, "-m", "audit_logging"]
        cases: dict[str, tuple[list[str], list[str] | None]] = {
            "verify": (
                [*cli, "verify", str(journal)],
                [jq, "-n", "reduce inputs as $l (0; if $l.seq == . + 1 then $l.seq "
                 "else error(\"gap\") end)", str(journal)] if jq else None,
            ),
            "summary": (
                [*cli, "summary", str(journal)],
                [jq, "-n", "reduce inputs as $l ({}; .[$l.event] += 1)", str(journal)]
                if jq else None,
            ),
            "query --limit 10": (
                [*cli, "query", str(journal), "--limit", "10"],
                [jq, "-c", ".", str(journal), "|", "tail", "-n", "10"] if jq else None,
            ),
        }  # fmt: skip
        results: dict[str, Any] = {"lines": lines, "bytes": size}
        for name, (ours, theirs) in cases.items():
            walls, peaks, notes = [], [], []
            jq_walls = []
            for _ in range(rounds):
                wall, peak, status, tail = run_ours(name, ours)
                walls.append(wall)
                peaks.append(peak)
                if status != 0:
                    notes.append(f"exit {status}: {tail.strip()[-200:]}")
                if theirs is not None:
                    if name.startswith("query"):
                        quoted = [f"'{a}'" if " " in a else a for a in theirs]
                        jq_walls.append(measure(quoted, shell=True)[0])
                    else:
                        jq_walls.append(measure(theirs)[0])
            wall = statistics.median(walls)
            jq_wall = statistics.median(jq_walls) if jq_walls else None
            results[name] = {
                "wall_s": wall,
                "lines_per_s": lines / wall,
                "peak_mb": max(peaks),
                "jq_wall_s": jq_wall,
                "ratio_to_jq": (jq_wall / wall) if jq_wall else None,
                "notes": notes,
            }
        results["query --limit 10"]["in_process_ms"] = statistics.median(
            query_in_process(journal) for _ in range(rounds)
        )
        report(results)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            target = Path(args.out) / f"read-model-{time.strftime('%Y%m%dT%H%M%S')}.json"
            target.write_text(json.dumps(results, indent=2))
            print(f"saved {target}")
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(results: dict[str, Any]) -> None:
    """One line per command and target: the figure, the target, met or missed."""
    print(f"{'command':<18} {'wall':>9} {'lines/s':>11} {'peak MB':>8} {'jq wall':>9} {'x jq':>6}")
    for name in ("verify", "summary", "query --limit 10"):
        r = results[name]
        jq = f"{r['jq_wall_s']:.2f} s" if r["jq_wall_s"] else "-"
        ratio = f"{r['ratio_to_jq']:.1f}" if r["ratio_to_jq"] else "-"
        print(f"{name:<18} {r['wall_s']:>7.3f} s {r['lines_per_s'] / 1e3:>9.0f}k "
              f"{r['peak_mb']:>8.0f} {jq:>9} {ratio:>6}")  # fmt: skip
        for note in r["notes"]:
            print(f"    note: {note}")
    print()
    for name, target in TARGETS.items():
        r = results[name]
        print(f"{name}: {r['lines_per_s'] / 1e3:.0f}k lines/s (target {target / 1e3:.0f}k): "
              f"{_met(r['lines_per_s'] >= target)}")  # fmt: skip
    q = results["query --limit 10"]
    print(f"query --limit 10: {q['wall_s'] * 1000:.0f} ms as a command, "
          f"{q['in_process_ms']:.0f} ms in the process (target {QUERY_MS:.0f} ms): "
          f"{_met(q['wall_s'] * 1000 < QUERY_MS)} / {_met(q['in_process_ms'] < QUERY_MS)}")  # fmt: skip
    for name in ("verify", "summary", "query --limit 10"):
        ratio = results[name]["ratio_to_jq"]
        if ratio is not None:
            print(
                f"{name}: {ratio:.1f}x faster than jq (target {RATIO:.0f}x): {_met(ratio >= RATIO)}"
            )
        else:
            print(f"{name}: jq not installed: ratio not measured")
    peak = max(results[n]["peak_mb"] for n in ("verify", "summary", "query --limit 10"))
    print(f"peak memory: {peak:.0f} MB (target {PEAK_MB:.0f} MB): {_met(peak < PEAK_MB)}")


if __name__ == "__main__":
    main()
