"""check_wandb(): are there Weights & Biases credentials? Logs ``credentials_missing`` if not.

Looked for where the ``wandb`` client looks, without importing it and without
any network call:

1. the ``WANDB_API_KEY`` environment variable (non-empty);
2. a netrc entry for the W&B API host: the host of ``WANDB_BASE_URL``
   (default ``https://api.wandb.ai``), in the file named by ``NETRC`` or else
   ``~/.netrc`` (``~/_netrc`` on Windows), read with the stdlib :mod:`netrc`.

Found means *configured*, not *valid*: checking a key needs the W&B API. The
key itself is never logged, returned or printed; the result says where a key
was found (``"env"`` or ``"netrc"``) and, for the warning, which places were
searched. A netrc file that cannot be parsed is named in ``reason`` (with the
parser's line number, never its text, which may hold the key).

The warning goes to ``logger``, by default ``logging.getLogger("audit_logging.probes")``.
Never raises.
"""

from __future__ import annotations

import logging
import netrc
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlparse

__all__ = ["WandbStatus", "check_wandb"]

_LOGGER_NAME: Final = "audit_logging.probes"
_DEFAULT_BASE_URL: Final = "https://api.wandb.ai"
RECOMMENDATION: Final = (
    "Run `wandb login` (writes a netrc entry) or set WANDB_API_KEY in the job's environment"
)


@dataclass(frozen=True)
class WandbStatus:
    """What :func:`check_wandb` found; never the key itself."""

    ok: bool
    source: str | None  # "env" or "netrc"
    host: str
    netrc_path: str | None
    warning_type: str | None = None
    reason: str | None = None


def _netrc_path() -> Path:
    given = os.environ.get("NETRC")
    if given:
        return Path(given).expanduser()
    name = "_netrc" if sys.platform == "win32" else ".netrc"
    return Path.home() / name


def _host() -> str:
    base = os.environ.get("WANDB_BASE_URL") or _DEFAULT_BASE_URL
    parsed = urlparse(base if "://" in base else f"https://{base}")
    return parsed.hostname or base


def check_wandb(logger: logging.Logger | None = None) -> WandbStatus:
    """Look for W&B credentials (``WANDB_API_KEY``, netrc); log ``credentials_missing`` if none."""
    host = _host()
    if os.environ.get("WANDB_API_KEY", "").strip():
        return WandbStatus(True, "env", host, None)
    path = _netrc_path()
    reason: str
    try:
        entry = netrc.netrc(os.fspath(path)).authenticators(host) if path.is_file() else None
    except netrc.NetrcParseError as exc:
        entry = None
        reason = f"{path} could not be parsed (line {exc.lineno})"  # exc.msg may quote the file
    except OSError as exc:
        entry = None
        reason = f"{path} could not be read ({type(exc).__name__})"
    else:
        reason = f"no netrc entry for {host} in {path}" if path.is_file() else f"{path} not found"
    if entry is not None and entry[2]:  # (login, account, password): the key is the password
        return WandbStatus(True, "netrc", host, os.fspath(path))
    if entry is not None:
        reason = f"the netrc entry for {host} in {path} has no password"
    status = WandbStatus(
        False,
        None,
        host,
        os.fspath(path),
        warning_type="credentials_missing",
        reason=f"WANDB_API_KEY is not set and {reason}",
    )
    try:
        (logger or logging.getLogger(_LOGGER_NAME)).critical(
            "Weights & Biases credentials not found",
            extra={
                "warning_type": "credentials_missing",
                "details": {
                    "service": "wandb",
                    "host": host,
                    "searched": ["WANDB_API_KEY", os.fspath(path)],
                    "reason": status.reason,
                },
                "recommendation": RECOMMENDATION,
            },
        )
    except Exception:
        pass  # a broken handler set-up must not stop the run
    return status
