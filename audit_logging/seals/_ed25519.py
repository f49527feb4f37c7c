"""Ed25519 from ``cryptography``, imported when first needed.

``cryptography`` is the optional extra ``sign``; a missing one raises
:class:`MissingSignExtra` (an :class:`ImportError`) naming the extra, so the
rest of the library, and the Merkle tree, work without it.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["INSTALL_HINT", "MissingSignExtra", "private_from_seed", "public_from_bytes"]

INSTALL_HINT: Final = 'pip install "audit-logging[sign]"'


class MissingSignExtra(ImportError):
    """Signing or checking a signature needs ``cryptography``: the ``sign`` extra."""


def ed25519() -> ModuleType:
    """The ``cryptography`` Ed25519 module, or :class:`MissingSignExtra`."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519 as module
    except ImportError as exc:
        raise MissingSignExtra(
            f"Ed25519 signatures need the cryptography package: {INSTALL_HINT}"
        ) from exc
    return module


def serialization() -> ModuleType:
    ed25519()  # the same typed error when cryptography is missing
    from cryptography.hazmat.primitives import serialization as module

    return module


def exceptions() -> Any:
    ed25519()
    from cryptography import exceptions as module

    return module


def private_from_seed(seed: bytes) -> Ed25519PrivateKey:
    key: Ed25519PrivateKey = ed25519().Ed25519PrivateKey.from_private_bytes(seed)
    return key


def public_from_bytes(raw: bytes) -> Ed25519PublicKey:
    key: Ed25519PublicKey = ed25519().Ed25519PublicKey.from_public_bytes(raw)
    return key


def public_bytes(key: Ed25519PublicKey) -> bytes:
    s = serialization()
    raw: bytes = key.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    return raw


def seed_bytes(key: Ed25519PrivateKey) -> bytes:
    s = serialization()
    raw: bytes = key.private_bytes(s.Encoding.Raw, s.PrivateFormat.Raw, s.NoEncryption())
    return raw
