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


def _torchrun(tmp_path: Path, name: str) -> list[dict[str, object]]:
    out = tmp_path / name
    out.mkdir()
    script = tmp_path / "rank_script.py"
    script.write_text(SCRIPT)
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
