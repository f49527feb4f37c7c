"""The target handlers of :class:`~audit_logging.AuditQueueHandler`, given as objects or names.

A name is resolved among the handlers of the ``dictConfig``/``fileConfig``
call that is building the queue handler, else among the named handlers of
the process. ``dictConfig`` builds handlers in sorted name order, so the
targets named may not exist yet when the queue handler is built (``"audit"``
sorts before ``"journal"``): they are resolved later, at the first record.
A name the configuration does not have at all is a mistake reported at once,
while the configuration is being built.
"""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["PendingTargets", "target_list"]

_OWNER = "AuditQueueHandler"


def target_list(handlers: Any) -> list[logging.Handler | str]:
    """``handlers`` as a list; one string is one name (iterating it would give its letters)."""
    try:
        items = [handlers] if isinstance(handlers, (str, logging.Handler)) else list(handlers)
    except TypeError:
        raise TypeError(
            f"{_OWNER}: handlers must be a list of logging.Handler objects or names, "
            f"not {type(handlers).__name__} {handlers!r}"
        ) from None
    for item in items:
        if not isinstance(item, (logging.Handler, str)):
            raise TypeError(
                f"{_OWNER}: handlers must be logging.Handler objects or names, not {item!r}"
            )
    if not items:
        raise ValueError(f"{_OWNER} needs at least one target in handlers; none given")
    return items


def _find_config_handlers() -> tuple[Mapping[str, Any], list[str]] | None:
    """The handlers of the ``dictConfig``/``fileConfig`` call running us, and all their names.

    Once ``dictConfig`` returns, a target that no logger holds is
    garbage-collected (``logging`` keeps only weak references). Both
    configurators keep a dict ``handlers`` of name -> handler (or its config,
    until built) in a local of their frame; holding that dict keeps every
    target alive until the names are resolved from it. The names configured
    are that dict's keys (``dictConfig``) or the ``[handlers] keys`` of the
    file (``fileConfig``, whose dict holds only the handlers built so far).
    """
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__") == "logging.config":
            local = frame.f_locals
            handlers = local.get("handlers")
            if isinstance(handlers, dict):
                return handlers, _configured_names(local.get("cp"), handlers)
        frame = frame.f_back
    return None


def _configured_names(parser: Any, handlers: Mapping[str, Any]) -> list[str]:
    try:  # fileConfig: its ConfigParser (its own list of names is a map() being consumed)
        keys = parser["handlers"]["keys"]
    except Exception:  # dictConfig: every name is a key of its dict
        return [str(name) for name in handlers]
    return [name.strip() for name in str(keys).split(",") if name.strip()]


def no_handler(missing: Sequence[str], configured: Iterable[str]) -> ValueError:
    """The error for names no handler has: ``no handler named 'x' (configured: a, b)``."""
    known = ", ".join(dict.fromkeys(configured)) or "none"
    plural = "s" if len(missing) > 1 else ""
    names = ", ".join(repr(n) for n in missing)
    return ValueError(f"{_OWNER}: no handler{plural} named {names} (configured: {known})")


class PendingTargets:
    """Targets given, some perhaps not built yet; :meth:`resolve` turns them into handlers.

    Built in the queue handler's constructor: raises ``ValueError`` there for
    a name that the running configuration (or, outside one, the process)
    does not have.
    """

    def __init__(self, spec: list[logging.Handler | str]) -> None:
        self.spec = spec
        self.config: Mapping[str, Any] | None = None
        #: Whether names wait for a configuration to build their handlers.
        self.deferred = False
        if all(isinstance(item, logging.Handler) for item in spec):
            return
        found = _find_config_handlers()
        if found is None:
            return
        handlers, configured = found
        known = set(configured).union(logging._handlers)  # type: ignore[attr-defined]
        missing = [n for n in spec if isinstance(n, str) and n not in known]
        if missing:
            raise no_handler(missing, configured)
        self.config = handlers
        self.deferred = True

    def resolve(self, final: bool, owner: logging.Handler) -> list[logging.Handler] | None:
        """The handlers, in the order given; None while some are not built and not ``final``.

        ``final``: raise ``ValueError`` naming what is still missing (the
        handlers found are in the error's ``resolved`` attribute).
        """
        resolved: list[logging.Handler] = []
        missing: list[str] = []
        for item in self.spec:
            if isinstance(item, logging.Handler):
                resolved.append(item)
                continue
            found = None
            if self.config is not None:
                candidate = self.config.get(item)
                if isinstance(candidate, logging.Handler):
                    found = candidate
            if found is None:
                # A handler configured by hand, or earlier in fileConfig's order.
                found = logging._handlers.get(item)  # type: ignore[attr-defined]
            if isinstance(found, logging.Handler) and found is not owner:
                resolved.append(found)
            else:
                missing.append(item)
        if not missing:
            return resolved
        if not final:
            return None
        error = no_handler(missing, logging._handlers)  # type: ignore[attr-defined]
        error.resolved = resolved  # type: ignore[attr-defined]
        raise error
