"""Real processes: exit drains, crashes, forks and several writers on one file."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import journal_files, read_jsonl, run_python

SETUP = textwrap.dedent(
    """
    import logging, sys
    from audit_logging import AuditQueueHandler, JsonlHandler
    handler = AuditQueueHandler([JsonlHandler(directory=sys.argv[1] if len(sys.argv) > 1 else "logs")])
    log = logging.getLogger("child")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    """
)


def test_exit_without_flush_drains_the_queue(tmp_path: Path) -> None:
    code = (
        SETUP
        + "for i in range(5000):\n    log.info('r%d', i, extra={'event': 'TRAINING_PROGRESS'})\n"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(journal_files(tmp_path / "logs")[0])) == 5000


def test_logging_shutdown_closes_the_queue_before_the_targets_it_feeds(tmp_path: Path) -> None:
    # dictConfig builds "audit" before "journal" and "zz_last"; logging.shutdown()
    # closes the newest first. The last target must still see every record and
    # the journal's final digest, as a GCS mirror listed last must.
    code = textwrap.dedent(
        """
        import json, logging, logging.config, pathlib

        class Last(logging.Handler):
            def close(self):
                if not getattr(self, "seen", None):
                    digest = next(pathlib.Path("logs").glob("*.digest.json"))
                    self.seen = json.loads(digest.read_text())["last_seq"]
                    print("last target saw seq", self.seen, flush=True)
                super().close()

        logging.config.dictConfig({
            "version": 1,
            "handlers": {
                "journal": {"class": "audit_logging.JsonlHandler", "directory": "logs"},
                "zz_last": {"()": Last},
                "audit": {"class": "audit_logging.AuditQueueHandler",
                          "handlers": ["journal", "zz_last"], "max_latency": 30},
            },
            "root": {"handlers": ["audit"], "level": "INFO"},
        })
        log = logging.getLogger("trainer")
        for i in range(3000):
            log.info("r", extra={"event": "TRAINING_PROGRESS"})
        logging.shutdown()
        """
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["last target saw seq 3000"]
    assert len(read_jsonl(journal_files(tmp_path / "logs")[0])) == 3000


def test_uncaught_exception_still_writes_every_record(tmp_path: Path) -> None:
    code = SETUP + textwrap.dedent(
        """
        for i in range(2000):
            log.info('r%d', i, extra={'event': 'TRAINING_PROGRESS'})
        raise RuntimeError('training crashed')
        """
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 1
    assert "training crashed" in result.stderr
    assert len(read_jsonl(journal_files(tmp_path / "logs")[0])) == 2000


def _crashing_child(directory: str, n: int) -> None:
    import logging

    from audit_logging import AuditQueueHandler, JsonlHandler

    log = logging.getLogger(f"crash-{os.getpid()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(AuditQueueHandler([JsonlHandler(directory=directory)]))
    for i in range(n):
        log.info("c%d", i, extra={"event": "TRAINING_PROGRESS"})
    raise RuntimeError("child died")


# Forking while the listener thread runs is the point of the fork case (data
# loaders do it); 3.12+ warns about exactly that.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_child_process_that_dies_keeps_its_records(tmp_path: Path, method: str) -> None:
    ctx = multiprocessing.get_context(method)
    proc = ctx.Process(target=_crashing_child, args=(str(tmp_path), 3000))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 1
    lines = read_jsonl(journal_files(tmp_path)[0])
    assert [line["message"] for line in lines] == [f"c{i}" for i in range(3000)]


def _writer(directory: str, n: int, tag: str) -> None:
    import logging

    from audit_logging import AuditQueueHandler, JsonlHandler

    log = logging.getLogger(f"writer-{tag}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = AuditQueueHandler([JsonlHandler(directory=directory)], batch_size=97)
    log.addHandler(handler)
    for i in range(n):
        log.info(
            "%s-%d", tag, i, extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"i": i}}
        )
    handler.close()


def test_four_processes_one_file_whole_lines_one_numbering(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), 5000, f"p{n}")) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    [path] = journal_files(tmp_path)
    raw = path.read_bytes()
    assert raw.count(b"\n") == 20_000
    lines = [json.loads(line) for line in raw.splitlines()]  # raises on a torn line
    assert sorted(line["seq"] for line in lines) == list(range(1, 20_001))
    assert [line["seq"] for line in lines] == list(range(1, 20_001))  # in file order
    for n in range(4):
        mine = [
            line["metrics_snapshot"]["i"] for line in lines if line["message"].startswith(f"p{n}-")
        ]
        assert mine == list(range(5000))


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_forked_child_gets_its_own_pipeline_without_duplicates(tmp_path: Path) -> None:
    code = SETUP + textwrap.dedent(
        """
        import os
        for i in range(100):
            log.info('parent-%d', i, extra={'event': 'TRAINING_PROGRESS'})
        pid = os.fork()
        who = 'child' if pid == 0 else 'parent2'
        for i in range(100):
            log.info(who + '-%d', i, extra={'event': 'TRAINING_PROGRESS'})
        handler.close()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        """
    )
    result = run_python(code, tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = read_jsonl(journal_files(tmp_path / "logs")[0])
    messages = [line["message"] for line in lines]
    assert len(messages) == len(set(messages)) == 300
    assert sorted(line["seq"] for line in lines) == list(range(1, 301))
