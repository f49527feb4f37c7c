"""Secret redaction: what must never reach an audit file, even when a caller logs it.

:func:`redact` returns a copy of a value in which

* the value under any mapping key that *looks* secret is replaced by
  :data:`REDACTED`. A key looks secret when one of its words, or a run of its
  words, is in the key list: keys are split on ``_``, ``-``, ``.``, spaces and
  camelCase, so ``db_password``, ``clientSecret``, ``X-Api-Key``,
  ``AWS_SECRET_ACCESS_KEY`` and ``private_key_id`` match, while ``tokenizer``
  and ``max_tokens`` (common and harmless in ML configs) do not;
* inside every string: PEM private-key blocks, ``Bearer <token>`` credentials,
  ``password=...``-style pairs (any key of the list followed by ``=`` or
  ``:``) and the password of ``scheme://user:password@host`` URLs;
* a whole GCP service-account key (a mapping with ``"type": "service_account"``,
  or a string holding that JSON) becomes one marker: its ``client_email`` and
  ``private_key_id`` are not secrets by themselves, but nothing of a key file
  belongs in a log committed to git.

Why by key *words* and not by substring: ML code logs ``tokenizer``,
``num_tokens``, ``token_budget`` everywhere; a substring match would erase
half of a training config. The cost is that ``tokens`` (plural) is not
matched; add it to the list where it means credentials.

Values under a secret key are replaced whatever their type (a PIN may be an
int), except ``None`` and booleans, which say whether a secret exists
without revealing it. Only mappings, lists, tuples, sets and strings are
walked: other objects are returned as they are, so convert them first
(``schema.to_jsonable``) when their ``repr`` may hold a secret.

The function never raises and copies only what it changes: a value without
secrets comes back as the very same object, which keeps it cheap on a hot path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "DEFAULT_REDACTOR",
    "DEFAULT_SECRET_KEYS",
    "REDACTED",
    "Redactor",
    "is_secret_key",
    "redact",
    "redact_text",
]

#: The key words whose values are redacted by default.
DEFAULT_SECRET_KEYS: Final[tuple[str, ...]] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "credentials",
    "authorization",
)
#: What a redacted value becomes.
REDACTED: Final = "[REDACTED]"
_SERVICE_ACCOUNT: Final = "[REDACTED service account key]"
_PRIVATE_KEY: Final = "[REDACTED private key]"
_MAX_DEPTH: Final = 100
#: What a container met again inside itself becomes (as in :func:`schema.to_jsonable`).
CYCLE: Final = "<cycle>"
# What a mapping key means for its entry (Redactor's cached verdicts).
_CLEAN_KEY: Final = "clean"
_SECRET_KEY: Final = "secret key"  # its value is masked
_SECRET_IN_KEY: Final = "secret in key"  # the key's own text holds a secret
# Value types that hold no text: under a clean key there is nothing to mask.
_PLAIN_TYPES: Final = frozenset({int, float, bool, type(None)})

_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
# A bearer credential is long and unbroken; 8+ characters keeps "bearer of" prose intact.
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/]{8,}=*")
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^/\s@]+(@)")
_SERVICE_ACCOUNT_TEXT = re.compile(r"""["']type["']\s*:\s*["']service_account["']""")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def _words(key: str) -> str:
    """``"X-Api-Key"`` -> ``"_x_api_key_"``: words joined by ``_``, padded for whole-word search."""
    return "_" + _NON_WORD.sub("_", _CAMEL.sub("_", key).lower()).strip("_") + "_"


@functools.lru_cache(maxsize=32)
def _compiled(keys: tuple[str, ...]) -> tuple[tuple[str, ...], re.Pattern[str]]:
    words = tuple(_words(k) for k in keys if _words(k) != "__")
    alternatives = "|".join(
        re.escape(w.strip("_")).replace("_", r"[_\-. ]?") for w in sorted(words, key=len)[::-1]
    )
    # key=value / key: value / "key": "value" inside free text; the key may end a longer name
    # (access_token=...), but must not be followed by more letters (tokenizer=...).
    pairs = re.compile(
        rf"""(?i)((?:{alternatives})["']?\s*[:=]\s*["']?)([^\s"',;&]+)"""
        if alternatives
        else r"(?!x)x"
    )
    return words, pairs


def _key_is_secret(key: object, words: tuple[str, ...]) -> bool:
    if not isinstance(key, str):
        return False
    return _padded_has_word(key, words)


