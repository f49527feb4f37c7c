"""The record schemas, the names they use, and JSON-safe conversion.

This module is the bottom of the package: it imports nothing of ours. It holds

* the field sets of the three record kinds (journal, action, warning) and the
  ``extra`` keys that select them;
* the standard names: :class:`Event`, :class:`ActionType`, :class:`WarningType`
  and their default severities, plus :func:`register_event` for a project's own
  events;
* timestamps (UTC, ISO 8601, microseconds, ``Z``);
* :func:`dumps`, a strict JSON encoder that never raises: NaN and infinities
  become ``null``, numpy values keep their numbers, datetimes become ISO strings,
  bytes, sets, cycles and arbitrary objects become readable text.

The audit ``extra`` keys (:data:`AUDIT_EXTRA_KEYS`) were chosen so that none of
them clashes with a :class:`logging.LogRecord` attribute: ``logging`` raises
``KeyError`` in the caller for an ``extra`` key such as ``message`` or ``name``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import decimal
import enum
import importlib.util
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from audit_logging import context as _context

__all__ = [
    "ACTION_FIELDS",
    "AUDIT_EXTRA_KEYS",
    "DEFAULT_SEVERITIES",
    "JOURNAL_CONTEXT_FIELDS",
    "JOURNAL_FIELDS",
    "JOURNAL_USER_FIELDS",
    "WARNING_FIELDS",
    "ActionType",
    "Event",
    "UnknownEventError",
    "WarningType",
    "dumps",
    "event_name",
    "format_timestamp",
    "is_known_event",
    "known_event_names",
    "known_events",
    "register_event",
    "safe_str",
    "session_id",
    "to_jsonable",
]

# --------------------------------------------------------------------------- fields

#: The fixed fields of a journal line, in the order they are written.
JOURNAL_FIELDS: Final = (
    "timestamp",
    "event",
    "dataset",
    "model",
    "decision",
    "reasoning",
    "metrics_snapshot",
)
#: Context written after :data:`JOURNAL_FIELDS` on every journal line.
JOURNAL_CONTEXT_FIELDS: Final = (
    "message",
    "exception",
    "extra",
    "level",
    "logger",
    "session_id",
    "host",
    "pid",
    "seq",
)
#: The journal fields the caller supplies (the rest are ours): what redaction looks at.
JOURNAL_USER_FIELDS: Final = JOURNAL_FIELDS[2:] + JOURNAL_CONTEXT_FIELDS[:3]
#: The fields of an action-audit entry (``audit_log.json`` / ``audit_log.csv``).
ACTION_FIELDS: Final = ("timestamp", "action_type", "status", "details", "error")
#: The fields of a persistent warning file.
WARNING_FIELDS: Final = (
    "timestamp",
    "type",
    "severity",
    "fingerprint",
    "git_commit",
    "message",
    "recommendation",
)

#: ``extra`` key that makes a record a journal event.
EVENT_KEY: Final = "event"
#: ``extra`` key that makes a record an action-audit entry.
ACTION_KEY: Final = "action_type"
#: ``extra`` key that makes a record a persistent warning.
WARNING_KEY: Final = "warning_type"

#: Every ``extra`` key the audit writers read. None is a LogRecord attribute.
AUDIT_EXTRA_KEYS: Final = (
    "event",
    "dataset",
    "model",
    "decision",
    "reasoning",
    "metrics_snapshot",
    "action_type",
    "status",
    "details",
    "error",
    "experiment",
    "warning_type",
    "severity",
    "fingerprint",
    "git_commit",
    "recommendation",
)


# --------------------------------------------------------------------------- names


class Event(str, enum.Enum):
    """The standard journal events (seed 002). Register others with :func:`register_event`."""

    DATASET_UPLOADED = "DATASET_UPLOADED"
    DATASET_VALIDATED = "DATASET_VALIDATED"
    DATASET_PREPROCESSED = "DATASET_PREPROCESSED"
    TRAINING_STARTED = "TRAINING_STARTED"
    TRAINING_PROGRESS = "TRAINING_PROGRESS"
    TRAINING_COMPLETED = "TRAINING_COMPLETED"
    TRAINING_FAILED = "TRAINING_FAILED"
    TRAINING_STOPPED = "TRAINING_STOPPED"
    MODEL_EVALUATED = "MODEL_EVALUATED"
    MODEL_SAVED = "MODEL_SAVED"
    MODEL_DOWNLOADED = "MODEL_DOWNLOADED"
    MODEL_COMPARED = "MODEL_COMPARED"
    ALGORITHM_SELECTED = "ALGORITHM_SELECTED"
    HYPERPARAMETERS_SET = "HYPERPARAMETERS_SET"
    ISSUE_DETECTED = "ISSUE_DETECTED"

    def __str__(self) -> str:
        return self.value


class ActionType(str, enum.Enum):
    """The action types of the experiment-UI audit trail (seed 001); other strings are accepted."""

    HP_CHANGE = "hp_change"
    PAUSE = "pause"
    RESUME = "resume"
    MODE_SWITCH = "mode_switch"
    TAG_ADD = "tag_add"
    TAG_REMOVE = "tag_remove"
    SAMPLE_DISCARD = "sample_discard"
    SAMPLE_RESTORE = "sample_restore"
    QUERY_EXECUTE = "query_execute"
    CHECKPOINT_RESTORE = "checkpoint_restore"
    EVALUATION_START = "evaluation_start"
    NOTE_WRITE = "note_write"

    def __str__(self) -> str:
        return self.value


class WarningType(str, enum.Enum):
    """The persistent warning types (seed 000). Other ``[a-z0-9_]`` names are allowed too."""

    DIRTY_GIT = "dirty_git"
    CREDENTIALS_MISSING = "credentials_missing"
    GCS_AUTH_FAILED = "gcs_auth_failed"
    CHECKPOINT_CORRUPTED = "checkpoint_corrupted"
    RESUME_CONFIG_MISMATCH = "resume_config_mismatch"
    TRAINING_INTERRUPTED = "training_interrupted"
    TRAINING_FAILED = "training_failed"

    def __str__(self) -> str:
        return self.value


#: Severity of each standard warning type when the record does not set one.
DEFAULT_SEVERITIES: Final[Mapping[str, str]] = {
    "dirty_git": "WARNING",
    "credentials_missing": "CRITICAL",
    "gcs_auth_failed": "CRITICAL",
    "checkpoint_corrupted": "ERROR",
    "resume_config_mismatch": "WARNING",
    "training_interrupted": "INFO",
    "training_failed": "ERROR",
}


class UnknownEventError(ValueError):
    """A record's ``event`` is neither a standard :class:`Event` nor a registered one."""


