"""Group commit: callers that arrive while a write is in progress are written together next.

:class:`~audit_logging.AuditLogger` writes each event before ``log_event``
returns. Called from many threads (gRPC handlers on a thread pool), a lock
around one write per event makes every caller wait for every write before its
own: per-event cost grows with the number of threads. Here the first caller
to find no write in progress becomes the leader: it writes everything pending
(its own record and those of the callers that queued meanwhile) in one batch,
one file lock and one ``write()`` per file, then wakes them. Each caller still
returns only once its record is in the file.

Records are made under the same lock that orders the pending list, so their
timestamps follow the order in which they are written: within a process, the
CSV (append order) is also timestamp order.

No library does this for ``logging`` handlers: the stdlib's handlers take
their lock per record, and ``QueueHandler`` returns before the write.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["GroupCommit"]


class GroupCommit:
    """Calls ``write(batch)`` with the records of concurrent :meth:`submit` calls, one at a time."""

    def __init__(self, write: Callable[[list[logging.LogRecord]], None]) -> None:
        self._write = write
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[logging.LogRecord] = []
        self._writing = False
        self._opened = 0  # number of the batch that pending records will go in
        self._done = -1  # number of the last batch written

    def submit(self, make_record: Callable[[], logging.LogRecord]) -> None:
        """Make a record under the lock (timestamps in write order); return once it is written."""
        with self._cond:
            mine = self._opened
            self._pending.append(make_record())
            while self._done < mine:
                if self._writing:
                    self._cond.wait()
                    continue
                batch, self._pending = self._pending, []
                number = self._opened
                self._opened += 1
                self._writing = True
                self._cond.release()
                try:
                    self._write(batch)
                finally:
                    self._cond.acquire()
                    self._writing = False
                    self._done = number
                    self._cond.notify_all()

    def run_alone(self, action: Callable[[], None]) -> None:
        """Run ``action`` while no batch is being written (e.g. closing the files)."""
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._writing = True
        try:
            action()
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
