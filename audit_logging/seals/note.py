"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 signatures.

A note is a text ending in a newline, a blank line, and one or more
signature lines ``— <key name> base64(key ID || signature)``. The key ID of
an Ed25519 key is the first four bytes of
``SHA-256(key name || 0x0A || 0x01 || 32-byte public key)``. Keys are written
as Go's ``golang.org/x/mod/sumdb/note`` writes them, so that tool (and any
other implementation of the format) can check our notes:

- verifier key: ``<name>+<key ID, 8 hex>+base64(0x01 || public key)``
- signer key:   ``PRIVATE+KEY+<name>+<key ID>+base64(0x01 || 32-byte seed)``

Opening a note follows the specification and Go's reader: signatures from
keys the reader does not know (name and ID both matching) are ignored and
listed as unverified; a signature from a known key that does not verify
rejects the whole note; a note with no verified signature is rejected.

Why written here: there is no maintained Python implementation of the format
on PyPI; ``cryptography`` does the Ed25519 part.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from audit_logging.seals import _ed25519

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "ALG_ED25519",
    "InvalidSignatureError",
    "NoteError",
    "OpenedNote",
    "Signature",
    "Signer",
    "UnverifiedNoteError",
    "Verifier",
    "key_id",
    "open_note",
    "parse_note",
    "sign_note",
]

ALG_ED25519 = 0x01
#: Go's reader refuses a note with more signatures than this; the spec asks for at least 16.
MAX_SIGNATURES = 100
_DASH = "\u2014 "
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(ValueError):
    """A malformed note or key string, or a note that cannot be trusted."""


class UnverifiedNoteError(NoteError):
    """No signature of the note is from a known key; :attr:`note` is what was read."""

    def __init__(self, note: OpenedNote) -> None:
        super().__init__("note has no verifiable signatures")
        self.note = note


