"""The seal commands: ``keygen``, ``prove``, ``check-proof``.

``audit_logging/cli.py`` adds them with :func:`add_commands` (one line); each
also runs alone as ``python -m audit_logging.seals.cli COMMAND ...``.

Examples::

    audit-logging keygen                      # audit-signing-key.pem (0o600) and .pub here
    audit-logging keygen keys/ --forward-secure --interval 900
    audit-logging prove runs/ --seq 1234 -o proof.json
    audit-logging check-proof proof.json --public-key audit-signing-key.pub
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_commands", "main"]


def _journal_in(place: Path, file: str | None) -> Path:
    """The journal a proof is about: ``--file``, or the one sealed journal under ``place``."""
    if file is not None:
        path = Path(file) if Path(file).is_absolute() or Path(file).exists() else place / file
        if not path.is_file():
            raise SystemExit(f"error: {path}: no such journal")
        return path
    if place.is_file():
        return place
    if not place.is_dir():
        raise SystemExit(f"error: {place}: no such file or folder")
    sealed = sorted(p for p in place.rglob("*.jsonl") if Path(f"{p}.seals").is_dir())
    if len(sealed) == 1:
        return sealed[0]
    if not sealed:
        raise SystemExit(f"error: no sealed journal under {place}")
    names = ", ".join(str(p.relative_to(place)) for p in sealed)
    raise SystemExit(
        f"error: several sealed journals under {place} ({names}): name one with --file"
    )


def _keygen(args: argparse.Namespace) -> int:
    from audit_logging.seals.keys import keygen

    try:
        files = keygen(
            args.directory,
            forward_secure=args.forward_secure,
            name=args.name,
            interval=args.interval,
        )
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in files.paths:
        print(path)
    if files.forward_secure:
        print(
            "\nVerification key (shown once; keep it OFF this host: it can forge every seal):\n"
            f"{files.verifier_key}",
        )
    else:
        print(f"\nVerifier key (public): {files.verifier_key}")
    return 0


def _prove(args: argparse.Namespace) -> int:
    from audit_logging.seals.proofs import ProofError, index_of_seq, prove

    journal = _journal_in(Path(args.place), args.file)
    try:
        index = index_of_seq(journal, args.seq)
        checkpoint = Path(args.checkpoint).read_bytes() if args.checkpoint else None
        bundle = prove(journal, index, checkpoint)
    except ProofError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(bundle, indent=1, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, "utf-8")
        print(args.output)
    else:
        sys.stdout.write(text)
    return 0


def _check_proof(args: argparse.Namespace) -> int:
    from audit_logging.seals.keys import load_verification_key, load_verifiers
    from audit_logging.seals.note import NoteError
    from audit_logging.seals.proofs import ProofError, check_proof

    if not args.public_key and not args.verification_key:
        print("error: give --public-key and/or --verification-key", file=sys.stderr)
        return 2
    try:
        verifiers = load_verifiers(args.public_key) if args.public_key else None
        vk = load_verification_key(args.verification_key) if args.verification_key else None
        proved = check_proof(Path(args.bundle).read_text("utf-8"), verifiers, verification_key=vk)
    except (ProofError, NoteError, OSError, ValueError) as exc:
        print(f"NOT PROVEN: {exc}", file=sys.stderr)
        return 1
    cp = proved.checkpoint
    epoch = f", epoch {cp.epoch}" if cp.epoch is not None else ""
    print(
        f"proven: line {proved.index + 1} of {cp.origin} ({cp.size} lines{epoch}), "
        f"signed by {', '.join(proved.signed_by)}"
    )
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``keygen``, ``prove`` and ``check-proof`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "keygen",
        help="make a key to sign seals",
        description="Write an Ed25519 key pair (private key mode 0o600), or with "
        "--forward-secure a forward-secure state file and print its verification key once.",
        epilog="example: audit-logging keygen keys/ --forward-secure",
    )
    p.add_argument("directory", nargs="?", default=".", help="where to write (default: here)")
    p.add_argument("--forward-secure", action="store_true", help="a forward-secure key")
    p.add_argument("--name", default=None, help="the key name on signature lines")
    p.add_argument("--interval", type=int, default=900, help="seconds per epoch (forward-secure)")
    p.set_defaults(func=_keygen)

    p = subparsers.add_parser(
        "prove",
        help="write the proof of one journal line",
        description="Write a proof bundle (JSON): the line with that seq, its RFC 6962 "
        "inclusion proof and the signed checkpoint it is proved against.",
        epilog="example: audit-logging prove runs/ --seq 1234 -o proof.json",
    )
    p.add_argument("place", help="a sealed journal, or a folder holding one")
    p.add_argument("--seq", type=int, required=True, help="the line's seq")
    p.add_argument("--file", default=None, help="which journal, when the folder has several")
    p.add_argument("--checkpoint", default=None, help="a seal to prove against (default: latest)")
    p.add_argument("-o", "--output", default=None, help="write the bundle here (default: stdout)")
    p.set_defaults(func=_prove)

    p = subparsers.add_parser(
        "check-proof",
        help="check a proof bundle without the log",
        description="Check a bundle's checkpoint signature and the line's inclusion proof.",
        epilog="example: audit-logging check-proof proof.json --public-key audit-signing-key.pub",
    )
    p.add_argument("bundle", help="the proof bundle (JSON)")
    p.add_argument("--public-key", default=None, help="PEM public key or verifier key string")
    p.add_argument(
        "--verification-key", default=None, help="forward-secure verification key or its file"
    )
    p.set_defaults(func=_check_proof)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audit-logging", description=__doc__)
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
