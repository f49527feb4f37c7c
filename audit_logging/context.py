"""The run context of this process: session id, host, and its rank in a distributed job.

Every record carries the context (``session_id``, ``host``, ``rank``,
``local_rank``, ``world_size``). It comes from the launcher's environment:

* torchrun, torch.distributed, Lightning: ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``;
* Open MPI (``mpirun``): ``OMPI_COMM_WORLD_RANK``, ``OMPI_COMM_WORLD_LOCAL_RANK``,
  ``OMPI_COMM_WORLD_SIZE``;
* SLURM (``srun``): ``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``.

The first family present wins, in that order (``torchrun`` inside a SLURM
allocation starts several ranks per SLURM task; ``mpirun`` inside one sees
the allocation's ``SLURM_*``). None of them: all three are ``None``.
Lightning's own DDP launcher sets ``LOCAL_RANK``, ``WORLD_SIZE`` and
``NODE_RANK`` but never ``RANK``: on node 0 the global rank is the local
rank; on other nodes it is unknown (``None``) until a callback tells it with
:func:`set_rank`.

The environment is read when a record needs it, not once at import:
Lightning sets those variables in the parent process after the user's script
started. :func:`current` is on the listener's hot path, so it compares the
raw values with the last ones (under a microsecond) and parses only when
they changed.

The session id is shared by all ranks of one job: ``AUDIT_SESSION_ID`` as
given, else 16 hex digits derived from the job's own id
(``TORCHELASTIC_RUN_ID``, ``SLURM_JOB_ID``), else, for ``torchrun`` started
without a rendezvous id, from the agent process that all local ranks share,
else one id per process (a process made by ``fork`` keeps its parent's id;
:func:`export_session` lets processes started later share it too).

This module imports nothing of ours: :mod:`audit_logging.schema` delegates to it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "HOST",
    "RunContext",
    "clear_rank",
    "current",
    "export_session",
    "from_environ",
    "is_global_zero",
    "ranks",
    "session_id",
    "set_rank",
]

HOST: Final = socket.gethostname()

#: (rank, local_rank, world_size) variables of each launcher, in precedence order.
_FAMILIES: Final = (
    ("RANK", "LOCAL_RANK", "WORLD_SIZE"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS"),
)
_SESSION_VARS: Final = (
    "AUDIT_SESSION_ID",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "SLURM_JOB_ID",
    "SLURM_CLUSTER_NAME",
)
#: Every variable the context depends on: a change of any value is a new context.
WATCHED: Final = (
    *_SESSION_VARS,
    "NODE_RANK",
    *(name for family in _FAMILIES for name in family),
)

_generated_session: Final = uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class RunContext:
    """Where a record comes from: the job's session and this process's place in it."""

    session_id: str
    rank: int | None
    local_rank: int | None
    world_size: int | None
    host: str = HOST

    def rank_fields(self) -> dict[str, int | None]:
        """``{"rank": ..., "local_rank": ..., "world_size": ...}``, as every record carries them."""
        return {"rank": self.rank, "local_rank": self.local_rank, "world_size": self.world_size}


# ---------------------------------------------------------------------- parsing


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:  # a launcher never writes this; a user's stray value is not a rank
        return None
    return number if number >= 0 else None


def _ranks_from(env: Mapping[str, str]) -> tuple[int | None, int | None, int | None]:
    for rank_var, local_var, size_var in _FAMILIES:
        rank, local, size = env.get(rank_var), env.get(local_var), env.get(size_var)
        if rank is None and local is None and size is None:
            continue
        global_rank = _int(rank)
        if rank is None and rank_var == "RANK" and env.get("NODE_RANK", "0").strip() == "0":
            # Lightning's launcher: no RANK, but on node 0 the ranks are 0..n-1 = local ranks.
            global_rank = _int(local)
        return global_rank, _int(local), _int(size)
    return None, None, None


def _derived(source: str, value: str) -> str:
    # Stable across processes and machines (unlike hash()), 16 hex like a generated id.
    return hashlib.sha256(f"{source}:{value}".encode()).hexdigest()[:16]


def _agent_id() -> str:
    """The parent process (torchrun's agent) as ``host:pid:start`` (start: against pid reuse)."""
    ppid = os.getppid()
    start = ""
    try:
        with open(f"/proc/{ppid}/stat", "rb") as fh:
            # Field 22 (starttime) counts after the ")" that ends the command name.
            start = fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):  # not Linux: host and pid still name the agent now
        pass
    return f"{HOST}:{ppid}:{start}"