class InvalidSignatureError(NoteError):
    """A signature from a known key does not verify: the note is rejected."""


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, public_key: bytes) -> int:
    """The C2SP key ID of ``name`` and ``public_key`` (algorithm byte included)."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise NoteError("malformed base64") from exc


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID, and the signature bytes (without the ID)."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        raw = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_DASH}{self.name} {base64.b64encode(raw).decode('ascii')}\n"


@dataclass(frozen=True)
class OpenedNote:
    """A parsed note: its text, the signatures verified and those from unknown keys."""

    text: str
    verified: tuple[Signature, ...] = ()
    unverified: tuple[Signature, ...] = ()

    @property
    def signatures(self) -> tuple[Signature, ...]:
        return self.verified + self.unverified


class Signer:
    """An Ed25519 key that signs notes under a key name."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not _valid_name(name):
            raise NoteError(f"invalid key name {name!r}: no spaces or '+'")
        self.name = name
        self._key = private_key
        self.public_key = bytes([ALG_ED25519]) + _ed25519.public_bytes(private_key.public_key())
        self.key_id = key_id(name, self.public_key)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        if len(seed) != 32:
            raise NoteError("an Ed25519 seed is 32 bytes")
        return cls(name, _ed25519.private_from_seed(seed))

    @classmethod
    def from_key_string(cls, skey: str) -> Signer:
        """A signer from ``PRIVATE+KEY+<name>+<id>+<base64>``, checked as Go's ``NewSigner``."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("malformed signer key")
        _, _, name, hash16, key64 = parts
        if not _HEX8.fullmatch(hash16) or not _valid_name(name):
            raise NoteError("malformed signer key")
        key = _b64decode(key64)
        if len(key) != 33 or key[0] != ALG_ED25519:
            raise NoteError("malformed signer key: not an Ed25519 seed")
        signer = cls.from_seed(name, key[1:])
        if signer.key_id != int(hash16, 16):
            raise NoteError("signer key ID does not match the key")
        return signer

    def key_string(self) -> str:
        """``PRIVATE+KEY+...``: the secret key in Go's format (keep it as secret as the PEM)."""
        seed = bytes([ALG_ED25519]) + _ed25519.seed_bytes(self._key)
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{base64.b64encode(seed).decode()}"

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class Verifier:
    """An Ed25519 public key that checks signatures of one key name.

    With ``name=None`` it stands for the key under any name: a signature line
    matches when its key ID is the one the line's name and this key give (how a
    bare public key, a PEM file, is used).
    """

    def __init__(self, name: str | None, public_key: bytes) -> None:
        if len(public_key) != 33 or public_key[0] != ALG_ED25519:
            raise NoteError("an Ed25519 verifier key is 0x01 and 32 bytes")
        if name is not None and not _valid_name(name):
            raise NoteError(f"invalid key name {name!r}")
        self.name = name
        self.public_key = public_key
        self.key_id = key_id(name, public_key) if name is not None else None
        self._key: Ed25519PublicKey | None = None

    @classmethod
    def from_key_string(cls, vkey: str) -> Verifier:
        """A verifier from ``<name>+<id>+<base64>``, checked as Go's ``NewVerifier`` does."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise NoteError("malformed verifier key")
        name, hash16, key64 = parts
        if not _HEX8.fullmatch(hash16) or not _valid_name(name):
            raise NoteError("malformed verifier key")
        key = _b64decode(key64)
        if not key:
            raise NoteError("malformed verifier key")
        if key_id(name, key) != int(hash16, 16):
            raise NoteError("verifier key ID does not match the key")
        if len(key) != 33 or key[0] != ALG_ED25519:
            raise NoteError("unknown verifier algorithm")
        return cls(name, key)

    @classmethod
    def from_public_key(cls, public_key: Ed25519PublicKey, name: str | None = None) -> Verifier:
        return cls(name, bytes([ALG_ED25519]) + _ed25519.public_bytes(public_key))

    def key_string(self, name: str | None = None) -> str:
        name = name or self.name
        if name is None:
            raise NoteError("a verifier key string needs a key name")
        encoded = base64.b64encode(self.public_key).decode("ascii")
        return f"{name}+{key_id(name, self.public_key):08x}+{encoded}"

    def matches(self, name: str, kid: int) -> bool:
        if self.name is not None:
            return name == self.name and kid == self.key_id
        return key_id(name, self.public_key) == kid

    def verify(self, message: bytes, signature: bytes) -> bool:
        if self._key is None:
            self._key = _ed25519.public_from_bytes(self.public_key[1:])
        try:
            self._key.verify(signature, message)
        except _ed25519.exceptions().InvalidSignature:
            return False
        return True


def parse_note(data: bytes | str) -> tuple[str, list[tuple[str, int, bytes, str]]]:
    """``(text, [(name, key ID, signature, line), ...])`` of a note, or :class:`NoteError`."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("malformed note: not UTF-8") from exc
    if _CONTROL.search(data):
        raise NoteError("malformed note: control character")
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = data[: split + 1], data[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("malformed note: no signature, or no newline after the last")
    sigs: list[tuple[str, int, bytes, str]] = []
    for line in block[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise NoteError("malformed note: a line that is not a signature")
        name, _, b64 = line[len(_DASH) :].partition(" ")
        if not _valid_name(name) or not b64:
            raise NoteError("malformed note: bad signature line")
        raw = _b64decode(b64)
        if len(raw) < 5:
            raise NoteError("malformed note: signature too short")
        if len(sigs) >= MAX_SIGNATURES:
            raise NoteError("malformed note: too many signatures")
        sigs.append((name, int.from_bytes(raw[:4], "big"), raw[4:], line))
    return text, sigs


def _find(verifiers: Sequence[Verifier], name: str, kid: int) -> Verifier | None:
    found = [v for v in verifiers if v.matches(name, kid)]
    if len({v.public_key for v in found}) > 1 or (len(found) > 1 and found[0].name is not None):
        raise NoteError(f"ambiguous key {name}+{kid:08x}")
    return found[0] if found else None


def open_note(data: bytes | str, verifiers: Iterable[Verifier]) -> OpenedNote:
    """Parse a note and check its signatures against ``verifiers``.

    Returns the note with the verified signatures and those of unknown keys
    (ignored, as the specification requires). Raises :class:`NoteError` for
    a malformed note, :class:`InvalidSignatureError` when a known key's
    signature fails, :class:`UnverifiedNoteError` when no known key signed.
    """
    known = list(verifiers)
    text, sigs = parse_note(data)
    message = text.encode("utf-8")
    verified: list[Signature] = []
    unverified: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    seen_lines: set[str] = set()
    for name, kid, sig, line in sigs:
        verifier = _find(known, name, kid)
        if verifier is None:
            if line not in seen_lines:  # repeated identical lines count once
                seen_lines.add(line)
                unverified.append(Signature(name, kid, sig))
            continue
        if (name, kid) in seen:
            continue
        seen.add((name, kid))
        if not verifier.verify(message, sig):
            raise InvalidSignatureError(f"invalid signature for key {name}+{kid:08x}")
        verified.append(Signature(name, kid, sig))
    opened = OpenedNote(text, tuple(verified), tuple(unverified))
    if not verified:
        raise UnverifiedNoteError(opened)
    return opened


def sign_note(text: str, signers: Iterable[Signer], keep: Iterable[Signature] = ()) -> bytes:
    """The note ``text`` signed by each signer, after the signatures in ``keep``.

    A kept signature by the same name and key ID as a signer is replaced (as
    Go's ``note.Sign`` does), so re-signing a note does not duplicate a line.
    """
    if not text.endswith("\n") or _CONTROL.search(text):
        raise NoteError(
            "malformed note: the text must end with a newline, without control characters"
        )
    message = text.encode("utf-8")
    new = [Signature(s.name, s.key_id, s.sign(message)) for s in signers]
    replaced = {(s.name, s.key_id) for s in new}
    lines = [s.line() for s in keep if (s.name, s.key_id) not in replaced]
    lines += [s.line() for s in new]
    if not lines:
        raise NoteError("a note needs at least one signature")
    return (text + "\n" + "".join(lines)).encode("utf-8")
