"""Scenario 2: time per event of ``audit_log.json`` as it grows.

For a file that already holds 1k, 10k or 100k events, the time per event of
the next events, each written before the next call returns (the writer is on
the logger directly, no queue: an action audit is a few events a second, and
the cost that grows is the write, not the call). ``JsonArrayHandler`` beside
the rewrite-per-event approach (:mod:`benchmarks.naive_array`), which is only
run at sizes where it finishes in seconds, on fewer events.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from benchmarks import harness
from benchmarks.naive_array import RewriteJsonArrayHandler, entry

#: case -> (implementation, existing events, measured events, quick measured events)
CASES: dict[str, tuple[str, int, int, int]] = {
    "array_1k": ("array", 1_000, 1_000, 200),
    "array_10k": ("array", 10_000, 1_000, 200),
    "array_100k": ("array", 100_000, 1_000, 200),
    "naive_1k": ("naive", 1_000, 50, 10),
    "naive_10k": ("naive", 10_000, 5, 3),
}
QUICK_SKIP = {"array_100k"}

DETAILS = harness.PAYLOAD["metrics_snapshot"]


def _record(i: int) -> logging.LogRecord:
    record = logging.LogRecord("bench", logging.INFO, __file__, 0, "hp change", None, None)
    record.__dict__.update(action_type="hp_change", status="success", details={**DETAILS, "i": i})
    return record


def _prefill_array(handler: Any, n: int) -> None:
    batch = getattr(handler, "handle_batch", None)
    for start in range(0, n, 1_000):
        records = [_record(i) for i in range(start, min(n, start + 1_000))]
        if batch is not None:
            batch(records)
        else:
            for record in records:
                handler.handle(record)


def main() -> None:
    args = harness.child_args(__doc__ or "")
    impl, existing, measured, quick_measured = CASES[args.case]
    if args.quick and args.case in QUICK_SKIP:
        harness.emit(skipped="not in --quick")
        return
    path = os.path.join(args.dir, "audit_log.json")
    if impl == "array":
        try:
            from audit_logging.writers.json_array import JsonArrayHandler  # type: ignore
        except ImportError:
            harness.emit(skipped="audit_logging.writers.json_array does not exist yet")
            return
        handler: logging.Handler = JsonArrayHandler(
            directory=os.path.dirname(path) or ".", filename=os.path.basename(path)
        )
        _prefill_array(handler, existing)
        handler.flush()
    else:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump([entry(_record(i)) for i in range(existing)], fh, indent=2)
        handler = RewriteJsonArrayHandler(path)
    log = logging.getLogger("bench.growth")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    n = quick_measured if args.quick else measured
    extra = {"action_type": "hp_change", "status": "success", "details": DETAILS}
    t0 = time.perf_counter()
    for _ in range(n):
        log.info("hp change", extra=extra)
    handler.flush()
    elapsed = time.perf_counter() - t0
    handler.close()
    with open(path, encoding="utf-8") as fh:
        total = len(json.load(fh))
    notes = [] if total == existing + n else [f"file holds {total} events, expected {existing + n}"]
    harness.emit(
        {
            "us_per_event": elapsed / n * 1e6,
            "existing": existing,
            "events": n,
            "file_mb": os.path.getsize(path) / 1e6,
        },
        notes,
    )


if __name__ == "__main__":
    main()
