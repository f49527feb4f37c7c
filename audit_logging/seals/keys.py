"""Making and loading the keys that sign seals.

- An Ed25519 key pair: ``audit-signing-key.pem`` (PKCS #8, mode 0o600) and
  ``audit-signing-key.pub`` (SubjectPublicKeyInfo PEM). ``AUDIT_LOG_SIGNING_KEY``
  names the private file for a writer; ``verify --public-key`` takes the public
  file or a C2SP verifier key string (``name+id+base64``).
- A forward-secure key: ``audit-fss.state`` (mode 0o600) on the writing host;
  its verification key (``FSS-VERIFY+...``) is returned to be printed once and
  kept off the host (see :mod:`audit_logging.seals.forward`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from audit_logging.seals import _ed25519
from audit_logging.seals.forward import DEFAULT_INTERVAL, ForwardKey, VerificationKey
from audit_logging.seals.note import NoteError, Signer, Verifier

__all__ = [
    "DEFAULT_KEY_NAME",
    "KeyFiles",
    "forward_key_from_env",
    "keygen",
    "load_signer",
    "load_verification_key",
    "load_verifiers",
    "signer_from_env",
]

#: The key name on signature lines made with a PEM key (a C2SP key name has no spaces or '+').
DEFAULT_KEY_NAME = "audit-logging"
PRIVATE_FILE = "audit-signing-key.pem"
PUBLIC_FILE = "audit-signing-key.pub"
FSS_FILE = "audit-fss.state"
ENV_SIGNING_KEY = "AUDIT_LOG_SIGNING_KEY"
ENV_FSS_KEY = "AUDIT_LOG_FSS_KEY"


@dataclass(frozen=True)
class KeyFiles:
    """What :func:`keygen` wrote, and the key a verifier needs."""

    #: The secret: the private PEM, or the forward-secure state file (mode 0o600).
    private: Path
    #: The public PEM (``None`` for a forward-secure key, whose verification key is secret).
    public: Path | None
    #: The C2SP verifier key string, or the forward-secure ``FSS-VERIFY+...`` key (print it once).
    verifier_key: str
    forward_secure: bool

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.private, self.public) if p is not None]


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def keygen(
    directory: str | os.PathLike[str] = ".",
    forward_secure: bool = False,
    *,
    name: str | None = None,
    interval: int = DEFAULT_INTERVAL,
    start: int | None = None,
) -> KeyFiles:
    """Write a new signing key in ``directory``; never overwrites a key that is there.

    ``forward_secure=False``: an Ed25519 pair (private PEM 0o600, public PEM).
    ``forward_secure=True``: the forward-secure state file (0o600); its
    verification key is in the result only. Raises :class:`FileExistsError`
    if the file is already there.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if forward_secure:
        key, verification = ForwardKey.create(
            folder / FSS_FILE,
            name=name or f"{DEFAULT_KEY_NAME}/fss",
            interval=interval,
            start=start,
        )
        return KeyFiles(key.path, None, verification.key_string(), True)
    s = _ed25519.serialization()
    private = _ed25519.ed25519().Ed25519PrivateKey.generate()
    signer = Signer(name or DEFAULT_KEY_NAME, private)
    pem = private.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    pub = private.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)
    private_path, public_path = folder / PRIVATE_FILE, folder / PUBLIC_FILE
    if public_path.exists():
        raise FileExistsError(f"{public_path} exists: keygen never replaces a key")
    _write_new(private_path, pem, 0o600)
    _write_new(public_path, pub, 0o644)
    return KeyFiles(private_path, public_path, signer.verifier().key_string(), False)


def _text_of(source: str | os.PathLike[str]) -> str:
    """The key text: ``source`` itself when it is a key string, else the file it names."""
    if (
        isinstance(source, str)
        and ("+" in source and "\n" not in source.strip())
        and not Path(source).is_file()
    ):
        return source.strip()
    return Path(source).read_text("utf-8").strip()


def load_signer(source: str | os.PathLike[str], name: str = DEFAULT_KEY_NAME) -> Signer:
    """A signer from a PEM private key file, or a ``PRIVATE+KEY+...`` string or file."""
    text = _text_of(source)
    if text.startswith("PRIVATE+KEY+"):
        return Signer.from_key_string(text)
    s = _ed25519.serialization()
    key = s.load_pem_private_key(text.encode("ascii"), password=None)
    if not isinstance(key, _ed25519.ed25519().Ed25519PrivateKey):
        raise NoteError(f"{source}: not an Ed25519 private key")
    return Signer(name, key)


def load_verifiers(source: str | os.PathLike[str] | Iterable[str]) -> list[Verifier]:
    """Verifiers from a PEM public key file, or C2SP verifier key strings (string, file, list)."""
    if not isinstance(source, str | os.PathLike):
        return [v for item in source for v in load_verifiers(item)]
    text = _text_of(source)
    if text.startswith("-----BEGIN"):
        s = _ed25519.serialization()
        key = s.load_pem_public_key(text.encode("ascii"))
        if not isinstance(key, _ed25519.ed25519().Ed25519PublicKey):
            raise NoteError(f"{source}: not an Ed25519 public key")
        return [Verifier.from_public_key(key)]
    return [Verifier.from_key_string(line.strip()) for line in text.splitlines() if line.strip()]


def load_verification_key(source: str | os.PathLike[str]) -> VerificationKey:
    """A forward-secure verification key from its ``FSS-VERIFY+...`` string or a file holding it."""
    return VerificationKey.parse(_text_of(source))


def signer_from_env(value: str | None = None) -> Signer | None:
    """The signer ``AUDIT_LOG_SIGNING_KEY`` names (a PEM file), or ``None`` when unset."""
    value = value if value is not None else os.environ.get(ENV_SIGNING_KEY)
    return load_signer(value) if value else None


def forward_key_from_env(value: str | None = None) -> ForwardKey | None:
    """The forward-secure state file ``AUDIT_LOG_FSS_KEY`` names, or ``None`` when unset."""
    value = value if value is not None else os.environ.get(ENV_FSS_KEY)
    return ForwardKey(value) if value else None
