"""Scenario 1: caller cost and end-to-end records/s, audit_logging beside its peers.

Each case builds one logging set-up writing the same payload
(:data:`benchmarks.harness.PAYLOAD`), then measures, in this order:

1. spaced latency (ns per call while the writer keeps up);
2. a sustained burst, until everything is on disk (records/s, CPU per record).

The floor is the stdlib logger with only a ``NullHandler``: the cost of making
a ``LogRecord``, which every ``logging``-based set-up pays.
"""

from __future__ import annotations

import importlib.util
import logging
import logging.handlers
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks import harness

#: case -> burst records in full mode; slow peers get fewer records so that
#: the whole run stays under 5 minutes (a rate does not need 200k records: the
#: listener drains batches of at most 1,000, so 30,000 records are 30 of them).
BURST = {
    "floor": 30_000,
    "stdlib_queue_noop": 30_000,
    "pjl_file": 20_000,
    "pjl_queue": 20_000,
    "clh_json": 6_000,
    "structlog_orjson": 30_000,
    "loguru_serialize": 12_000,
    "loguru_enqueue": 6_000,
    "bare_queue_orjson": 30_000,
    "audit_queue_noop": 30_000,
    "audit_queue_nosnapshot": 30_000,
    "audit_jsonl": 30_000,
    "audit_jsonl_nochain": 30_000,
    "audit_jsonl_plain": 30_000,
    "audit_jsonl_bare": 30_000,
    "audit_jsonl_stdlib_json": 30_000,
    "audit_json_array": 20_000,
    "audit_csv": 20_000,
    "audit_all_four": 12_000,
}
QUICK_BURST = 5_000
#: Spaced calls per case: p99.9 of 1,500 samples is the 2nd-slowest call.
SPACED = 1_500
QUICK_SPACED = 300


@dataclass
class Case:
    call: Callable[[], object]
    flush: Callable[[], object]
    close: Callable[[], object] = lambda: None
    notes: list[str] = field(default_factory=list)


def _logger(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger("bench")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


def _stdlib_call(log: logging.Logger, extra: dict[str, Any]) -> Callable[[], None]:
    info = log.info
    msg = harness.MESSAGE

    def call() -> None:
        info(msg, extra=extra)

    return call


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True)


def case_floor(tmp: str) -> Case:
    log = _logger(logging.NullHandler())
    return Case(_stdlib_call(log, harness.PAYLOAD), lambda: None)


def case_stdlib_queue_noop(tmp: str) -> Case:
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, logging.NullHandler())
    listener.start()
    log = _logger(logging.handlers.QueueHandler(q))

    def flush() -> None:
        listener.stop()  # drains the queue; restart for the next phase
        listener.start()

    return Case(_stdlib_call(log, harness.PAYLOAD), flush, listener.stop)


def case_pjl_file(tmp: str) -> Case:
    handler = logging.FileHandler(os.path.join(tmp, "pjl.jsonl"), encoding="utf-8")
    handler.setFormatter(_json_formatter())
    log = _logger(handler)
    return Case(_stdlib_call(log, harness.PAYLOAD), handler.flush, handler.close)


def case_pjl_queue(tmp: str) -> Case:
    target = logging.FileHandler(os.path.join(tmp, "pjl.jsonl"), encoding="utf-8")
    target.setFormatter(_json_formatter())
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, target)
    listener.start()
    log = _logger(logging.handlers.QueueHandler(q))

    def flush() -> None:
        listener.stop()
        target.flush()
        listener.start()

    def close() -> None:
        listener.stop()
        target.close()

    return Case(_stdlib_call(log, harness.PAYLOAD), flush, close)


def case_clh_json(tmp: str) -> Case:
    from concurrent_log_handler import ConcurrentRotatingFileHandler

    handler = ConcurrentRotatingFileHandler(os.path.join(tmp, "clh.jsonl"), maxBytes=0)
    handler.setFormatter(_json_formatter())
    log = _logger(handler)
    return Case(_stdlib_call(log, harness.PAYLOAD), handler.flush, handler.close)


def case_structlog_orjson(tmp: str) -> Case:
    import orjson
    import structlog

    out = open(os.path.join(tmp, "structlog.jsonl"), "wb")  # noqa: SIM115 - closed in close()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # structlog's message key is "event": move it to "message" and
            # pass the journal event as "_event" so the line has the same keys.
            structlog.processors.EventRenamer("message", "_event"),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.BytesLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("bench")
    kwargs = dict(harness.PAYLOAD)
    kwargs["_event"] = kwargs.pop("event")
    msg = harness.MESSAGE

    def call() -> None:
        log.info(msg, **kwargs)

    return Case(call, out.flush, out.close)