_registered_events: set[str] = set()
_standard_events: Final = frozenset(e.value for e in Event)
_known_events: set[str] = set(_standard_events)


def register_event(*names: str) -> None:
    """Allow project-specific journal events besides the standard :class:`Event` names.

    Call it at import time of the code that logs them (in every process that
    logs them)::

        audit_logging.register_event("DATA_DRIFT_CHECKED", "LABELS_AUDITED")

    Names must be non-empty strings of ``A-Z``, ``0-9`` and ``_``.
    """
    for name in names:
        if not isinstance(name, str) or not name or not _is_event_token(name):
            raise ValueError(f"event names are non-empty strings of A-Z, 0-9 and _; got {name!r}")
    _registered_events.update(names)
    _known_events.update(names)


def _is_event_token(name: str) -> bool:
    return all(c.isascii() and (c.isupper() or c.isdigit() or c == "_") for c in name)


def known_events() -> frozenset[str]:
    """The standard and registered event names."""
    return _standard_events | _registered_events


def event_name(value: object) -> str | None:
    """The event name carried by ``value`` (a str or an :class:`Event`), else ``None``."""
    if isinstance(value, enum.Enum):
        value = value.value
    return value if isinstance(value, str) else None


def is_known_event(name: str) -> bool:
    return name in _known_events


#: The standard and registered event names, as one set that :func:`register_event`
#: updates in place (for a writer's per-record test, without a call).
known_event_names: Final[set[str]] = _known_events


# --------------------------------------------------------------------------- context

HOST: Final = _context.HOST


def session_id() -> str:
    """The session id shared by all ranks of one job (:func:`audit_logging.context.session_id`).

    ``AUDIT_SESSION_ID`` when set, else derived from the launcher's job id,
    else one id per process; a process made by ``fork`` keeps its parent's id.
    """
    return _context.current().session_id


