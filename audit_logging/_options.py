"""Checks of constructor options, so that a wrong set-up fails when it is built.

``dictConfig`` and ``fileConfig`` build every handler through its
constructor, so a check there catches a mistake at set-up time instead of at
the first log call (or, worse, in the listener thread where it can only be
printed). Each check is a type test and a comparison: cheap enough for every
constructor. Imports nothing of ours, so any module may use it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = [
    "WRITER_OPTIONS",
    "check_bool",
    "check_choice",
    "check_int",
    "check_number",
    "check_writable_dir",
    "check_writer_options",
    "names",
]

T = TypeVar("T")


def _owner(owner: str, option: str) -> str:
    return f"{owner}: {option}" if owner else option


def check_int(owner: str, option: str, value: Any, minimum: int | None = None) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``; else an error naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{_owner(owner, option)} must be an integer, not {type(value).__name__} {value!r}"
        )
    if minimum is not None and value < minimum:
        raise ValueError(f"{_owner(owner, option)} must be at least {minimum}, not {value!r}")
    return value


def check_number(owner: str, option: str, value: Any, minimum: float | None = None) -> float:
    """``value`` as a float if it is an int or float (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{_owner(owner, option)} must be a number, not {type(value).__name__} {value!r}"
        )
    if minimum is not None and not value >= minimum:  # NaN fails too
        raise ValueError(f"{_owner(owner, option)} must be at least {minimum:g}, not {value!r}")
    return float(value)


def check_bool(owner: str, option: str, value: Any) -> bool:
    """``value`` if it is a bool: ``"false"`` from a config file would otherwise read as true."""
    if not isinstance(value, bool):
        raise TypeError(
            f"{_owner(owner, option)} must be True or False, not {type(value).__name__} {value!r}"
        )
    return value


def check_choice(owner: str, option: str, value: Any, choices: Iterable[T]) -> T:
    """``value`` if it is one of ``choices``; else ValueError (TypeError for a wrong type)."""
    allowed = tuple(choices)
    if value in allowed:
        return value  # type: ignore[no-any-return]
    text = ", ".join(repr(c) for c in allowed)
    if allowed and not isinstance(value, type(allowed[0])):
        raise TypeError(
            f"{_owner(owner, option)} must be one of {text}, not {type(value).__name__} {value!r}"
        )
    raise ValueError(f"{_owner(owner, option)} must be one of {text}, not {value!r}")


def names(owner: str, option: str, value: Any) -> tuple[str, ...]:
    """A list of names: a single string is ONE name (``"journal"`` is not ``j, o, u, ...``)."""
    if isinstance(value, str):
        return (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(
            f"{_owner(owner, option)} must be a list of names, not {type(value).__name__} {value!r}"
        ) from None
    for item in items:
        if not isinstance(item, str):
            raise TypeError(
                f"{_owner(owner, option)} must hold strings, not {type(item).__name__} {item!r}"
            )
    return items


def check_writable_dir(path: str | os.PathLike[str]) -> None:
    """Make sure files can be created in folder ``path`` (or in it once made), or raise now.

    When ``path`` does not exist yet, its nearest existing ancestor must be a
    writable folder (the writer will create the rest). Raises the ``OSError``
    that opening a file there would raise later (``NotADirectoryError``,
    ``PermissionError``), with ``errno`` and the offending path, as
    ``logging.FileHandler`` does at construction. Costs a few ``stat`` calls
    and one ``access()``: nothing is created or written.
    """
    probe = os.path.abspath(os.fspath(path))
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory (a file is in the way)", probe)
    if not os.access(probe, os.W_OK | os.X_OK):
        # access() also answers for a read-only mount, where even root may not write.
        raise PermissionError(errno.EACCES, "folder is not writable", probe)


#: The writers' keyword options and what each must be: ``(kind, minimum)``;
#: kinds ``int``, ``number``, ``bool``, ``str``, ``key`` (str, bytes or None),
#: ``names`` (strings or None); ``?`` after a kind allows None.
WRITER_OPTIONS: dict[str, tuple[str, float | None]] = {
    "file_mode": ("int", 0),
    "dir_mode": ("int", 0),
    "redact": ("bool", None),
    "chain": ("bool", None),
    "per_session": ("bool", None),
    "prefix": ("str", None),
    "hmac_key": ("key", None),
    "secret_keys": ("names?", None),
    "digest_interval": ("number", 0),
    "max_record_bytes": ("int", 1),
    "max_files_per_type": ("int?", 0),
    "max_age_days": ("number?", 0),
    "max_total_bytes": ("int?", 0),
}


def check_writer_options(owner: str, **options: Any) -> None:
    """Check a writer's keyword options against :data:`WRITER_OPTIONS`; raise naming a bad one.

    For the writers' constructors, which ``dictConfig`` and ``fileConfig``
    call: ``check_writer_options("JsonlHandler", digest_interval=digest_interval,
    max_record_bytes=max_record_bytes, ...)``. An option not in the table is
    not checked.
    """
    for option, value in options.items():
        spec = WRITER_OPTIONS.get(option)
        if spec is None:
            continue
        kind, minimum = spec
        if kind.endswith("?"):
            if value is None:
                continue
            kind = kind[:-1]
        if kind == "int":
            check_int(owner, option, value, None if minimum is None else int(minimum))
        elif kind == "number":
            check_number(owner, option, value, minimum)
        elif kind == "bool":
            check_bool(owner, option, value)
        elif kind == "str" and not isinstance(value, str):
            raise TypeError(
                f"{_owner(owner, option)} must be a string, not {type(value).__name__} {value!r}"
            )
        elif kind == "key" and value is not None and not isinstance(value, (str, bytes)):
            raise TypeError(
                f"{_owner(owner, option)} must be a string or bytes, not {type(value).__name__}"
            )
        elif kind == "names":
            if isinstance(value, str):  # the writer would iterate its letters
                raise TypeError(
                    f"{_owner(owner, option)} must be a list of names, not str {value!r}"
                )
            names(owner, option, value)
