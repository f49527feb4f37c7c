"""AuditQueueHandler: configuration, snapshots, ordering, flush/close and back-pressure."""

from __future__ import annotations

import gc
import json
import logging
import logging.config
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from audit_logging import AuditQueueHandler, JsonlHandler

from helpers import REPO, journal_files, read_jsonl


class ListHandler(logging.Handler):
    """Keeps the records it receives (a target that is not an audit writer)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.closed = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def close(self) -> None:
        self.closed += 1
        super().close()


class GateHandler(ListHandler):
    """Blocks the listener on its first record until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.entered.set()
        self.gate.wait(30)
        super().emit(record)


def dict_config(directory: Path, **queue_options: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "handlers": {
            # "audit" sorts before "journal": dictConfig builds it first.
            "journal": {"class": "audit_logging.JsonlHandler", "directory": str(directory)},
            "audit": {
                "class": "audit_logging.AuditQueueHandler",
                "handlers": ["journal"],
                **queue_options,
            },
        },
        "root": {"handlers": ["audit"], "level": "INFO"},
    }


def test_dictconfig_example_from_the_issue(tmp_path: Path) -> None:
    logging.config.dictConfig(dict_config(tmp_path / "logs"))
    gc.collect()  # the journal is held by no logger: only the queue handler keeps it
    logging.getLogger("trainer").info(
        "Training started",
        extra={
            "event": "TRAINING_STARTED", "dataset": "churn.csv", "model": "RandomForest",
            "decision": "Baseline model selection", "reasoning": "tabular data, 12000 rows",
        },
    )  # fmt: skip
    [handler] = logging.getLogger().handlers
    assert isinstance(handler, AuditQueueHandler)
    handler.flush()
    [line] = read_jsonl(journal_files(tmp_path / "logs")[0])
    assert line["dataset"] == "churn.csv"
    assert line["reasoning"] == "tabular data, 12000 rows"
    assert line["metrics_snapshot"] is None
    assert "taskName" not in line  # the same fields on every Python version


def test_dictconfig_keyword_options_reach_the_handler(tmp_path: Path) -> None:
    logging.config.dictConfig(dict_config(tmp_path, queue_size=123, full_policy="drop"))
    [handler] = logging.getLogger().handlers
    assert isinstance(handler, AuditQueueHandler)
    assert (handler.queue_size, handler.full_policy) == (123, "drop")
    assert [type(t) for t in handler.targets] == [JsonlHandler]


def test_dictconfig_with_an_unknown_handler_name_fails_at_set_up(tmp_path: Path) -> None:
    config = dict_config(tmp_path)
    config["handlers"]["audit"]["handlers"] = ["jornal"]
    with pytest.raises(ValueError, match="Unable to configure handler 'audit'") as failed:
        logging.config.dictConfig(config)
    assert str(failed.value.__cause__) == (
        "AuditQueueHandler: no handler named 'jornal' (configured: journal, audit)"
    )


def test_fileconfig_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(REPO / "logging.ini.example", tmp_path / "logging.ini")
    monkeypatch.chdir(tmp_path)
    library = logging.getLogger("audit_logging.writers.gcs")  # made before, as on import
    logging.config.fileConfig("logging.ini")  # as the README calls it, defaults and all
    assert not library.disabled  # its credentials_missing warnings still reach the files
    gc.collect()
    logging.getLogger("trainer").info("go", extra={"event": "TRAINING_STARTED"})
    logging.getLogger("ui").info("pause", extra={"action_type": "pause"})
    logging.getLogger("git").warning("dirty", extra={"warning_type": "dirty_git"})
    audit = next(h for h in logging.getLogger().handlers if isinstance(h, AuditQueueHandler))
    audit.flush()
    [line] = read_jsonl(journal_files(tmp_path / "logs")[0])
    assert line["event"] == "TRAINING_STARTED"
    [entry] = json.loads((tmp_path / "audit_log.json").read_text())
    assert entry["action_type"] == "pause"
    assert len(list((tmp_path / "training_logs" / "warnings").glob("*_dirty_git_*.json"))) == 1


