"""Scenario 3: 1, 2 and 4 processes appending to one journal folder; total records/s.

Every worker process has its own ``AuditQueueHandler -> JsonlHandler`` on the
same directory (so the same daily file, as the ranks of one multi-GPU job).
The workers start together (a barrier) and the rate is all records over the
time from the first start to the last ``flush()``. The file is then read back:
a lost or torn line would show as a count or parse mismatch in the notes.
"""

from __future__ import annotations

import glob
import json
import logging
import multiprocessing
import os
import time
from typing import Any

from benchmarks import harness

CASES = {"procs_1": 1, "procs_2": 2, "procs_4": 4}
TOTAL = 60_000  # records over all processes (full mode)
QUICK_TOTAL = 8_000


def _worker(directory: str, n: int, barrier: Any, results: Any) -> None:
    from audit_logging.queue import AuditQueueHandler
    from audit_logging.writers.jsonl import JsonlHandler

    handler = AuditQueueHandler(handlers=[JsonlHandler(directory=directory)])
    log = logging.getLogger("bench.procs")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    info, msg, extra = log.info, harness.MESSAGE, harness.PAYLOAD
    barrier.wait()
    t0 = time.time()
    for _ in range(n):
        info(msg, extra=extra)
    handler.flush()
    results.put((t0, time.time()))
    handler.close()


def main() -> None:
    args = harness.child_args(__doc__ or "")
    procs = CASES[args.case]
    total = QUICK_TOTAL if args.quick else TOTAL
    per_proc = total // procs
    # spawn: each worker starts clean, as separate ranks would.
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(args.dir, per_proc, barrier, results))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    spans = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join()
    start = min(s for s, _ in spans)
    end = max(e for _, e in spans)
    lines = 0
    bad = 0
    for path in glob.glob(os.path.join(args.dir, "*.jsonl")):
        with open(path, "rb") as fh:
            for line in fh:
                lines += 1
                try:
                    json.loads(line)
                except ValueError:
                    bad += 1
    notes = []
    if lines != per_proc * procs or bad:
        notes.append(f"read back {lines} lines ({bad} unparsable), expected {per_proc * procs}")
    harness.emit(
        {
            "records_per_s": per_proc * procs / (end - start),
            "processes": procs,
            "records": per_proc * procs,
            "wall_s": end - start,
        },
        notes,
    )


if __name__ == "__main__":
    main()
