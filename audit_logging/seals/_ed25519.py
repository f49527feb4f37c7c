"""Ed25519 from ``cryptography``, imported when first needed.

``cryptography`` is the optional extra ``sign``; a missing one raises the
project's :class:`~audit_logging._optional.MissingExtraError` (an
:class:`ImportError`) naming the extra, so the rest of the library, and the
Merkle tree, work without it.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from audit_logging._optional import MissingExtraError, require_module

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["MissingSignExtra", "private_from_seed", "public_from_bytes"]

#: The error a missing ``sign`` extra raises (the project's one for every extra).
MissingSignExtra = MissingExtraError


def ed25519() -> ModuleType:
    """The ``cryptography`` Ed25519 module, or :class:`MissingExtraError` naming ``sign``."""
    return require_module(
        "cryptography.hazmat.primitives.asymmetric.ed25519",
        extra="sign",
        package="cryptography",
        feature="Ed25519 signatures of seals",
    )


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
