"""The run context: ranks and the job's session id from each launcher's real environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from audit_logging import context, schema

from helpers import REPO


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No launcher variable from the machine running the tests, and no override left behind."""
    for name in context.WATCHED:
        monkeypatch.delenv(name, raising=False)
    context.clear_rank()
    yield
    context.clear_rank()


# What each launcher really exports to rank 1 of a 2-process job (trimmed to what we read).
TORCHRUN = {
    "RANK": "1",
    "LOCAL_RANK": "1",
    "WORLD_SIZE": "2",
    "GROUP_RANK": "0",
    "LOCAL_WORLD_SIZE": "2",
    "MASTER_ADDR": "localhost",
    "MASTER_PORT": "34157",
    "TORCHELASTIC_RESTART_COUNT": "0",
    "TORCHELASTIC_MAX_RESTARTS": "0",
    "TORCHELASTIC_RUN_ID": "f19d0b98-7d15-4e14-83a4-da7116d25255",
}
SLURM = {
    "SLURM_JOB_ID": "4711",
    "SLURM_CLUSTER_NAME": "hpc",
    "SLURM_PROCID": "5",
    "SLURM_LOCALID": "1",
    "SLURM_NTASKS": "8",
    "SLURM_NODEID": "2",
}
OPEN_MPI = {
    "OMPI_COMM_WORLD_RANK": "3",
    "OMPI_COMM_WORLD_LOCAL_RANK": "0",
    "OMPI_COMM_WORLD_SIZE": "4",
}
# Lightning's launcher in the user's process (rank 0), after trainer.fit() started:
LIGHTNING_PARENT = {"LOCAL_RANK": "0", "WORLD_SIZE": "2", "NODE_RANK": "0"}


def test_no_launcher_means_no_rank_and_the_process_session() -> None:
    ctx = context.from_environ({"HOME": "/home/a"})
    assert (ctx.rank, ctx.local_rank, ctx.world_size) == (None, None, None)
    assert ctx.session_id == context.from_environ({}).session_id
    assert len(ctx.session_id) == 16
    assert ctx.rank_fields() == {"rank": None, "local_rank": None, "world_size": None}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (TORCHRUN, (1, 1, 2)),
        (SLURM, (5, 1, 8)),
        (OPEN_MPI, (3, 0, 4)),
        (LIGHTNING_PARENT, (0, 0, 2)),
        ({**LIGHTNING_PARENT, "LOCAL_RANK": "1"}, (1, 1, 2)),  # Lightning's child on node 0
        ({**LIGHTNING_PARENT, "NODE_RANK": "1"}, (None, 0, 2)),  # node 1: global rank unknown
        ({**SLURM, **TORCHRUN}, (1, 1, 2)),  # torchrun inside an srun task
        ({**SLURM, **OPEN_MPI}, (3, 0, 4)),  # mpirun inside an allocation
        ({"RANK": "two", "WORLD_SIZE": "2"}, (None, None, 2)),  # a stray value is no rank
    ],
)
def test_ranks_from_each_launcher(env: dict[str, str], expected: tuple[int, int, int]) -> None:
    ctx = context.from_environ(env)
    assert (ctx.rank, ctx.local_rank, ctx.world_size) == expected


def test_all_ranks_of_a_job_share_a_session_derived_from_the_job_id() -> None:
    rank0 = context.from_environ({**TORCHRUN, "RANK": "0", "LOCAL_RANK": "0"})
    rank1 = context.from_environ(TORCHRUN)
    assert rank0.session_id == rank1.session_id
    assert len(rank1.session_id) == 16 and int(rank1.session_id, 16) >= 0
    other_job = context.from_environ({**TORCHRUN, "TORCHELASTIC_RUN_ID": "another"})
    assert other_job.session_id != rank1.session_id
    # Stable across processes and machines: a digest of the id, not Python's hash().
    assert rank1.session_id == _in_subprocess(TORCHRUN)["session_id"]

    slurm = context.from_environ(SLURM)
    assert slurm.session_id == context.from_environ({**SLURM, "SLURM_PROCID": "0"}).session_id
    assert slurm.session_id != context.from_environ({**SLURM, "SLURM_JOB_ID": "4712"}).session_id
    # The same job number on another cluster is another job.
    assert slurm.session_id != context.from_environ({**SLURM, "SLURM_CLUSTER_NAME": "b"}).session_id


def test_audit_session_id_wins_as_given() -> None:
    env = {**TORCHRUN, **SLURM, "AUDIT_SESSION_ID": "exp-42"}
    assert context.from_environ(env).session_id == "exp-42"


def test_torchrun_without_a_rendezvous_id_shares_the_agents_session() -> None:
    env = {**TORCHRUN, "TORCHELASTIC_RUN_ID": "none"}
    sid = context.from_environ(env).session_id
    assert sid != context.from_environ({}).session_id
    assert sid == context.from_environ({**env, "RANK": "0", "LOCAL_RANK": "0"}).session_id
    # Inside SLURM the job id joins the ranks of every node: it wins over the agent.
    in_slurm = context.from_environ({**env, **SLURM})
    assert in_slurm.session_id == context.from_environ(SLURM).session_id


def test_current_follows_the_environment_as_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    alone = context.current()
    assert (alone.rank, alone.world_size) == (None, None)
    assert context.current() is alone  # cached while nothing changed
    # Lightning's launcher sets these in the user's process after the script started.
    for name, value in LIGHTNING_PARENT.items():
        monkeypatch.setenv(name, value)
    assert context.ranks() == (0, 0, 2)
    assert context.is_global_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert context.ranks() == (1, 1, 2)
    assert not context.is_global_zero()
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    assert context.session_id() == context.from_environ({"SLURM_JOB_ID": "99"}).session_id
    assert schema.session_id() == context.session_id()  # the old public name delegates
    monkeypatch.setenv("AUDIT_SESSION_ID", "mine")
    assert schema.session_id() == "mine"
    for name in (*LIGHTNING_PARENT, "SLURM_JOB_ID", "AUDIT_SESSION_ID"):
        monkeypatch.delenv(name)
    assert context.current() == alone


def test_set_rank_tells_what_the_framework_knows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("NODE_RANK", "1")
    assert context.ranks() == (None, 0, 4)
    assert not context.is_global_zero()  # an unknown rank beyond node 0
    context.set_rank(2)  # trainer.global_rank on node 1; the rest still from the environment
    assert context.ranks() == (2, 0, 4)
    context.set_rank(3, 1, 4)
    assert context.ranks() == (3, 1, 4)
    assert not context.is_global_zero()
    context.clear_rank()
    assert context.ranks() == (None, 0, 4)
    for bad in (-1, 1.0, True, "0"):
        with pytest.raises(ValueError, match="rank must be a non-negative int"):
            context.set_rank(bad)  # type: ignore[arg-type]


def test_export_session_is_inherited_by_processes_started_later() -> None:
    sid = context.export_session()
    try:
        assert os.environ["AUDIT_SESSION_ID"] == sid
        assert _in_subprocess({})["session_id"] == sid
    finally:
        del os.environ["AUDIT_SESSION_ID"]
    # Without it, a started (not forked) process is a session of its own.
    assert _in_subprocess({})["session_id"] != sid


def _in_subprocess(extra_env: dict[str, str]) -> dict[str, object]:
    env = {**os.environ, **extra_env}  # the fixture removed the machine's launcher variables
    env["PYTHONPATH"] = str(REPO)
    code = (
        "import json, dataclasses; from audit_logging import context; "
        "print(json.dumps(dataclasses.asdict(context.current())))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result