@functools.lru_cache(maxsize=4096)
def _padded_has_word(key: str, words: tuple[str, ...]) -> bool:
    # Keys repeat (the same metrics on every step): split each one once.
    padded = _words(key)
    return any(w in padded for w in words)


_ALWAYS_TRIGGERS: Final = ("bearer", "private key", "service_account", "://")


@functools.lru_cache(maxsize=32)
def _triggers(keys: tuple[str, ...]) -> tuple[str, ...]:
    """Substrings at least one of which every text that :func:`_redact_str` changes contains."""
    # The longest word of each key is in every spelling the pairs pattern accepts.
    longest = {max(_words(key).strip("_").split("_"), key=len) for key in keys if key.strip()}
    return tuple(sorted(w for w in longest if w)) + _ALWAYS_TRIGGERS


class Redactor:
    """:func:`redact` for hot paths: the same result, with what repeats remembered.

    Training loops log the same metric names and mostly the same strings on
    every step; a key's verdict and a short string's redaction are computed
    once and then looked up (bounded caches), so a record without secrets
    costs a few dictionary lookups rather than several regex passes per
    string.
    """

    _CACHE_LIMIT = 10_000
    _CACHEABLE_LENGTH = 512

    def __init__(self, keys: Iterable[str] | None = None) -> None:
        self.keys = tuple(keys) if keys is not None else DEFAULT_SECRET_KEYS
        self._words, self._pairs = _compiled(self.keys)
        self._triggers = _triggers(self.keys)
        self._texts: dict[str, str] = {}
        self._key_verdicts: dict[Any, str] = {}
        # The str keys whose verdict is clean, as a set for one C-level subset test.
        self._clean_keys: set[str] = set()

    def text(self, value: str) -> str:
        cached = self._texts.get(value)
        if cached is not None:
            return cached
        low = value.lower()
        # Most texts hold no trigger word at all: a few substring tests instead of regex passes.
        if any(trigger in low for trigger in self._triggers):
            result = _redact_str(value, self._pairs)
        else:
            result = value
        if len(value) <= self._CACHEABLE_LENGTH:
            if len(self._texts) >= self._CACHE_LIMIT:
                self._texts.clear()
            self._texts[value] = result
        return result

    def __call__(self, value: Any) -> Any:
        """``value`` with secrets masked; the same object when there is none."""
        t = type(value)
        if t is str:
            cached = self._texts.get(value)
            return cached if cached is not None else self.text(value)
        if t is dict:
            return self._dict(value, None)
        if value is None or t is int or t is float or t is bool:
            return value
        return redact(value, self.keys)

    def scrub(self, fields: dict[str, Any], names: Iterable[str]) -> None:
        """Mask secrets in the values of ``fields`` named ``names``, in place.

        The same as ``fields[name] = self(fields[name])`` for each name, for a
        writer's per-record loop: a string seen before costs one lookup.
        """
        texts_get = self._texts.get
        for name in names:
            value = fields[name]
            t = type(value)
            if t is str:
                new = texts_get(value)
                if new is None:
                    new = self.text(value)
            elif value is None or t is float or t is int or t is bool:
                continue
            elif t is dict:
                new = self._dict(value, None)
            else:
                new = redact(value, self.keys)
            if new is not value:
                fields[name] = new

    def _key_verdict(self, key: object) -> str:
        """What a mapping key means for its entry: a secret key, secret text in it, or neither."""
        if type(key) is not str:
            return _CLEAN_KEY
        if _padded_has_word(key, self._words):
            return _SECRET_KEY
        return _SECRET_IN_KEY if self.text(key) != key else _CLEAN_KEY

    def _dict(self, value: dict[Any, Any], inside: set[int] | None) -> Any:
        # Checks with the caches; the first thing to mask hands the whole dict to
        # redact(), so that what is masked (values, secret keys' values, secret
        # text in keys) is decided in one place. ``inside`` holds the ids of the
        # dicts being checked around this one: a dict met again inside itself is
        # a cycle, checked where it first appeared (as redact() does).
        # Metrics dicts (clean keys seen before, numbers) take two C-level set
        # tests instead of a loop; no number can be "service_account" either.
        if self._clean_keys.issuperset(value) and _PLAIN_TYPES.issuperset(
            map(type, value.values())
        ):
            return value
        verdicts, texts = self._key_verdicts, self._texts
        for k, v in value.items():
            verdict = verdicts.get(k)
            if verdict is None:
                verdict = self._key_verdict(k)
                if len(verdicts) < self._CACHE_LIMIT:
                    verdicts[k] = verdict
                    if verdict is _CLEAN_KEY and type(k) is str:
                        self._clean_keys.add(k)
            tv = type(v)
            if verdict is _SECRET_KEY:
                if v is None or tv is bool:
                    continue
                return redact(value, self.keys)
            if verdict is _SECRET_IN_KEY:
                return redact(value, self.keys)
            if tv is float or tv is int or v is None or tv is bool:
                continue
            if tv is str:
                masked = texts.get(v)
                if masked is None:
                    masked = self.text(v)
                if masked != v:  # != : the cache may hold an equal string, not this one
                    return redact(value, self.keys)
            elif tv is dict:
                if inside is None:
                    inside = {id(value)}
                if id(v) in inside:
                    continue
                inside.add(id(v))
                masked = self._dict(v, inside)
                inside.discard(id(v))
                if masked is not v:
                    return redact(value, self.keys)
            elif self(v) is not v:
                return redact(value, self.keys)
        if value.get("type") == "service_account":
            return _SERVICE_ACCOUNT
        return value