def _session_from(env: Mapping[str, str]) -> str:
    given = env.get("AUDIT_SESSION_ID")
    if given:
        return given
    run_id = env.get("TORCHELASTIC_RUN_ID")
    if run_id and run_id != "none":  # "none" is torchrun's default without --rdzv-id
        return _derived("torchelastic", run_id)
    job = env.get("SLURM_JOB_ID")
    if job:
        return _derived("slurm", f"{env.get('SLURM_CLUSTER_NAME', '')}:{job}")
    if run_id is not None or env.get("TORCHELASTIC_RESTART_COUNT") is not None:
        # torchrun without a rendezvous id: the local ranks share their agent. Ranks on
        # other machines cannot be joined without talking to them: give --rdzv-id.
        return _derived("torchrun-agent", _agent_id())
    return _generated_session


def from_environ(env: Mapping[str, str]) -> RunContext:
    """The context that the environment ``env`` describes (without :func:`set_rank`'s override)."""
    rank, local, size = _ranks_from(env)
    return RunContext(_session_from(env), rank, local, size)


# ---------------------------------------------------------------------- the live context

_Override = tuple[int | None, int | None, int | None]
_override: _Override | None = None
# (raw values, override, context): replaced whole, so a reader never sees a torn cache.
_cache: tuple[tuple[Any, ...], _Override | None, RunContext] | None = None
_encoded: tuple[tuple[Any, ...], Any] | None = None


def _raw_values() -> tuple[Any, ...]:
    """The watched variables' raw values, cheaply.

    ``os.environ.get`` costs about a microsecond per name (it encodes the key
    and decodes the value); this runs for every record, so it looks the
    encoded names up in ``os.environ``'s own dict (what ``os.environ.get``
    reads too), and falls back to ``get`` if ``os.environ`` was replaced.
    """
    global _encoded
    env: Any = os.environ
    data = getattr(env, "_data", None)
    encode = getattr(env, "encodekey", None)
    if data is None or encode is None:
        return tuple(env.get(name) for name in WATCHED)
    keys = _encoded
    if keys is None or keys[1] is not encode:
        keys = _encoded = (tuple(encode(name) for name in WATCHED), encode)
    get = data.get
    return tuple(map(get, keys[0]))


def current() -> RunContext:
    """This process's context now: cached until a watched variable or the override changes."""
    global _cache
    raw = _raw_values()
    cache, override = _cache, _override
    if cache is not None and cache[0] == raw and cache[1] is override:
        return cache[2]
    found = from_environ(os.environ)
    if override is not None:
        rank, local, size = override
        found = RunContext(
            found.session_id,
            rank if rank is not None else found.rank,
            local if local is not None else found.local_rank,
            size if size is not None else found.world_size,
        )
    _cache = (raw, override, found)
    return found


def session_id() -> str:
    """The session id shared by all ranks of this job (see the module's docstring)."""
    return current().session_id


def ranks() -> tuple[int | None, int | None, int | None]:
    """``(rank, local_rank, world_size)`` of this process; ``None`` where not distributed."""
    ctx = current()
    return ctx.rank, ctx.local_rank, ctx.world_size


def is_global_zero() -> bool:
    """True on global rank 0, and in a process that is not part of a distributed job.

    Run-level events (started, hyperparameters, completed, ...) are written
    where this is true, so that a job of N ranks has one of each. A rank that
    is unknown in a job with a world size (Lightning beyond node 0, before a
    callback calls :func:`set_rank`) is not rank 0: that one is on node 0.
    """
    ctx = current()
    return ctx.rank == 0 or (ctx.rank is None and ctx.world_size is None)


def set_rank(
    rank: int | None, local_rank: int | None = None, world_size: int | None = None
) -> None:
    """Tell the rank a framework knows (``trainer.global_rank``) where the environment does not.

    Each value given replaces the environment's; ``None`` keeps the
    environment's value. Holds for the whole process until :func:`clear_rank`.
    """
    global _override
    for name, value in (("rank", rank), ("local_rank", local_rank), ("world_size", world_size)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ValueError(f"{name} must be a non-negative int or None, got {value!r}")
    _override = (rank, local_rank, world_size)


def clear_rank() -> None:
    """Forget :func:`set_rank`: the environment alone decides again."""
    global _override
    _override = None


def export_session() -> str:
    """Put this process's session id in ``AUDIT_SESSION_ID`` so that processes it starts share it.

    For launchers that start the other ranks from the user's process without
    a job id (Lightning's ``ddp`` strategy): call it before they are started.
    Returns the id. An ``AUDIT_SESSION_ID`` already set is left as it is.
    """
    sid = session_id()
    if os.environ.get("AUDIT_SESSION_ID") != sid:
        os.environ["AUDIT_SESSION_ID"] = sid
    return sid
