"""The one after-fork registry: objects told, in a forked child, to forget their parent's state.

A child made by ``fork`` inherits its parent's open file descriptors (and the
locks taken through them), queues and threads that do not exist in it. Each
object that holds such state registers here (:func:`reset_after_fork`) and
gets its ``_after_fork_in_child()`` called in the child, once, before any of
the child's code runs. Registration holds only a weak reference.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["ForkAware", "reset_after_fork"]


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_registered: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def reset_after_fork(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child this process forks from now on."""
    _registered.add(obj)


def _in_child() -> None:
    for obj in list(_registered):
        try:
            obj._after_fork_in_child()
        except Exception:  # one object's reset must not stop the others'
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
