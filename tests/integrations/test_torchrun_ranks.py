"""Real ``torchrun --nproc-per-node 2`` jobs: each rank knows its place and the job's one session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

pytest.importorskip("torch")

SCRIPT = """
import json, os, sys
from audit_logging import context
ctx = context.current()
with open(os.path.join(sys.argv[1], f"rank-{os.environ['RANK']}.json"), "w") as fh:
    json.dump({"session_id": ctx.session_id, **ctx.rank_fields()}, fh)
"""


TRAIN = """
import logging, os, sys
import audit_logging
rank = os.environ["RANK"]
log = logging.getLogger("train")
handler = audit_logging.configure(os.path.join(sys.argv[1], "r" + rank), "jsonl,warnings", logger=log)
try:
    with audit_logging.TrainingRun(log, dataset="d.csv", model="m", git=None) as run:
        run.hyperparameters({"lr": 0.1})
        for step in range(3):
            run.progress(step, train_loss=1.0 / (step + 1), val_loss=1.1 / (step + 1))
            if rank == "1" and step == 1:
                raise RuntimeError("boom on rank 1")
        run.evaluated(metrics={"val_loss": 0.4})
except RuntimeError:
    pass
handler.close()
"""


def _torchrun(tmp_path: Path, name: str, code: str = SCRIPT) -> list[dict[str, object]]:
    out = tmp_path / name
    out.mkdir()
    script = tmp_path / f"{name}.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIT_", "SLURM_", "OMPI_"))}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            str(script),
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank-*.json"))]


def test_each_rank_of_a_torchrun_job_knows_its_rank_and_shares_one_session(tmp_path: Path) -> None:
    ranks = _torchrun(tmp_path, "job1")
    assert [(r["rank"], r["local_rank"], r["world_size"]) for r in ranks] == [(0, 0, 2), (1, 1, 2)]
    assert ranks[0]["session_id"] == ranks[1]["session_id"]
    # Another launch of the same script is another job.
    again = _torchrun(tmp_path, "job2")
    assert again[0]["session_id"] == again[1]["session_id"] != ranks[0]["session_id"]


def test_a_torchrun_job_writes_one_run_and_the_failure_where_it_happened(tmp_path: Path) -> None:
    _torchrun(tmp_path, "train", TRAIN)
    lines = {
        # A rank's lines, in time order over its files (one per rank once the job is known).
        rank: sorted([json.loads(line) for p in sorted((tmp_path / "train" / f"r{rank}" / "logs").glob("[!.]*.jsonl"))
               for line in p.read_text().splitlines()], key=lambda line: line["timestamp"])
        for rank in (0, 1)
    }  # fmt: skip
    events = {rank: [line["event"] for line in found] for rank, found in lines.items()}
    # The job's run-level lines once, from rank 0; rank 1's failure from rank 1 alone.
    assert events[0] == [
        "TRAINING_STARTED", "HYPERPARAMETERS_SET", "TRAINING_PROGRESS", "TRAINING_PROGRESS",
        "TRAINING_PROGRESS", "MODEL_EVALUATED", "TRAINING_COMPLETED",
    ]  # fmt: skip
    assert events[1] == ["TRAINING_FAILED"]
    # Every line says where it comes from.
    assert {(line["rank"], line["local_rank"], line["world_size"]) for line in lines[0]} == {
        (0, 0, 2)
    }
    assert (lines[1][0]["rank"], lines[1][0]["world_size"]) == (1, 2)
    assert "RuntimeError: boom on rank 1" in lines[1][0]["exception"]
    assert {line["session_id"] for found in lines.values() for line in found} == {
        lines[0][0]["session_id"]
    }
    warnings = list(
        (tmp_path / "train" / "r1" / "training_logs" / "warnings").glob("*training_failed*")
    )
    assert len(warnings) == 1
