"""Where the CPU of one journal record goes: ``python -m benchmarks.profile_jsonl [N]``.

Splits the sustained cost of ``AuditQueueHandler -> JsonlHandler`` into its
parts, each measured in this one thread (no listener thread, so no GIL
hand-offs inside the figures):

* caller: ``logger.info`` to a ``NullHandler`` (the floor), then
  ``AuditQueueHandler.prepare`` and the queue put;
* listener: ``dispatch`` of prepared records in batches of 1,000 (selection,
  ``journal_fields``, redaction, ``dumps``, ``seq`` and ``hash``, the locked write), with a cProfile
  breakdown;
* the listener again with redaction, the chain or both turned off, to show
  what each costs per line;
* the rest of the measured end-to-end CPU per record is thread hand-off
  (waking the listener, GIL switches), garbage collection of the records
  queued, and the allocator.

Use ``--cprofile`` to print the profile of the listener side.
"""

from __future__ import annotations

import cProfile
import gc
import hashlib
import logging
import pstats
import queue
import sys
import tempfile
import time
from collections.abc import Callable

from benchmarks import harness


def per_call_us(fn: Callable[[], object], n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6


def main() -> None:
    harness.block_orjson_if_asked()
    from audit_logging import records as kinds
    from audit_logging import schema
    from audit_logging.queue import AuditQueueHandler
    from audit_logging.writers.jsonl import JsonlHandler

    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "100000"))
    tmp = tempfile.mkdtemp(prefix="bench-profile-")
    log = logging.getLogger("bench.profile")
    log.propagate = False
    log.setLevel(logging.INFO)
    msg, extra = harness.MESSAGE, harness.PAYLOAD

    log.handlers[:] = [logging.NullHandler()]
    floor = per_call_us(lambda: log.info(msg, extra=extra), n)

    writer = JsonlHandler(directory=tmp)
    handler = AuditQueueHandler(handlers=[writer])
    records = [
        log.makeRecord(log.name, logging.INFO, __file__, 0, msg, None, None, extra=extra)
        for _ in range(n)
    ]
    it = iter(records)
    prepare = per_call_us(lambda: handler.prepare(next(it)), n)
    q: queue.SimpleQueue[object] = queue.SimpleQueue()
    put = per_call_us(lambda: (q.qsize() >= 100_000, q.put(None)), n)
    record = records[0]
    parts = {
        "format_timestamp": per_call_us(lambda: schema.format_timestamp(record.created), n),
        "journal_fields": per_call_us(lambda: kinds.journal_fields(record), n),
    }
    fields = kinds.journal_fields(record)
    parts["dumps"] = per_call_us(lambda: schema.dumps(fields), n)
    line = schema.dumps(kinds.journal_record(record))
    parts["sha256 of the line"] = per_call_us(lambda: hashlib.sha256(line).hexdigest(), n)
    if schema.JSON_BACKEND == "orjson":
        import orjson

        options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z | orjson.OPT_STRICT_INTEGER
        parts["orjson alone"] = per_call_us(lambda: orjson.dumps(fields, None, options), n)
        non_str = options | orjson.OPT_NON_STR_KEYS
        parts["orjson, OPT_NON_STR_KEYS"] = per_call_us(
            lambda: orjson.dumps(fields, None, non_str), n
        )
    parts["selects"] = per_call_us(lambda: writer.selects(record), n)

    profiler = cProfile.Profile() if "--cprofile" in sys.argv else None
    t0 = time.process_time()
    if profiler:
        profiler.enable()
    for start in range(0, n, 1000):
        handler.dispatch(records[start : start + 1000])
    if profiler:
        profiler.disable()
    dispatch = (time.process_time() - t0) / n * 1e6
    handler.close()

    # The listener with each optional step turned off: what redaction and the
    # chain cost per line (garbage collection paused, as it adds noise only).
    options = {
        "defaults (chain, redaction)": {},
        "redact=False": {"redact": False},
        "chain=False": {"chain": False},
        "chain=False, redact=False": {"chain": False, "redact": False},
    }
    variants: dict[str, float] = {}
    for label, kwargs in options.items():
        variant = AuditQueueHandler(handlers=[JsonlHandler(directory=tempfile.mkdtemp(), **kwargs)])
        fresh = [
            variant.prepare(
                log.makeRecord(log.name, logging.INFO, __file__, 0, msg, None, None, extra=extra)
            )
            for _ in range(n)
        ]
        gc.collect()
        gc.disable()
        t0 = time.process_time()
        for start in range(0, n, 1000):
            variant.dispatch(fresh[start : start + 1000])
        variants[label] = (time.process_time() - t0) / n * 1e6
        gc.enable()
        variant.close()

    print(f"JSON backend: {schema.JSON_BACKEND}; {n} records; CPU us per record")
    print(f"  floor logger.info (LogRecord):  {floor:6.2f}")
    print(f"  AuditQueueHandler.prepare:      {prepare:6.2f}")
    print(f"  queue qsize + put:              {put:6.2f}")
    print(f"  dispatch (whole listener side): {dispatch:6.2f}")
    for name, value in parts.items():
        print(f"    of which ~{name + ':':22s}{value:6.2f}")
    print(f"  sum (no thread hand-off):       {floor + prepare + put + dispatch:6.2f}")
    print("  dispatch per line by writer options (gc paused):")
    for label, value in variants.items():
        print(f"    {label + ':':30s}{value:6.2f}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
