"""The demo writes every output the README's commands read, and each command reads it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from audit_logging.cli import main
from audit_logging.demo import run_demo

from helpers import read_jsonl


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("demo") / "demo-logs"
    return out, run_demo(out)


def test_the_demo_writes_journal_array_csv_and_warning_files(
    demo: tuple[Path, dict[str, object]],
) -> None:
    out, files = demo
    [journal] = sorted((out / "logs").glob("ml-platform-*.jsonl"))
    lines = read_jsonl(journal)
    assert lines[0]["event"] == "TRAINING_STARTED"
    actions = json.loads((out / "audit_log.json").read_text())
    with open(out / "audit_log.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # The same three UI actions in both, newest first in the array, oldest first in the CSV.
    assert [a["action_type"] for a in actions] == [
        "checkpoint_restore",
        "evaluation_start",
        "tag_add",
    ]
    assert [r["action_type"] for r in rows] == ["tag_add", "evaluation_start", "checkpoint_restore"]
    [warning] = [
        json.loads(p.read_text()) for p in (out / "training_logs" / "warnings").glob("*.json")
    ]
    assert warning["type"] == "checkpoint_corrupted"
    assert warning["details"]["exists"] is False
    assert journal.relative_to(out).as_posix() in files
    assert "audit_log.csv" in files


def test_the_demo_run_has_one_truthful_closing_line(demo: tuple[Path, dict[str, object]]) -> None:
    out, _ = demo
    [journal] = sorted((out / "logs").glob("ml-platform-*.jsonl"))
    lines = read_jsonl(journal)
    closing = [
        line
        for line in lines
        if line["event"] in ("TRAINING_COMPLETED", "TRAINING_STOPPED", "TRAINING_FAILED")
    ]
    assert len(closing) == 1
    [line] = closing
    [issue] = [line for line in lines if line["event"] == "ISSUE_DETECTED"]
    assert issue["metrics_snapshot"]["issue"] == "plateau"
    # It stopped on the plateau: it says that, and only that.
    assert line["metrics_snapshot"]["ending"] == "early_stopped"
    assert line["reasoning"].startswith("Stopped early on the plateau")
    assert "Finished normally" not in line["reasoning"]
    assert "probably" not in issue["reasoning"]
    # Every epoch carries validation metrics, so every epoch has its line: the curve is whole.
    steps = [p["metrics_snapshot"]["step"] for p in lines if p["event"] == "TRAINING_PROGRESS"]
    assert steps == list(range(1, line["metrics_snapshot"]["step"] + 1))


@pytest.mark.parametrize(
    "argv",
    [
        ["summary", "{out}"],
        ["verify", "{out}"],
        ["query", "{out}", "--event", "ISSUE_DETECTED"],
        ["tail", "{out}/logs"],
        ["export", "{out}/logs", "--to", "csv", "-o", "{out}/../journal.csv"],
        ["warnings", "{out}/training_logs/warnings"],
    ],
    ids=lambda argv: argv[0],
)
def test_each_readme_command_reads_the_demo_output(
    demo: tuple[Path, dict[str, object]], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = demo
    status = main([arg.format(out=out) for arg in argv])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    if argv[0] == "warnings":
        assert "checkpoint_corrupted" in captured.out


def test_the_demo_command_prints_a_summary_and_the_path_of_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo-logs"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = next(line for line in printed.splitlines() if line.startswith("Summary: "))
    assert "1 run(s)" in summary and summary.endswith("verify: intact")
    report = Path(next(line for line in printed.splitlines() if line.startswith("Report: "))[8:])
    assert report == (out / "report.html").resolve()
    page = report.read_text(encoding="utf-8")
    assert "<svg" in page and "Files verified intact" in page
