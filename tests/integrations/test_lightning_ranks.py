"""A real Lightning ``fit`` with ``strategy="ddp"`` on 2 CPU processes: each rank's context."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

pytest.importorskip("torch")
pytest.importorskip("lightning")

SCRIPT = """
import json, logging, os, sys
import torch
import lightning as L
from torch.utils.data import DataLoader, TensorDataset
import audit_logging
from audit_logging import context
from audit_logging.integrations import AuditCallback

out = sys.argv[1]
before = context.current()  # the user's script, before Lightning starts the other rank
# Lightning's child ranks have LOCAL_RANK from their start; the user's process is rank 0.
log = logging.getLogger("fit")
handler = audit_logging.configure(os.path.join(out, "r" + os.environ.get("LOCAL_RANK", "0")), "jsonl", logger=log)
audit = AuditCallback(logger=log)  # exports the session id: the other rank inherits it


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, index):
        return self.layer(batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Probe(L.Callback):
    def on_train_start(self, trainer, module):
        seen = context.current()
        context.set_rank(trainer.global_rank, trainer.local_rank, trainer.world_size)
        told = context.current()
        with open(os.path.join(out, f"rank-{trainer.global_rank}.json"), "w") as fh:
            json.dump({"before": [before.rank, before.world_size], "seen": [seen.rank, seen.local_rank, seen.world_size],
                       "told": [told.rank, told.local_rank, told.world_size], "session": seen.session_id}, fh)


trainer = L.Trainer(
    strategy="ddp", accelerator="cpu", devices=2, max_epochs=1, logger=False, callbacks=[Probe(), audit],
    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
)
trainer.fit(Tiny(), DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4))
handler.close()
"""


def test_lightning_ddp_ranks_know_their_place_and_share_the_session(tmp_path: Path) -> None:
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AUDIT_", "SLURM_", "OMPI_", "TORCHELASTIC_"))
        and k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")
    }
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, str(script), str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1)]
    # Lightning sets LOCAL_RANK, WORLD_SIZE and NODE_RANK (never RANK) once fit() starts:
    # read then, not at import; the rank is the local rank on node 0.
    assert ranks[0]["before"] == [None, None]
    assert [r["seen"] for r in ranks] == [[0, 0, 2], [1, 1, 2]]
    assert [r["told"] for r in ranks] == [[0, 0, 2], [1, 1, 2]]
    assert ranks[0]["session"] == ranks[1]["session"]
    # AuditCallback on both ranks: the run's lines once, from rank 0, in the job's session.
    lines = {
        # A rank's lines, in time order over its files (one per rank once the job is known).
        rank: sorted([json.loads(line) for p in sorted((out / f"r{rank}" / "logs").glob("[!.]*.jsonl"))
               for line in p.read_text().splitlines()], key=lambda line: line["timestamp"])
        for rank in (0, 1)
    }  # fmt: skip
    events = [line["event"] for line in lines[0]]
    assert events[0] == "TRAINING_STARTED" and events[-1] == "TRAINING_COMPLETED"
    assert events.count("TRAINING_STARTED") == 1 and events.count("TRAINING_COMPLETED") == 1
    assert lines[1] == []
    assert {(line["rank"], line["world_size"]) for line in lines[0]} == {(0, 2)}
    assert {line["session_id"] for line in lines[0]} == {ranks[0]["session"]}
