"""Scenario: a grouped count over 1 M journal lines in 20 runs, ``audit-logging sql`` beside ``jq``.

The 20 runs are written once per benchmark run, into the run's shared
folder, by the library itself (``JsonlHandler``, hash chain on; one folder
and session per run, metrics of different names and shapes in different
runs, as real runs have). Each case then times one command in a subprocess,
interpreter start-up included, as a user runs it:

* ``sql_duckdb``: ``audit-logging sql DIR "SELECT event, count(*) ... GROUP BY event"``;
* ``sql_jq``: ``jq -n 'reduce inputs as $l ({}; .[$l.event] += 1)' FILES``, the
  streaming grouped count (no ``-s``: slurping 1 M lines would measure memory).

Both print the same counts; a case notes it if they differ. 50,000 lines in
``--quick``. Skipped without DuckDB (the ``sql`` extra) or ``jq`` on the PATH.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import time

from benchmarks import harness

FULL = 1_000_000
QUICK = 50_000
RUNS = 20
QUERY = "SELECT event, count(*) AS n FROM journal GROUP BY event ORDER BY event"
JQ = "reduce inputs as $l ({}; .[$l.event] += 1)"
EVENTS = ["TRAINING_PROGRESS"] * 16 + [
    "MODEL_EVALUATED",
    "ISSUE_DETECTED",
    "MODEL_SAVED",
    "HYPERPARAMETERS_SET",
]


def _write_runs(directory: str, total: int) -> None:
    from audit_logging.writers.jsonl import JsonlHandler

    per_run = total // RUNS
    for r in range(RUNS):
        os.environ["AUDIT_SESSION_ID"] = f"bench-run-{r:02d}"
        handler = JsonlHandler(directory=os.path.join(directory, f"run-{r:02d}", "logs"))
        log = logging.getLogger(f"bench.sql.{r}")
        log.handlers[:] = [handler]
        log.setLevel(logging.INFO)
        log.propagate = False
        loss_name = ("loss", "val_loss", "train_loss")[r % 3]
        for i in range(per_run):
            metrics: dict[str, object] = {loss_name: 1.0 / (1 + i), "step": i}
            if r % 4 == 0:
                metrics["per_class"] = [0.9, 0.8, 0.7]  # another shape in some runs
            log.info(
                harness.MESSAGE,
                extra={**harness.PAYLOAD, "event": EVENTS[i % len(EVENTS)], "model": f"model-{r % 5}",
                       "metrics_snapshot": metrics},
            )  # fmt: skip
        handler.close()
    del os.environ["AUDIT_SESSION_ID"]


def _journals(directory: str) -> list[str]:
    return sorted(
        os.path.join(d, n)
        for d, _, names in os.walk(directory)
        for n in names
        if n.endswith(".jsonl") and not n.startswith(".")  # not the writers' manifest
    )


def main() -> None:
    args = harness.child_args(__doc__ or "")
    try:
        import duckdb  # noqa: F401
    except ImportError:
        harness.emit(skipped='DuckDB is not installed (pip install "audit-logging[sql]")')
        return
    jq = shutil.which("jq")
    if args.case == "sql_jq" and jq is None:
        harness.emit(skipped="jq is not on the PATH")
        return
    n = QUICK if args.quick else FULL
    directory = os.path.join(args.shared or args.dir, f"sql-{n}")
    done_marker = os.path.join(directory, ".complete")
    if not os.path.exists(done_marker):
        shutil.rmtree(directory, ignore_errors=True)
        _write_runs(directory, n)
        open(done_marker, "w").close()
    if args.case == "sql_duckdb":
        cmd = [sys.executable, "-m", "audit_logging", "sql", directory, QUERY, "--format", "csv"]
    else:
        cmd = [str(jq), "-n", "-c", JQ, *_journals(directory)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    notes = [] if done.returncode == 0 else [f"exit {done.returncode}: {done.stderr[-300:]}"]
    if done.returncode == 0:
        if args.case == "sql_duckdb":
            counts = {
                row["event"]: int(row["n"]) for row in csv.DictReader(io.StringIO(done.stdout))
            }
        else:
            counts = json.loads(done.stdout)
        if sum(counts.values()) != n:
            notes.append(f"counted {sum(counts.values())} lines, wrote {n}")
    harness.emit({"lines_per_s": n / elapsed, "lines": n, "wall_s": elapsed}, notes)


if __name__ == "__main__":
    main()