def test_handler_objects_are_accepted(tmp_path: Path, logger: logging.Logger) -> None:
    target = ListHandler()
    handler = AuditQueueHandler([target])
    logger.addHandler(handler)
    logger.info("x", extra={"event": "TRAINING_STARTED"})
    handler.flush()
    assert [r.getMessage() for r in target.records] == ["x"]


def test_mutation_after_the_call_does_not_change_the_log(
    tmp_path: Path, logger: logging.Logger
) -> None:
    target = GateHandler()  # hold the listener so the record is still queued
    handler = AuditQueueHandler([target, JsonlHandler(directory=tmp_path)])
    logger.addHandler(handler)
    logger.info("first", extra={"event": "TRAINING_STARTED"})
    assert target.entered.wait(10)
    metrics = {"loss": 0.5, "history": [1.0, 0.9], "nested": {"lr": 0.1}}
    params = ["a"]
    logger.info(
        "metrics %s", params, extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": metrics}
    )
    metrics["loss"] = 99.0
    metrics["history"].append(0.1)  # type: ignore[attr-defined]
    metrics["nested"]["lr"] = 0.0  # type: ignore[index]
    params.append("b")
    target.gate.set()
    handler.flush()
    lines = read_jsonl(journal_files(tmp_path)[0])
    assert lines[1]["metrics_snapshot"] == {
        "loss": 0.5,
        "history": [1.0, 0.9],
        "nested": {"lr": 0.1},
    }
    assert lines[1]["message"] == "metrics ['a']"


def test_prepare_copies_args_without_formatting_in_the_caller(logger: logging.Logger) -> None:
    import numpy as np

    weights = np.arange(3.0)
    record = logger.makeRecord(logger.name, logging.INFO, "f", 1, "w=%s", (weights,), None)
    prepared = AuditQueueHandler([ListHandler()]).prepare(record)
    weights[0] = 99.0
    # The message is left for the listener to merge, from a copy of the array.
    assert prepared.msg == "w=%s" and prepared.args[0] is not weights  # type: ignore[index]
    assert prepared.getMessage() == "w=[0. 1. 2.]"


