"""Scenario 6: ``audit-logging verify`` lines per second over a chained journal.

Writes a journal with ``AuditQueueHandler -> JsonlHandler`` and times the
``verify`` command on it in a subprocess (interpreter start-up included, as a
user runs it). The journal is written once per benchmark run, into the run's
shared folder, and only read by later rounds. Skipped until the command exists.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import sys
import time

from benchmarks import harness

FULL = 200_000
QUICK = 10_000


def _has_verify() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "audit_logging", "verify", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0


def main() -> None:
    args = harness.child_args(__doc__ or "")
    if not _has_verify():
        harness.emit(skipped="`audit-logging verify` does not exist yet")
        return
    from audit_logging.queue import AuditQueueHandler
    from audit_logging.writers.jsonl import JsonlHandler

    n = QUICK if args.quick else FULL
    directory = os.path.join(args.shared or args.dir, f"verify-{n}")
    done_marker = os.path.join(directory, ".complete")
    if not os.path.exists(done_marker):
        shutil.rmtree(directory, ignore_errors=True)
        handler = AuditQueueHandler(handlers=[JsonlHandler(directory=directory)])
        log = logging.getLogger("bench.verify")
        log.handlers[:] = [handler]
        log.setLevel(logging.INFO)
        log.propagate = False
        for _ in range(n):
            log.info(harness.MESSAGE, extra=harness.PAYLOAD)
        handler.close()
        open(done_marker, "w").close()
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "audit_logging", "verify", *glob.glob(f"{directory}/*.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    notes = [] if done.returncode == 0 else [f"verify exit {done.returncode}: {done.stderr[-300:]}"]
    harness.emit({"lines_per_s": n / elapsed, "lines": n, "wall_s": elapsed}, notes)


if __name__ == "__main__":
    main()
