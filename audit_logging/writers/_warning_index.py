"""The warning writer's in-memory index of its folder: per type, names oldest first, sizes."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["WarningIndex"]


@dataclass
class WarningIndex:
    """What we know of the folder: per type, names oldest first, and their sizes.

    Names sort by their second; within one second (where the name order is by
    fingerprint), by modification time, then name: a file's mtime is when it
    was written, except after a checkout, when whole seconds apart matter more.
    """

    names: dict[str, list[str]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    mtimes: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def key(self, name: str) -> tuple[str, int, str]:
        return (name[:19], self.mtimes.get(name, 0), name)

    def add(self, wtype: str, name: str, size: int, mtime_ns: int) -> None:
        if name in self.sizes:
            return
        self.sizes[name] = size
        self.mtimes[name] = mtime_ns
        self.total += size
        bisect.insort(self.names.setdefault(wtype, []), name, key=self.key)

    def remove(self, wtype: str, name: str) -> None:
        size = self.sizes.pop(name, None)
        if size is None:
            return
        self.total -= size
        try:
            self.names.get(wtype, []).remove(name)
        except ValueError:
            pass
        self.mtimes.pop(name, None)

    def oldest(self, keep: str = "") -> tuple[str, str] | None:
        """The (type, name) of the oldest file of any type other than ``keep``."""
        best: tuple[str, str] | None = None
        for wtype, names in self.names.items():
            for name in names[:2]:  # keep may be first; then the second is the oldest other
                if name != keep:
                    if best is None or self.key(name) < self.key(best[1]):
                        best = (wtype, name)
                    break
        return best
