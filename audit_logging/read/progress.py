"""A progress bar on stderr, only when stderr is a terminal and the input is big.

Nothing is written to stderr otherwise (a CI log, a pipe). The bar is tqdm's
(a dependency of the package), imported only when one is shown.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["THRESHOLD", "Progress"]

#: Inputs smaller than this (bytes) get no bar: they are read before one would be seen.
THRESHOLD = 8 << 20


class Progress:
    """``with Progress(total, "verify") as advance: advance(nbytes)``."""

    def __init__(self, total: int, label: str, *, force: bool | None = None) -> None:
        show = force if force is not None else (sys.stderr.isatty() and total > THRESHOLD)
        self._bar: Any = None
        if show:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=label, unit="B", unit_scale=True, file=sys.stderr, leave=False
            )

    def __enter__(self) -> Callable[[int], None]:
        bar = self._bar
        if bar is None:
            return lambda _: None
        return lambda n: bar.update(n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
