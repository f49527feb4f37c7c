"""Seals of audit files: RFC 6962 Merkle trees, C2SP checkpoints and signed notes, proofs.

- :mod:`.merkle`: the tree of a file's lines, inclusion and consistency proofs;
- :mod:`.tiles`: the tree kept beside a journal as it grows, proofs from it;
- :mod:`.note`, :mod:`.checkpoint`: C2SP signed notes and tlog checkpoints (Ed25519);
- :mod:`.forward`: forward-secure sealing keys (one key per epoch, the old one erased);
- :mod:`.keys`: ``keygen`` and loading keys;
- :mod:`.proofs`: the proof bundle of one line, checked without the log;
- :mod:`.verify`: checking a journal's seals.

Signing and checking signatures need ``cryptography`` (the ``sign`` extra),
imported only when used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["verify_seals"]


def __getattr__(name: str) -> Any:
    """``verify_seals``: the read package's ``verify`` plug-in (:func:`.verify.check_catalogue`).

    Resolved on first use (PEP 562), so importing a submodule of the package
    never imports the others.
    """
    if name == "verify_seals":
        from audit_logging.seals.verify import check_catalogue

        return check_catalogue
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
