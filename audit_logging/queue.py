"""AuditQueueHandler: the non-blocking fan-out between callers and the writers.

The caller's thread only snapshots the record and puts it on a queue; one
listener thread hands batches of records to the target handlers. This is the
job of the stdlib :class:`logging.handlers.QueueHandler` and
:class:`~logging.handlers.QueueListener`, but those cannot be used as they are:

* ``QueueHandler.prepare()`` formats the message, folds the traceback into it
  and copies the record in the caller's thread (cpython #89087), which costs
  the caller about 2x a plain ``logger.info``;
* ``dictConfig`` treats ``QueueHandler`` subclasses differently on each
  version: 3.12+ attaches a listener it never starts (cpython #117827) and
  drops subclass keyword arguments (#118868); 3.10/3.11 reject a
  ``handlers`` key;
* ``QueueListener`` hands records one at a time (a writer cannot take its file
  lock once per batch), has no flush barrier, and its ``stop()`` crashes
  when called twice before 3.13.

So this is a plain :class:`logging.Handler` that resolves the handler names it
is given itself. Override points, as in the stdlib: :meth:`prepare` (the
caller-side snapshot), :meth:`enqueue` (the put), :meth:`dispatch` (what the
listener does with a batch).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

from audit_logging._fork import reset_after_fork
from audit_logging._options import check_choice, check_int, check_number
from audit_logging._targets import PendingTargets, target_list
from audit_logging.snapshot import SNAPSHOT_BUDGET, SNAPSHOT_ITEMS, snapshot, snapshot_record

__all__ = ["SNAPSHOT_BUDGET", "SNAPSHOT_ITEMS", "AuditQueueHandler", "QueueFullPolicy", "snapshot"]

QueueFullPolicy = Literal["block", "drop"]


class _FlushRequest:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP: Final = object()


class AuditQueueHandler(logging.Handler):
    """Puts records on a bounded queue; one listener thread hands them to ``handlers``.

    ``handlers`` are handler objects, or names of handlers of the same
    ``dictConfig``/``fileConfig`` set-up (at least one; a single string is one
    name); a name the set-up lacks fails while it is built, as do options of
    the wrong type (a ``TypeError`` naming the option). The queue handler owns them: it keeps
    them alive, ``flush()`` returns once every record enqueued before the call
    has been written and flushed by every target, and ``close()`` drains the
    queue, stops the listener and closes the targets in the order given (so a
    mirror listed last sees the writers' final bytes). The queue is drained at
    interpreter exit too, also after an uncaught exception, and in a process
    started by ``multiprocessing`` when it ends.

    The queue holds at most ``queue_size`` records. When it is full, the
    ``"block"`` policy (the default: audit records matter) makes the caller
    wait up to ``block_timeout`` seconds for room; the ``"drop"`` policy, and a
    block that times out, drop the record and count it in :attr:`dropped`.
    Nothing ever raises into the caller.
    """

    def __init__(
        self,
        handlers: Iterable[logging.Handler | str] | logging.Handler | str = (),
        level: int | str = logging.NOTSET,
        *,
        queue_size: int = 100_000,
        full_policy: QueueFullPolicy = "block",
        block_timeout: float = 1.0,
        batch_size: int = 1_000,
        max_latency: float = 0.1,
        flush_timeout: float = 30.0,
    ) -> None:
        # Checked here, in the constructor that dictConfig and fileConfig call,
        # so that a wrong set-up fails while it is built, not at the first record;
        # and before Handler.__init__, which registers the handler for
        # logging.shutdown(): a half-built one must not be flushed at exit.
        owner = "AuditQueueHandler"
        self.full_policy: QueueFullPolicy = check_choice(
            owner, "full_policy", full_policy, ("block", "drop")
        )
        self.queue_size = check_int(owner, "queue_size", queue_size, minimum=1)
        self.batch_size = check_int(owner, "batch_size", batch_size, minimum=1)
        self.block_timeout = check_number(owner, "block_timeout", block_timeout, minimum=0)
        self.max_latency = check_number(owner, "max_latency", max_latency, minimum=0)
        self.flush_timeout = check_number(owner, "flush_timeout", flush_timeout, minimum=0)
        #: Records dropped because the queue stayed full.
        self.dropped = 0
        self._targets: list[logging.Handler] = []
        self._pending: PendingTargets | None = PendingTargets(target_list(handlers))
        # Names that a running dictConfig builds later are resolved at the first record.
        self._resolve_targets(final=not self._pending.deferred)
        super().__init__(level)
        self._closed = False
        self._reset_runtime_state()
        _live_handlers.add(self)
        reset_after_fork(self)

    # ------------------------------------------------------------------ targets

    @property
    def targets(self) -> Sequence[logging.Handler]:
        """The target handlers, in the order given."""
        self._resolve_targets(final=True)
        return tuple(self._targets)

    def _resolve_targets(self, final: bool) -> None:
        pending = self._pending
        if pending is None:
            return
        try:
            resolved = pending.resolve(final, owner=self)
        except ValueError as exc:
            # Keep the handlers found, so that close() still closes them.
            self._targets, self._pending = list(getattr(exc, "resolved", [])), None
            raise
        if resolved is not None:
            # Hold the targets ourselves and let go of the configurator's dict.
            self._targets, self._pending = resolved, None

    # ------------------------------------------------------------------ caller side

    def _after_fork_in_child(self) -> None:
        self._reset_runtime_state()

    def _reset_runtime_state(self) -> None:
        # Also the after-fork reset: the child gets its own queue and listener;
        # records its parent had queued are the parent's to write.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._not_full = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._full_waiters = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._dispatch_lock = threading.RLock()

    def handle(self, record: logging.LogRecord) -> Any:
        """Filter, prepare and enqueue ``record``; takes no lock (the queue is thread-safe)."""
        if self.filters:  # skipped when there are none: this is the caller's hot path
            rv: Any = self.filter(record)
            if not rv:
                return rv
            if isinstance(rv, logging.LogRecord):  # 3.12+: a filter may return a new record
                record = rv
        try:
            self.enqueue(self.prepare(record))
        except Exception:
            self.handleError(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.enqueue(self.prepare(record))
        except Exception:
            self.handleError(record)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """Snapshot, in the caller's thread, what the caller could still change.

        See :func:`audit_logging.snapshot.snapshot_record`: the containers of
        the ``extra`` keys and of the %-args are copied, long ones cut (and
        the cut noted), so a huge payload costs the caller milliseconds.
        Nothing is formatted or serialised here: the listener merges the
        message, and ``exc_info`` stays structured for the writers.
        """
        return snapshot_record(record)

    def enqueue(self, record: logging.LogRecord) -> None:
        """Put ``record`` on the queue, applying the full-queue policy; starts the listener."""
        if self._closed:
            # After close (e.g. logging from a later atexit hook): write in the
            # caller's thread rather than lose the record.
            self.dispatch([record])
            return
        if self._thread is None:
            self._start()
        q = self._queue
        size = q.qsize()
        if size >= self.batch_size or size >= self.queue_size:
            # A full batch is waiting: no need to linger. Event.set() takes a
            # lock and notifies; in a burst, only the first put pays for it.
            wake = self._wake
            if not wake.is_set():
                wake.set()
            if size >= self.queue_size and not self._wait_for_room(record):
                return
        q.put(record)

    def _wait_for_room(self, record: logging.LogRecord) -> bool:
        if threading.current_thread() is self._thread:
            return True  # the listener itself logged: waiting would deadlock
        if self.full_policy == "block" and self._thread is not None and self._thread.is_alive():
            deadline = time.monotonic() + self.block_timeout
            with self._not_full:
                self._full_waiters += 1
                try:
                    while self._queue.qsize() >= self.queue_size:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._not_full.wait(remaining)
                    else:
                        return True
                finally:
                    self._full_waiters -= 1
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 10_000 == 0:
            try:
                raise OverflowError(
                    f"AuditQueueHandler queue full ({self.queue_size} records): "
                    f"{self.dropped} record(s) dropped so far"
                )
            except OverflowError:
                self.handleError(record)
        return False

    # ------------------------------------------------------------------ listener side

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._resolve_targets(final=True)
            self._close_before_targets()
            thread = threading.Thread(
                target=self._run, name=f"AuditQueueHandler-{self.name or id(self)}", daemon=True
            )
            # Daemon, because the interpreter joins non-daemon threads before
            # atexit runs; the drain is done by our own exit hooks instead.
            thread.start()
            self._thread = thread

    def _close_before_targets(self) -> None:
        """Have ``logging.shutdown()`` close this handler before the targets it owns.

        ``logging.shutdown()`` closes handlers newest first, and ``dictConfig``
        builds them in name order, so ``"audit"`` is older than ``"journal"``
        and ``"mirror"``: the mirror's final sync would run before the queue is
        drained and the journal's last digest written, and this handler's own
        close of it later would find it closed. Moving this handler's entry in
        ``logging``'s handler list to the end makes it the newest.
        """
        with logging._lock:  # type: ignore[attr-defined]
            refs = logging._handlerList  # type: ignore[attr-defined]
            for i, ref in enumerate(refs):
                if ref() is self:
                    refs.append(refs.pop(i))
                    break

    def _run(self) -> None:
        q = self._queue
        get_nowait = q.get_nowait
        limit = self.batch_size
        # After a short batch, linger so that records accumulate: one wake-up,
        # one lock and one write() per batch instead of per record, and the
        # caller's thread competes less for the GIL. Bounded by max_latency: a
        # record reaches the disk within it (what survives a SIGKILL).
        linger = max(0.0, self.max_latency / 10)
        wake = self._wake
        while True:
            items = [q.get()]
            try:
                while len(items) < limit:
                    items.append(get_nowait())
            except queue.Empty:
                pass
            records: list[logging.LogRecord] = []
            stop = False
            for item in items:
                if isinstance(item, logging.LogRecord):
                    records.append(item)
                    continue
                if records:
                    self.dispatch(records)
                    records = []
                if item is _STOP:
                    stop = True
                elif isinstance(item, _FlushRequest):
                    self._flush_targets()
                    item.done.set()
            if records:
                self.dispatch(records)
            if self._full_waiters:
                with self._not_full:
                    self._not_full.notify_all()
            if stop:
                return
            if len(items) < limit and linger:
                wake.wait(linger)
                wake.clear()

    def dispatch(self, records: list[logging.LogRecord]) -> None:
        """Hand ``records`` to every target; a target that raises does not stop the others.

        Targets with a ``handle_batch(records)`` method (the audit writers) get
        the whole batch, so that they lock and write once per batch; others get
        ``handle(record)`` for each record at or above their level.
        """
        with self._dispatch_lock:
            for target in self._targets:
                batch = getattr(target, "handle_batch", None)
                if batch is not None:
                    try:
                        batch(records)
                    except Exception:
                        target.handleError(records[0])
                    continue
                level = target.level
                for record in records:
                    if record.levelno >= level:
                        try:
                            target.handle(record)
                        except Exception:
                            target.handleError(record)

    def _flush_targets(self) -> None:
        for target in self._targets:
            try:
                target.flush()
            except Exception:
                pass

    # ------------------------------------------------------------------ flush / close

    def flush(self) -> None:
        """Return once every record enqueued before this call is written and flushed.

        Waits at most :attr:`flush_timeout` seconds (a hung disk must not hang
        the caller forever).
        """
        thread = self._thread
        if thread is None or not thread.is_alive() or threading.current_thread() is thread:
            with self._dispatch_lock:
                self._flush_targets()
            return
        request = _FlushRequest()
        self._queue.put(request)
        self._wake.set()
        request.done.wait(self.flush_timeout)

    def close(self) -> None:
        """Drain the queue, stop the listener and close the targets in order. Idempotent."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            self._wake.set()
            thread.join(self.flush_timeout)
        # Records put by a caller that raced with close() land after _STOP.
        leftovers: list[logging.LogRecord] = []
        while thread is None or not thread.is_alive():
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, logging.LogRecord):
                leftovers.append(item)
            elif isinstance(item, _FlushRequest):
                item.done.set()
        if leftovers:
            self.dispatch(leftovers)
        try:
            self._resolve_targets(final=True)
        except ValueError:
            pass
        for target in self._targets:
            try:
                target.close()
            except Exception:
                target.handleError(
                    logging.LogRecord("audit_logging", logging.ERROR, "", 0, "close", None, None)
                )
        _live_handlers.discard(self)
        super().close()

    def __repr__(self) -> str:
        names = ", ".join(t.name or type(t).__name__ for t in self._targets)
        return f"<{type(self).__name__} [{names}] ({logging.getLevelName(self.level)})>"


# ---------------------------------------------------------------------- process hooks

_live_handlers: weakref.WeakSet[AuditQueueHandler] = weakref.WeakSet()


def _close_all() -> None:
    for handler in list(_live_handlers):
        try:
            handler.close()
        except Exception:
            pass


# atexit runs these before logging.shutdown() (registered earlier, run later),
# so targets are closed in our order. threading's own exit hooks also run at
# the end of a process started by multiprocessing, which skips atexit.
atexit.register(_close_all)
_register_threading_atexit = getattr(threading, "_register_atexit", None)
if _register_threading_atexit is not None:
    try:
        _register_threading_atexit(_close_all)
    except RuntimeError:  # imported during interpreter shutdown
        pass