# --------------------------------------------------------------------------- time

_ts_cache: tuple[int, str] = (-1, "")


def format_timestamp(created: float) -> str:
    """``created`` (seconds since the epoch) as ``2026-05-27T14:30:00.123456Z`` (UTC)."""
    global _ts_cache
    sec = math.floor(created)
    usec = round((created - sec) * 1_000_000)  # as datetime.fromtimestamp rounds
    if usec == 1_000_000:
        sec, usec = sec + 1, 0
    cached_sec, prefix = _ts_cache
    if cached_sec != sec:
        # strftime costs ~1 us; records come many per second, so format the
        # seconds once and add the microseconds.
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _ts_cache = (sec, prefix)
    return f"{prefix}.{usec:06d}Z"


def utc_now() -> str:
    return format_timestamp(time.time())


# --------------------------------------------------------------------------- JSON

_SCALARS: Final = (str, int, float, bool, type(None))
_MAX_DEPTH: Final = 64
# The integers a double holds exactly: jq and JSON Schema validators read numbers
# as doubles, so a larger int is written as a string of its digits.
_INT_MIN: Final = -(2**53 - 1)
_INT_MAX: Final = 2**53 - 1


def _readable_bytes(data: bytes | bytearray | memoryview) -> str:
    raw = bytes(data)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


def _iso(value: _dt.datetime | _dt.date | _dt.time) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _safe_repr(obj: object) -> str:
    try:
        return repr(obj)
    except Exception:  # a __repr__ that raises must not lose the record
        return f"<unrepresentable {type(obj).__name__}>"


def _clean_str(s: str) -> str:
    # Lone surrogates cannot be encoded as UTF-8; jq and most readers reject them.
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s


def _number_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _key(k: object) -> str:
    if isinstance(k, str):
        return _clean_str(k)
    if isinstance(k, enum.Enum):
        return _key(k.value)
    if k is None or isinstance(k, (bool, int, float)):
        return json.dumps(k)
    return _clean_str(_safe_repr(k))