class _BareQueueHandler(logging.Handler):
    """The hand-built peer of issue 2: enqueue the bare record, serialise with orjson later.

    No snapshot, no schema check, no redaction, no chain, no lock: the least a
    queue in front of a JSON file can do per record, so its sustained CPU is
    what any ``logging``-based asynchronous writer starts from.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:
        self._queue.put(record)
        return True

    def _run(self) -> None:
        import orjson

        q, dumps, newline = self._queue, orjson.dumps, orjson.OPT_APPEND_NEWLINE
        while True:
            items = [q.get()]
            while len(items) < 1000 and not q.empty():
                items.append(q.get())
            lines: list[bytes] = []
            for r in items:
                if not isinstance(r, logging.LogRecord):
                    os.write(self._fd, b"".join(lines))
                    lines = []
                    if r is None:
                        return
                    r.set()
                    continue
                get = r.__dict__.get
                line = {
                    "timestamp": r.created,
                    "event": get("event"),
                    "dataset": get("dataset"),
                    "model": get("model"),
                    "decision": get("decision"),
                    "reasoning": get("reasoning"),
                    "metrics_snapshot": get("metrics_snapshot"),
                    "message": r.getMessage(),
                    "level": r.levelname,
                    "logger": r.name,
                }
                lines.append(dumps(line, option=newline))
            os.write(self._fd, b"".join(lines))

    def flush(self) -> None:
        if self._thread.is_alive():  # logging.shutdown() flushes after close()
            done = threading.Event()
            self._queue.put(done)
            done.wait()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
            os.close(self._fd)
        super().close()


def case_bare_queue_orjson(tmp: str) -> Case:
    if importlib.util.find_spec("orjson") is None:
        raise _Skip("orjson is not installed")
    handler = _BareQueueHandler(os.path.join(tmp, "bare.jsonl"))
    log = _logger(handler)
    return Case(_stdlib_call(log, harness.PAYLOAD), handler.flush, handler.close)


def _loguru(tmp: str, enqueue: bool) -> Case:
    from loguru import logger

    logger.remove()
    logger.add(os.path.join(tmp, "loguru.jsonl"), serialize=True, enqueue=enqueue, level="INFO")
    kwargs = dict(harness.PAYLOAD)
    msg = harness.MESSAGE
    info = logger.info

    def call() -> None:
        info(msg, **kwargs)

    def flush() -> None:
        # complete() waits for the enqueue worker; remove() closes (flushes) the file.
        logger.complete()
        for sink in list(logger._core.handlers.values()):  # type: ignore[attr-defined]
            sink._sink._file.flush()

    return Case(call, flush, logger.remove)


def case_loguru_serialize(tmp: str) -> Case:
    return _loguru(tmp, enqueue=False)


def case_loguru_enqueue(tmp: str) -> Case:
    return _loguru(tmp, enqueue=True)


def _audit(targets: list[logging.Handler], extra: dict[str, Any]) -> Case:
    from audit_logging.queue import AuditQueueHandler

    handler = AuditQueueHandler(handlers=targets)
    log = _logger(handler)
    return Case(_stdlib_call(log, extra), handler.flush, handler.close)


class _NoopBatchTarget(logging.Handler):
    """A target that takes each batch and does nothing with it."""

    def handle_batch(self, records: list[logging.LogRecord]) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        pass


def case_audit_queue_noop(tmp: str) -> Case:
    """``AuditQueueHandler`` alone: snapshot, queue and listener, writing nothing.

    What any writer behind it starts from; the difference to a writer's row is
    the writer's own cost per line.
    """
    return _audit([_NoopBatchTarget()], harness.PAYLOAD)


def _no_snapshot_queue(targets: list[logging.Handler]) -> logging.Handler:
    """An ``AuditQueueHandler`` whose ``prepare()`` keeps nothing from later mutation.

    Not a configuration the library offers (issue 2 requires the snapshot):
    it measures what the snapshot costs.
    """
    from audit_logging.queue import AuditQueueHandler

    class NoSnapshotQueueHandler(AuditQueueHandler):
        def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
            return record

    return NoSnapshotQueueHandler(handlers=targets)


def case_audit_queue_nosnapshot(tmp: str) -> Case:
    """The queue alone without its snapshot: the difference to the row above is the snapshot."""
    handler = _no_snapshot_queue([_NoopBatchTarget()])
    return Case(_stdlib_call(_logger(handler), harness.PAYLOAD), handler.flush, handler.close)


def case_audit_jsonl_bare(tmp: str) -> Case:
    """The journal without snapshot, chain and redaction: what remains of its cost."""
    from audit_logging.writers.jsonl import JsonlHandler

    handler = _no_snapshot_queue([JsonlHandler(directory=tmp, chain=False, redact=False)])
    return Case(_stdlib_call(_logger(handler), harness.PAYLOAD), handler.flush, handler.close)


def case_audit_jsonl(tmp: str) -> Case:
    """The journal with its defaults (hash chain on, where the version has one)."""
    from audit_logging.writers.jsonl import JsonlHandler

    return _audit([JsonlHandler(directory=tmp)], harness.PAYLOAD)


def case_audit_jsonl_nochain(tmp: str) -> Case:
    from audit_logging.writers.jsonl import JsonlHandler

    try:
        writer = JsonlHandler(directory=tmp, chain=False)  # type: ignore[call-arg]
    except TypeError:
        raise _Skip("JsonlHandler has no chain option in this version") from None
    return _audit([writer], harness.PAYLOAD)


def case_audit_jsonl_plain(tmp: str) -> Case:
    """The journal as issue 2 specified it: no hash chain (issue 6), no redaction (issue 9)."""
    from audit_logging.writers.jsonl import JsonlHandler

    try:
        writer = JsonlHandler(directory=tmp, chain=False, redact=False)  # type: ignore[call-arg]
    except TypeError:
        raise _Skip("JsonlHandler has no chain or redact option in this version") from None
    return _audit([writer], harness.PAYLOAD)


def case_audit_jsonl_stdlib_json(tmp: str) -> Case:
    from audit_logging.schema import JSON_BACKEND  # type: ignore[attr-defined]

    if JSON_BACKEND != "json":
        raise _Skip(f"orjson could not be blocked (backend {JSON_BACKEND})")
    return case_audit_jsonl(tmp)


def _optional(module: str, name: str) -> Any:
    if importlib.util.find_spec(module) is None:
        raise _Skip(f"{module} does not exist yet")
    return getattr(importlib.import_module(module), name)


class _Skip(Exception):
    pass


def case_audit_json_array(tmp: str) -> Case:
    cls = _optional("audit_logging.writers.json_array", "JsonArrayHandler")
    case = _audit(
        [cls(path=os.path.join(tmp, "audit_log.json"))], {**harness.PAYLOAD, **harness.ACTION_EXTRA}
    )
    case.notes.append("payload + action_type/status (the writer's key)")
    return case


def case_audit_csv(tmp: str) -> Case:
    cls = _optional("audit_logging.writers.csv", "CsvHandler")
    case = _audit(
        [cls(path=os.path.join(tmp, "audit_log.csv"))], {**harness.PAYLOAD, **harness.ACTION_EXTRA}
    )
    case.notes.append("payload + action_type/status (the writer's key)")
    return case


def case_audit_all_four(tmp: str) -> Case:
    from audit_logging.writers.jsonl import JsonlHandler

    array = _optional("audit_logging.writers.json_array", "JsonArrayHandler")
    csv = _optional("audit_logging.writers.csv", "CsvHandler")
    warnings = _optional("audit_logging.writers.warnings", "WarningFileHandler")
    targets = [
        JsonlHandler(directory=tmp),
        array(path=os.path.join(tmp, "audit_log.json")),
        csv(path=os.path.join(tmp, "audit_log.csv")),
        warnings(directory=os.path.join(tmp, "warnings")),
    ]
    # Every record reaches the journal, the array and the CSV; a persistent
    # warning is rare by nature (one file per warning), so the warning writer
    # sees records it filters out, as in real use.
    case = _audit(targets, {**harness.PAYLOAD, **harness.ACTION_EXTRA})
    case.notes.append("records carry event + action_type; the warning writer filters them out")
    return case


def main() -> None:
    args = harness.child_args(__doc__ or "")
    harness.block_orjson_if_asked()
    builder = globals().get(f"case_{args.case}")
    if builder is None:
        raise SystemExit(f"unknown case {args.case!r}")
    try:
        case: Case = builder(args.dir)
    except _Skip as skip:
        harness.emit(skipped=str(skip))
        return
    metrics: dict[str, Any] = {}
    metrics.update(harness.spaced_latency(case.call, QUICK_SPACED if args.quick else SPACED))
    case.flush()
    burst = QUICK_BURST if args.quick else BURST[args.case]
    metrics.update(harness.sustained(case.call, burst, case.flush))
    case.close()
    harness.emit(metrics, case.notes)


if __name__ == "__main__":
    main()