def is_secret_key(key: object, keys: Iterable[str] | None = None) -> bool:
    """Whether a mapping key (``"db_password"``, ``"X-Api-Key"``) looks secret."""
    words, _ = _compiled(tuple(keys) if keys is not None else DEFAULT_SECRET_KEYS)
    return _key_is_secret(key, words)


def redact_text(text: str, keys: Iterable[str] | None = None) -> str:
    """``text`` with private keys, bearer tokens, ``secret=...`` pairs and URL passwords masked."""
    _, pairs = _compiled(tuple(keys) if keys is not None else DEFAULT_SECRET_KEYS)
    return _redact_str(text, pairs)


def _redact_str(text: str, pairs: re.Pattern[str]) -> str:
    if _SERVICE_ACCOUNT_TEXT.search(text):
        return _SERVICE_ACCOUNT
    out = _PEM.sub(_PRIVATE_KEY, text)
    out = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", out)
    out = pairs.sub(lambda m: f"{m.group(1)}{REDACTED}", out)
    out = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", out)
    return text if out == text else out


def redact(value: Any, keys: Iterable[str] | None = None) -> Any:
    """A copy of ``value`` with secrets replaced (see the module docs); never raises.

    ``keys`` replaces :data:`DEFAULT_SECRET_KEYS` (pass
    ``(*DEFAULT_SECRET_KEYS, "session_cookie")`` to extend it).
    """
    words, pairs = _compiled(tuple(keys) if keys is not None else DEFAULT_SECRET_KEYS)
    try:
        return _walk(value, words, pairs, frozenset(), 0)
    except Exception:
        # A container whose iteration raises: refuse to pass it through unchecked.
        return REDACTED


def _walk(
    value: Any, words: tuple[str, ...], pairs: re.Pattern[str], path: frozenset[int], depth: int
) -> Any:
    if isinstance(value, str):
        return _redact_str(value, pairs)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth >= _MAX_DEPTH:
        return "<max depth>"
    ident = id(value)
    if ident in path:
        # A container met again inside itself. Not the original: a serializer
        # would expand it once more, unredacted, before it found the cycle.
        return CYCLE
    inner = path | {ident}
    if isinstance(value, Mapping):
        if value.get("type") == "service_account":
            return _SERVICE_ACCOUNT
        changed = False
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if _key_is_secret(k, words) and v is not None and not isinstance(v, bool):
                new = REDACTED
            else:
                new = _walk(v, words, pairs, inner, depth + 1)
            changed = changed or new is not v
            out[_walk(k, (), pairs, inner, depth + 1) if isinstance(k, str) else k] = new
            changed = changed or (isinstance(k, str) and k not in out)
        return out if changed else value
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_walk(v, words, pairs, inner, depth + 1) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        if isinstance(value, list):
            return items
        if isinstance(value, tuple):
            return tuple(items)
        return items  # a set of redacted strings may collapse: keep them all, as a list
    return value


#: The redactor of the default key list, shared by code without a handler of its own
#: (formatters, ``action_entry`` called directly).
DEFAULT_REDACTOR: Final = Redactor()