def test_ten_threads_lose_nothing(tmp_path: Path, logger: logging.Logger) -> None:
    handler = AuditQueueHandler([JsonlHandler(directory=tmp_path)])
    logger.addHandler(handler)

    def work(n: int) -> None:
        for i in range(1000):
            logger.info(
                "t%d-%d", n, i, extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"i": i}}
            )

    threads = [threading.Thread(target=work, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handler.flush()
    lines = read_jsonl(journal_files(tmp_path)[0])
    assert len(lines) == 10_000
    assert sorted(line["message"] for line in lines) == sorted(
        f"t{n}-{i}" for n in range(10) for i in range(1000)
    )
    assert [line["seq"] for line in lines] == list(range(1, 10_001))
    # each thread's records stay in that thread's order
    for n in range(10):
        mine = [
            int(line["message"].split("-")[1])
            for line in lines
            if line["message"].startswith(f"t{n}-")
        ]
        assert mine == list(range(1000))


def test_a_raising_target_does_not_stop_the_others(
    tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise OSError("disk on fire")

    good = ListHandler()
    handler = AuditQueueHandler([Broken(), good, JsonlHandler(directory=tmp_path)])
    logger.addHandler(handler)
    for i in range(5):
        logger.info("r%d", i, extra={"event": "TRAINING_PROGRESS"})
    handler.flush()
    assert len(good.records) == 5
    assert len(read_jsonl(journal_files(tmp_path)[0])) == 5
    assert "disk on fire" in capsys.readouterr().err


def test_formatter_on_the_queue_handler_does_not_nest_json(
    tmp_path: Path, logger: logging.Logger
) -> None:
    handler = AuditQueueHandler([JsonlHandler(directory=tmp_path)])
    handler.setFormatter(logging.Formatter('{"wrapped": "%(message)s"}'))
    logger.addHandler(handler)
    logger.info("plain", extra={"event": "TRAINING_STARTED"})
    handler.flush()
    assert read_jsonl(journal_files(tmp_path)[0])[0]["message"] == "plain"


def test_close_is_idempotent_and_closes_targets_in_order(logger: logging.Logger) -> None:
    order: list[str] = []

    class Named(ListHandler):
        def close(self) -> None:
            order.append(self.get_name())
            super().close()

    a, b = Named(), Named()
    a.set_name("writer")
    b.set_name("mirror")
    handler = AuditQueueHandler([a, b])
    logger.addHandler(handler)
    logger.info("x", extra={"event": "TRAINING_STARTED"})
    handler.close()
    handler.close()
    handler.flush()  # prompt after close, no error
    assert order == ["writer", "mirror"]
    assert len(a.records) == 1 and len(b.records) == 1


def test_records_logged_after_close_are_still_written(logger: logging.Logger) -> None:
    target = ListHandler()
    handler = AuditQueueHandler([target])
    logger.addHandler(handler)
    handler.close()
    logger.info("late", extra={"event": "TRAINING_COMPLETED"})
    assert [r.getMessage() for r in target.records] == ["late"]


def test_drop_policy_counts_what_it_drops(logger: logging.Logger) -> None:
    target = GateHandler()
    handler = AuditQueueHandler([target], queue_size=10, full_policy="drop")
    logger.addHandler(handler)
    logger.info("first", extra={"event": "TRAINING_STARTED"})
    assert target.entered.wait(10)  # the listener is stuck on "first"; the queue is empty
    for i in range(15):
        logger.info("r%d", i, extra={"event": "TRAINING_PROGRESS"})
    assert handler.dropped == 5
    target.gate.set()
    handler.flush()
    assert [r.getMessage() for r in target.records] == ["first", *(f"r{i}" for i in range(10))]


def test_block_policy_waits_for_room_then_gives_up(logger: logging.Logger) -> None:
    target = GateHandler()
    handler = AuditQueueHandler([target], queue_size=2, block_timeout=0.2)
    logger.addHandler(handler)
    logger.info("first", extra={"event": "TRAINING_STARTED"})
    assert target.entered.wait(10)
    logger.info("a", extra={"event": "TRAINING_PROGRESS"})
    logger.info("b", extra={"event": "TRAINING_PROGRESS"})
    started = time.monotonic()
    logger.info("c", extra={"event": "TRAINING_PROGRESS"})  # full: waits, then drops
    assert time.monotonic() - started >= 0.2
    assert handler.dropped == 1
    opener = threading.Timer(0.1, target.gate.set)
    opener.start()
    handler.block_timeout = 30
    logger.info("d", extra={"event": "TRAINING_PROGRESS"})  # waits until the gate opens
    handler.flush()
    opener.join()
    assert handler.dropped == 1
    assert [r.getMessage() for r in target.records] == ["first", "a", "b", "d"]


def test_target_levels_are_respected(logger: logging.Logger) -> None:
    warnings_only = ListHandler()
    warnings_only.setLevel(logging.WARNING)
    handler = AuditQueueHandler([warnings_only])
    logger.addHandler(handler)
    logger.info("info")
    logger.warning("warn")
    handler.flush()
    assert [r.getMessage() for r in warnings_only.records] == ["warn"]


def test_invalid_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="full_policy"):
        AuditQueueHandler([], full_policy="wait")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"logging\.Handler objects or names"):
        AuditQueueHandler([42])  # type: ignore[list-item]


def test_readme_dictconfig_example_writes_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Set-up with dictConfig") :]
    code = section[section.index("```python\n") + 10 : section.index("```\n\nwrites")]
    monkeypatch.chdir(tmp_path)
    library = logging.getLogger("audit_logging.writers.gcs")
    exec(compile(code, "README.md", "exec"), {})
    assert not library.disabled
    audit = next(h for h in logging.getLogger().handlers if isinstance(h, AuditQueueHandler))
    audit.flush()
    [line] = read_jsonl(journal_files(tmp_path / "logs")[0])
    assert (line["event"], line["dataset"], line["metrics_snapshot"]) == (
        "TRAINING_STARTED",
        "churn.csv",
        None,
    )
    assert line["logger"] == "trainer" and line["seq"] == 1
