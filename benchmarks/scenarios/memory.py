"""Scenario 5: peak RSS while logging 10 million records as fast as possible.

``AuditQueueHandler -> JsonlHandler`` with the default bounded queue and its
default ``block`` policy: the caller outruns the listener, the queue fills,
and the caller then waits for room. Memory must stay bounded by the queue, not
grow with the number of records. Peak RSS is ``getrusage(RUSAGE_SELF).ru_maxrss``
of this child process (interpreter and imports included; ``rss_before_mb`` is
the peak before the first record, for reference). The parent gives this
scenario a scratch folder in ``/dev/shm`` when there is room (see
:func:`benchmarks.run.scratch_root`); the RSS does not include those pages.

The journal runs with ``chain=False, redact=False``: what is bounded here is
the queue, and neither option holds memory per record (the chain keeps one
hash, the redactor bounded caches); they only cost CPU, which would make this
10-million-record scenario, most of the run's time, a third longer.
"""

from __future__ import annotations

import logging
import time

from benchmarks import harness

FULL = 10_000_000
QUICK = 200_000


def main() -> None:
    args = harness.child_args(__doc__ or "")
    from audit_logging.queue import AuditQueueHandler
    from audit_logging.writers.jsonl import JsonlHandler

    writer = JsonlHandler(directory=args.dir, chain=False, redact=False)
    handler = AuditQueueHandler(handlers=[writer])
    log = logging.getLogger("bench.memory")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    info, msg, extra = log.info, harness.MESSAGE, harness.PAYLOAD
    info(msg, extra=extra)
    handler.flush()
    before = harness.peak_rss_mb()
    n = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    for _ in range(n - 1):
        info(msg, extra=extra)
    handler.flush()
    elapsed = time.perf_counter() - t0
    handler.close()
    where = "/dev/shm (RAM-backed)" if args.dir.startswith("/dev/shm") else "a disk folder"
    harness.emit(
        {
            "peak_rss_mb": harness.peak_rss_mb(),
            "rss_before_mb": before,
            "records": n,
            "records_per_s": n / elapsed,
            "dropped": handler.dropped,
            "queue_size": handler.queue_size,
        },
        [f"journal in {where}"],
    )


if __name__ == "__main__":
    main()
