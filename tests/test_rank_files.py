"""Each rank of a distributed job writes its own journal, named by host and rank."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from audit_logging.read import catalogue, summarize, verify

from helpers import journal_files, read_jsonl, run_python

RANK_SCRIPT = """
import logging
import audit_logging
log = logging.getLogger("train")
handler = audit_logging.configure(ROOT, "jsonl", logger=log)
log.info("started", extra={"event": "TRAINING_STARTED", "model": "mlp"})
log.info("step", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"loss": 0.5}})
handler.close()
"""


def _rank(root: Path, rank: int, **env: str) -> None:
    result = run_python(RANK_SCRIPT.replace("ROOT", repr(str(root))), cwd=root.parent, **env)
    assert result.returncode == 0, result.stderr


def test_two_ranks_write_two_files_named_by_host_and_rank_in_one_run(tmp_path: Path) -> None:
    root = tmp_path / "job"
    root.mkdir()
    for rank in (0, 1):
        _rank(
            root,
            rank,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE="2",
            AUDIT_SESSION_ID="job-42",
        )
    day = time.strftime("%Y-%m-%d", time.gmtime())
    host = socket.gethostname()
    names = [p.name for p in journal_files(root / "logs")]
    assert names == [f"ml-platform-{day}-{host}-r0.jsonl", f"ml-platform-{day}-{host}-r1.jsonl"]
    for rank, path in enumerate(journal_files(root / "logs")):
        lines = read_jsonl(path)
        assert [line["seq"] for line in lines] == [1, 2]  # each rank's file its own chain
        assert {line["rank"] for line in lines} == {rank}
    cat = catalogue([root])
    assert [(run.session_id, sorted(run.ranks)) for run in cat.runs] == [("job-42", [0, 1])]
    assert summarize(cat).as_dict()["journal_lines"] == 4
    assert verify(cat).ok


def test_a_process_that_is_not_distributed_keeps_the_daily_name(tmp_path: Path) -> None:
    root = tmp_path / "run"
    root.mkdir()
    _rank(root, 0)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert [p.name for p in journal_files(root / "logs")] == [f"ml-platform-{day}.jsonl"]
