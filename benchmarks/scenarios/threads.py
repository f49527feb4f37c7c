"""Scenario: the action audit from many threads (gRPC handlers on a thread pool).

``AuditLogger.log_event`` from 1, 2, 4 and 8 threads at once, each call
returning only once its event is in the file(s): wall time per event and
events/s for ``json``, ``csv`` and ``json,csv``, beside WeightsLab's own
design (:mod:`benchmarks.weightslab_peer`: one lock, the array rewritten per
event) in the same run. The peer's cost grows with the file, so it logs into a
fresh folder with the same number of events as ours.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from benchmarks import harness

DETAILS = harness.PAYLOAD["metrics_snapshot"]
FORMATS = {"json": ("json",), "csv": ("csv",), "both": ("json", "csv")}
THREADS = (1, 2, 4, 8)
#: case -> (implementation, format, threads)
CASES: dict[str, tuple[str, str, int]] = {
    f"{impl}_{fmt}_{n}": (impl, fmt, n)
    for impl in ("audit", "weightslab")
    for fmt in FORMATS
    for n in THREADS
}
EVENTS = 2_000
QUICK_EVENTS = 200


def main() -> None:
    args = harness.child_args(__doc__ or "")
    impl, fmt, threads = CASES[args.case]
    total = QUICK_EVENTS if args.quick else EVENTS
    if impl == "weightslab":
        total = min(total, 400)  # its cost per event grows with the file
    logger: Any
    if impl == "audit":
        from audit_logging import AuditLogger

        logger = AuditLogger(args.dir, format=",".join(FORMATS[fmt]))
    else:
        from benchmarks.weightslab_peer import WeightsLabAuditLogger

        logger = WeightsLabAuditLogger(args.dir, FORMATS[fmt])
    per_thread = total // threads
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        for i in range(per_thread):
            logger.log_event("hp_change", details={**DETAILS, "i": i})

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    t0 = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - t0
    close = getattr(logger, "close", None)
    if close is not None:
        close()
    events = per_thread * threads
    harness.emit(
        {
            "us_per_event": elapsed / events * 1e6,
            "events_per_s": events / elapsed,
            "events": events,
        }
    )


if __name__ == "__main__":
    main()