def to_jsonable(value: Any, _path: frozenset[int] = frozenset(), _depth: int = 0) -> Any:
    """A copy of ``value`` made only of JSON types; never raises.

    numpy scalars and arrays keep their numbers, non-finite floats become
    ``None``, datetimes ISO strings, bytes UTF-8 text (else ``base64:...``),
    sets sorted lists, mapping keys strings, a container met again inside
    itself ``"<cycle>"``, and anything else its ``repr``.
    """
    t = type(value)
    if t is str:
        return _clean_str(value)
    if t is bool or value is None:
        return value
    if t is int:
        # Beyond 53 bits jq and schema readers (doubles) would round: keep the digits.
        return value if _INT_MIN <= value <= _INT_MAX else str(value)
    if t is float:
        return _number_or_none(value)
    if _depth >= _MAX_DEPTH:
        return "<max depth>"
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, _path, _depth + 1)
    if isinstance(value, str):  # subclasses: their own __str__ may do anything
        return _clean_str(str.__str__(value))
    if isinstance(value, int):
        return to_jsonable(int.__int__(value))
    if isinstance(value, float):
        return _number_or_none(float(value))
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return _iso(value)
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _readable_bytes(value)
    ident = id(value)
    if ident in _path:
        return "<cycle>"
    inner = _path | {ident}
    if isinstance(value, Mapping):
        try:
            items = list(value.items())
        except Exception:
            return _clean_str(_safe_repr(value))
        return {_key(k): to_jsonable(v, inner, _depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, inner, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [to_jsonable(v, inner, _depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    converted = _numpy_to_python(value)
    if converted is not _NOT_NUMPY:
        return to_jsonable(converted, inner, _depth + 1)
    if isinstance(value, BaseException):
        return _clean_str(f"{type(value).__name__}: {safe_str(value)}")
    if isinstance(value, os.PathLike):
        return _clean_str(os.fspath(value))
    return _clean_str(_safe_repr(value))


def safe_str(obj: object) -> str:
    """``str(obj)``, or its ``repr`` (or a placeholder) when ``__str__`` raises."""
    try:
        return str(obj)
    except Exception:
        return _safe_repr(obj)


_NOT_NUMPY: Final = object()


def _numpy_to_python(value: object) -> object:
    # numpy is optional: recognise its types by module instead of importing it.
    module = type(value).__module__
    if module != "numpy" and not module.startswith("numpy."):
        return _NOT_NUMPY
    tolist = getattr(value, "tolist", None)  # ndarray and numpy scalars both have it
    if tolist is None:
        return _NOT_NUMPY
    try:
        return tolist()
    except Exception:
        return _NOT_NUMPY


def escape_line_separators(data: bytes) -> bytes:
    """Escape U+2028 and U+2029 in encoded JSON (see :func:`dumps`)."""
    # U+2028/U+2029 are valid inside JSON strings, but some line-oriented tools
    # split on them; escaped, every record stays on one line for everyone.
    if b"\xe2\x80" in data:
        data = data.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
    return data


_dumps_fast: Callable[[Any], bytes]
if importlib.util.find_spec("orjson") is not None:
    import orjson

    # OPT_STRICT_INTEGER: orjson refuses ints beyond 53 bits, and the fallback
    # (to_jsonable) writes them as strings.
    _ORJSON_OPTIONS: Final = (
        orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z | orjson.OPT_STRICT_INTEGER
    )
    # OPT_NON_STR_KEYS makes orjson check every key's type: 0.18 us more per
    # journal line here (0.47 against 0.29 us). Most dicts have only str keys,
    # so it is used only when orjson refuses one that does not.
    _ORJSON_NON_STR_KEYS: Final = _ORJSON_OPTIONS | orjson.OPT_NON_STR_KEYS

    def _dumps_fast(obj: Any) -> bytes:
        # orjson already writes NaN/Infinity as null and numpy natively.
        try:
            return orjson.dumps(obj, to_jsonable, _ORJSON_OPTIONS)
        except TypeError:
            return orjson.dumps(obj, to_jsonable, _ORJSON_NON_STR_KEYS)

    JSON_BACKEND: str = "orjson"
else:  # pragma: no cover - run in a subprocess by test_schema.py (orjson blocked)
    # An integer token of 16 digits or more (not a float's digits): it may be
    # beyond a double's, and the json module writes any int as digits, with no hook.
    _LONG_INT: Final = re.compile(rb"(?<![\d.])-?\d{16,}(?![\d.eE])")
    # The regex scans slowly (15 us a line); a translate and a substring test
    # (C loops, 0.5 us) rule out most lines first: no 16 digits in a row.
    _DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
    _SIXTEEN_DIGITS: Final = b"0" * 16

    def _dumps_fast(obj: Any) -> bytes:
        data = json.dumps(
            obj, default=to_jsonable, allow_nan=False, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
        if _SIXTEEN_DIGITS not in data.translate(_DIGITS_AS_ZERO) or _LONG_INT.search(data) is None:
            return data
        # Rare (or digits inside a string): convert first, so that ints beyond
        # 53 bits become strings, as with orjson.
        return json.dumps(
            to_jsonable(obj), allow_nan=False, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")

    JSON_BACKEND = "json"


_REFUSED: Final = (TypeError, ValueError, RecursionError, UnicodeError, OverflowError)


def _dumps_any(obj: Any) -> bytes:
    try:
        return _dumps_fast(obj)
    except _REFUSED:
        return _dumps_fast(to_jsonable(obj))


if JSON_BACKEND == "orjson":

    def dumps_unescaped(obj: Any) -> bytes:
        """:func:`dumps` without escaping U+2028/U+2029, for writers that escape a whole batch."""
        # The common case in one call (a line per record: no layer of ours in between).
        try:
            return orjson.dumps(obj, to_jsonable, _ORJSON_OPTIONS)
        except _REFUSED:
            return _dumps_any(obj)

else:  # pragma: no cover - run in a subprocess by test_schema.py (orjson blocked)
    dumps_unescaped = _dumps_any


def dumps(obj: Any) -> bytes:
    """Compact strict JSON of ``obj`` as UTF-8 bytes; never raises.

    The fast path hands ``obj`` to orjson (or the stdlib ``json``) as it is;
    values the encoder refuses (NaN for ``json``, lone surrogates, cycles,
    non-string keys of odd types) send the whole value through
    :func:`to_jsonable` first.
    """
    return escape_line_separators(dumps_unescaped(obj))
