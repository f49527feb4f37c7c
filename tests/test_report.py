"""The run report and compare, read back as a user reads them: the HTML parsed, the JSON loaded.

Logs come from real runs (the demo, TrainingRun through the configured writers)
written under tmp_path. The browser's view of the same pages is in
test_report_browser.py.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "matplotlib", reason='the report extra is absent: pip install "audit-logging[report]"'
)

from audit_logging.cli import main
from audit_logging.config import configure
from audit_logging.demo import run_demo
from audit_logging.report import ReportError, load_runs, write_report
from audit_logging.report.curves import COMPACT_AT, SCREEN_BUCKETS, Curve
from audit_logging.training import TrainingRun

from helpers import read_jsonl

_VOID = {"br", "meta", "img", "input", "hr", "link", "col", "area", "base", "wbr", "source"}


class Page(HTMLParser):
    """The parts of a report page the tests look at."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.text_by_id: dict[str, str] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._open: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag in _VOID:
            return
        if attributes.get("id"):
            self.by_id[str(attributes["id"])] = attributes
            self.text_by_id.setdefault(str(attributes["id"]), "")
            self._open.append(str(attributes["id"]))
        else:
            self._open.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for ident in self._open:
            if ident:
                self.text_by_id[ident] += data

    def ids(self, prefix: str) -> list[str]:
        return [i for i in self.by_id if i.startswith(prefix)]


def logged(tmp_path: Path, logger: logging.Logger, body: Callable[[TrainingRun], None]) -> Path:
    """Run ``body`` in a TrainingRun whose logs go to ``tmp_path/"run"``; the folder."""
    out = tmp_path / "run"
    handler = configure(root_dir=out, formats=("jsonl", "json", "warnings"), logger=logger)
    assert handler is not None
    try:
        with TrainingRun(logger, dataset="d.csv", model="Net", progress_every=1, git=None) as run:
            body(run)
    except (ValueError, KeyboardInterrupt):
        pass
    finally:
        handler.close()
    return out


def report(tmp_path: Path, folder: Path, *args: str) -> tuple[Page, str]:
    out = tmp_path / "report.html"
    assert main(["report", str(folder), "-o", str(out), *args]) == 0
    text = out.read_text(encoding="utf-8")
    return Page(text), text


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "logs"
    run_demo(out)
    return out


def journal_path(folder: Path) -> Path:
    """The journal of a run folder (not the hidden manifest beside it)."""
    (path,) = folder.rglob("ml-platform-*.jsonl")
    return path


def journal(folder: Path) -> list[dict[str, Any]]:
    return read_jsonl(journal_path(folder))


# ---------------------------------------------------------------------- the header


def test_demo_report_header_says_what_the_journal_says(demo: Path, tmp_path: Path) -> None:
    page, _ = report(tmp_path, demo)
    lines = journal(demo)
    started = next(x for x in lines if x["event"] == "TRAINING_STARTED")
    closing = lines[-1]
    assert closing["event"] == "TRAINING_COMPLETED"
    assert page.by_id["outcome"]["data-outcome"] == "completed"
    ending = closing["metrics_snapshot"]["ending"]  # early_stopped: the demo stops on its plateau
    assert page.text_by_id["outcome"] == f"Completed ({ending.replace('_', ' ')})"
    assert page.by_id["verification"]["data-status"] == "intact"
    facts = page.text_by_id["outcome-reason"]
    assert closing["reasoning"] in facts
    header = "".join(page.text_by_id[i] for i in page.by_id if i in ("outcome", "verification"))
    assert "Completed" in header and "verified intact" in header
    body = "".join(page.text_by_id.values())
    for value in (started["session_id"], started["host"], started["dataset"], started["model"]):
        assert value in body
    assert started["timestamp"] in body and closing["timestamp"] in body
    seconds = closing["metrics_snapshot"]["duration_seconds"]
    assert f"duration{seconds:.3g} s" in body


def test_an_action_in_both_files_is_listed_once(demo: Path, tmp_path: Path) -> None:
    page, _ = report(tmp_path, demo)
    actions = json.loads((demo / "audit_log.json").read_text(encoding="utf-8"))
    assert (demo / "audit_log.csv").exists() and actions
    assert page.text_by_id["actions"].startswith(f"Action audit ({len(actions)})")
    for action in actions:
        assert page.text_by_id["actions"].count(action["timestamp"]) == 1


def test_failed_run_shows_the_error_escaped(tmp_path: Path, logger: logging.Logger) -> None:
    def body(run: TrainingRun) -> None:
        run.progress(step=0, train_loss=1.0)
        raise ValueError("bad batch <script>alert(1)</script>")

    page, text = report(tmp_path, logged(tmp_path, logger, body))
    assert page.by_id["outcome"]["data-outcome"] == "failed"
    assert "ValueError: bad batch <script>alert(1)</script>" in page.text_by_id["outcome-reason"]
    assert "<script>" not in text  # the page has no script, the log's text is escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    # The training_failed warning is listed with its recommendation.
    warnings = page.text_by_id["warnings"]
    assert "training_failed" in warnings and "restart from the last good checkpoint" in warnings


def test_stopped_run_shows_the_reason(tmp_path: Path, logger: logging.Logger) -> None:
    def body(run: TrainingRun) -> None:
        run.progress(step=0, train_loss=1.0)
        run.stop("GPU budget of 2 h used up")

    page, _ = report(tmp_path, logged(tmp_path, logger, body))
    assert page.by_id["outcome"]["data-outcome"] == "stopped"
    assert "GPU budget of 2 h used up" in page.text_by_id["outcome-reason"]


def test_run_without_closing_line_is_unknown(tmp_path: Path, logger: logging.Logger) -> None:
    folder = logged(tmp_path, logger, lambda run: run.progress(step=0, loss=1.0))
    path = journal_path(folder)
    kept = path.read_bytes().splitlines(keepends=True)[:-1]  # a run killed before its end
    path.write_bytes(b"".join(kept))
    for digest in folder.rglob("*.digest.json"):
        digest.unlink()
    page, _ = report(tmp_path, folder)
    assert page.by_id["outcome"]["data-outcome"] == "unknown"


def test_tampered_folder_is_said_in_the_header(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(demo, folder)
    path = journal_path(folder)
    text = path.read_text(encoding="utf-8")
    edited = re.sub(r'"val_accuracy":0\.8\d+', '"val_accuracy":0.99', text, count=1)
    assert edited != text
    path.write_text(edited, encoding="utf-8")
    page, _ = report(tmp_path, folder)
    assert page.by_id["verification"]["data-status"] == "tampered"
    assert "Verification FAILED" in page.text_by_id["verification"]
    assert "edited" in page.text_by_id["verification-problems"]
    assert "do not verify" in capsys.readouterr().err


# ---------------------------------------------------------------------- curves and markers


def test_one_series_per_metric_and_a_marker_per_issue(demo: Path, tmp_path: Path) -> None:
    page, text = report(tmp_path, demo)
    lines = journal(demo)
    metrics = {
        k
        for x in lines
        if x["event"] == "TRAINING_PROGRESS"
        for k, v in x["metrics_snapshot"].items()
        if k != "step" and isinstance(v, float)
    }
    series = {re.sub(r"^c\d+-series-", "", i) for i in page.ids("c") if "-series-" in i}
    assert series == metrics and len(page.ids("c")) >= len(metrics)
    charts = page.ids("chart-")
    assert sorted(charts) == ["chart-accuracy", "chart-loss"]  # train and val on one chart
    issues = [x for x in lines if x["event"] == "ISSUE_DETECTED"]
    assert issues
    listed = [i for i in page.ids("marker-") if page.by_id[i]["data-kind"] == "issue"]
    assert len(listed) == len(issues)
    for ident, issue in zip(listed, issues, strict=True):
        assert issue["reasoning"] in page.text_by_id[ident]
        # Each chart links to it, with the reasoning as the hover title.
        links = re.findall(rf'<a xlink:href="#{ident}"><title>([^<]*)</title>', text)
        assert len(links) == 2 * len(charts)  # the line and its head, on each chart
        assert issue["reasoning"][:60] in links[0]


def test_summarised_ranges_are_drawn_as_bands(tmp_path: Path, logger: logging.Logger) -> None:
    """TrainingRun's ``since_last_line`` (calls that wrote no line) becomes a band per metric."""

    def body(run: TrainingRun) -> None:
        for step, lo, hi in ((10, 0.8, 1.4), (20, 0.5, 0.9)):
            snapshot = {
                "step": step,
                "loss": lo + 0.1,
                "since_last_line": {
                    "calls": 9,
                    "first_step": step - 9,
                    "last_step": step - 1,
                    "metrics": {"loss": {"count": 9, "min": lo, "max": hi, "mean": 1, "last": lo}},
                },
            }
            run.logger.info("p", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": snapshot})
        snap = {"step": 30, "val_loss": 0.7, "val_loss_range": {"min": 0.6, "max": 0.9}}
        run.logger.info("p", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": snap})

    folder = logged(tmp_path, logger, body)
    run = load_runs(folder)[0]
    assert sorted(run.bands) == ["loss", "val_loss_range"]
    x0, x1, lo, hi = run.bands["loss"].ranges()
    assert (list(x0), list(x1), list(lo), list(hi)) == ([1, 11], [9, 19], [0.8, 0.5], [1.4, 0.9])
    page, _ = report(tmp_path, folder)
    assert "c0-band-loss" in page.by_id and "c1-band-val_loss_range" in page.by_id


def test_curves_are_downsampled_keeping_extremes() -> None:
    curve = Curve()
    n = 3 * COMPACT_AT + 17
    for i in range(n):
        y = 1.0 / (1 + i)
        if i == 123_457:
            y = 50.0  # one spike
        if i == 700_001:
            y = -3.0  # and one dip
        curve.add(float(i), y)
    assert len(curve) < COMPACT_AT  # folded as it grew
    x, y = curve.points()
    assert len(x) <= 2 * SCREEN_BUCKETS + 2
    assert max(y) == 50.0 and x[list(y).index(50.0)] == 123_457
    assert min(y) == -3.0 and x[list(y).index(-3.0)] == 700_001
    assert x[0] == 0 and x[-1] == n - 1 and list(x) == sorted(x)


# ---------------------------------------------------------------------- the lists


def test_hyperparameters_decisions_issues_actions(tmp_path: Path, logger: logging.Logger) -> None:
    def body(run: TrainingRun) -> None:
        run.decide("ALGORITHM_SELECTED", "MLP <b>", reasoning="because <i>tabular</i>")
        run.hyperparameters({"lr": 0.01, "batch": 32}, defaults_used=["batch"])
        for step in range(30):
            run.progress(step=step, train_loss=1 / (1 + step), val_loss=0.5 + 0.01 * step)
        run.evaluated(accuracy=0.91)
        run.logger.info(
            "hp",
            extra={
                "action_type": "hp_change",
                "actor": "alice <ops>",
                "details": {
                    "before": {"lr": 0.01, "batch": 32},
                    "after": {"lr": 0.001, "batch": 32},
                },
            },
        )

    folder = logged(tmp_path, logger, body)
    page, text = report(tmp_path, folder)
    decisions = page.text_by_id["decisions"]
    assert "MLP <b>" in decisions and "because <i>tabular</i>" in decisions
    assert "MLP &lt;b&gt;" in text and "MLP <b>" not in text
    hyper = page.text_by_id["hyperparameters"]
    assert "lr" in hyper and "0.01" in hyper
    defaults = [t for t, a in page.tags if "default" in (a.get("class") or "")]
    assert len(defaults) == 1  # batch, and only batch
    issues = [x for x in journal(folder) if x["event"] == "ISSUE_DETECTED"]
    assert issues  # val_loss rising while train_loss falls
    issue_text = page.text_by_id["issues"]
    for issue in issues:
        for name, value in issue["metrics_snapshot"]["thresholds"].items():
            assert f"{name} = {value}" in issue_text
    assert "accuracy" in page.text_by_id["metrics"] and "0.91" in page.text_by_id["metrics"]
    actions = page.text_by_id["actions"]
    assert "hp_change" in actions and "0.01" in actions and "0.001" in actions
    assert "alice <ops>" in actions  # who did it
    assert "batch" not in actions.split("hp_change", 1)[1]  # unchanged values are not a change
    hp_markers = [i for i in page.ids("marker-") if page.by_id[i]["data-kind"] == "hyperparameters"]
    assert len(hp_markers) == 2  # HYPERPARAMETERS_SET and the hp_change action


def test_nothing_outside_the_page_is_referenced(demo: Path, tmp_path: Path) -> None:
    page, text = report(tmp_path, demo)
    assert any(
        t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
        and "default-src 'none'" in (a.get("content") or "")
        for t, a in page.tags
    )  # fmt: skip
    for tag, attributes in page.tags:
        assert tag not in ("script", "link", "img", "iframe", "object", "embed")
        assert "src" not in attributes
        for name in ("href", "xlink:href"):
            if name in attributes:
                assert str(attributes[name]).startswith("#"), (tag, attributes)
    assert re.findall(r"url\((?!#)", text) == []
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )


# ---------------------------------------------------------------------- runs and compare


def _two_runs(tmp_path: Path, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "runs"
    handler = configure(root_dir=out, formats=("jsonl",), logger=logger)
    assert handler is not None
    for session, lr, slope in (("run-a", 0.1, 1.0), ("run-b", 0.01, 2.0)):
        monkeypatch.setenv("AUDIT_SESSION_ID", session)
        with TrainingRun(logger, dataset="d.csv", model="Net", progress_every=1, git=None) as run:
            run.hyperparameters({"lr": lr, "epochs": 5})
            for step in range(5):
                run.progress(step=step, loss=1 / (1 + slope * step), accuracy=0.5 + 0.05 * step)
            run.evaluated(f1=0.5 + lr)
        handler.flush()
    handler.close()
    return out


def test_several_runs_give_one_page_each(
    tmp_path: Path, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    folder = _two_runs(tmp_path, logger, monkeypatch)
    runs = load_runs(folder)
    if [r.session for r in runs] != ["run-a", "run-b"]:
        pytest.skip("the session id is read once per process here")
    written = write_report(folder, tmp_path / "r.html")
    assert [p.name for p in written] == ["r-run-a.html", "r-run-b.html"]
    page, _ = report(tmp_path, folder, "--run", "run-b")
    assert "run-b" in page.text_by_id["header"] and "run-a" not in page.text_by_id["header"]
    assert main(["report", str(folder), "--run", "nope", "-o", str(tmp_path / "x.html")]) == 2
    assert "'nope' not found; runs here: run-a, run-b" in capsys.readouterr().err


def test_compare_json_and_table(
    tmp_path: Path, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    folder = _two_runs(tmp_path, logger, monkeypatch)
    if [r.session for r in load_runs(folder)] != ["run-a", "run-b"]:
        pytest.skip("the session id is read once per process here")
    args = ["compare", str(folder), str(folder), "--run-a", "run-a", "--run-b", "run-b"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["hyperparameters_differing"] == [
        {"name": "lr", "a": 0.1, "b": 0.01, "a_default": False, "b_default": False}
    ]
    loss = next(m for m in result["metrics"] if m["name"] == "loss")
    assert loss["final_a"] == pytest.approx(1 / 5) and loss["final_b"] == pytest.approx(1 / 9)
    assert loss["final_diff"] == pytest.approx(1 / 9 - 1 / 5) and loss["better"] == "b"
    assert result["a"]["outcome"] == result["b"]["outcome"] == "completed"
    assert result["evaluation"] == [
        {"name": "f1", "a": 0.6, "b": 0.51, "diff": pytest.approx(0.51 - 0.6)}
    ]
    assert main([*args, "--format", "table"]) == 0
    table = capsys.readouterr().out
    assert "hyperparameters that differ" in table and re.search(r"lr\s+0\.1\s+0\.01", table)
    assert re.search(r"f1\s+0\.6\s+0\.51\s+-0\.09", table)
    out = tmp_path / "c.html"
    assert main([*args, "-o", str(out)]) == 0
    page = Page(out.read_text(encoding="utf-8"))
    assert page.by_id["outcome-a"]["data-outcome"] == "completed"
    series = sorted(i.split("-series-")[1] for i in page.ids("c") if "-series-" in i)
    assert series == ["A_accuracy", "A_loss", "B_accuracy", "B_loss"]  # shared axes per metric


def test_no_audit_output_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r.html")]) == 2
    assert "no audit output found" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    with pytest.raises(ReportError):
        load_runs(tmp_path / "empty")


def test_the_command_in_a_fresh_process(demo: Path, tmp_path: Path) -> None:
    """As a user runs it: no other thread, so the chains are verified by a forked child."""
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "copy"
    shutil.copytree(demo, folder)
    path = journal_path(folder)
    path.write_bytes(
        b"".join(path.read_bytes().splitlines(keepends=True)[:-2])
    )  # its digest says how far it went
    out = tmp_path / "r.html"
    done = subprocess.run(
        [sys.executable, "-m", "audit_logging", "report", str(folder), "-o", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{out}\n"
    page = Page(out.read_text(encoding="utf-8"))
    assert page.by_id["verification"]["data-status"] == "tampered"
    assert "truncated" in page.text_by_id["verification-problems"]
    assert page.by_id["outcome"]["data-outcome"] == "unknown"  # the closing line is gone
    assert "do not verify" in done.stderr


def test_hostile_metric_names_are_names(tmp_path: Path, logger: logging.Logger) -> None:
    def body(run: TrainingRun) -> None:
        for step in range(3):
            run.progress(step=step, **{"cost$": 1.0 + step, "<script>x</script>": 2.0, "_a": 3.0})

    page, text = report(tmp_path, logged(tmp_path, logger, body))
    assert "<script>" not in text
    series = sorted(i.split("-series-")[1] for i in page.by_id if "-series-" in i)
    assert series == ["_a", "_script_x__script_", "cost_"]
    assert "cost$" in text and "&lt;script&gt;x&lt;/script&gt;" in text


def test_without_matplotlib_the_error_names_the_extra(demo: Path, tmp_path: Path) -> None:
    """The table form of compare needs no matplotlib; the pages say which extra to install."""
    import subprocess
    import sys

    block = "import sys; sys.modules['matplotlib'] = None; from audit_logging.cli import main; "
    run = [sys.executable, "-c"]
    page = subprocess.run(
        [*run, block + f"sys.exit(main(['report', {str(demo)!r}, '-o', {str(tmp_path / 'r.html')!r}]))"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert page.returncode == 2
    assert 'pip install "audit-logging[report]"' in page.stderr
    assert not (tmp_path / "r.html").exists()
    table = subprocess.run(
        [*run, block + f"sys.exit(main(['compare', {str(demo)!r}, {str(demo)!r}, '--format', 'table']))"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "hyperparameters: no difference" in table.stdout


def test_a_rejects_file_is_not_read_as_the_journal(demo: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(demo, folder)
    day = journal_path(folder).name.rsplit("-", 3)[-3:]
    rejected = {"event": "TRAINING_PROGRESS", "metrics_snapshot": {"step": 5, "bogus": 1.0},
                "reason": "not serialisable", "writer": "JsonlHandler"}  # fmt: skip
    (folder / "logs" / f"rejected-{'-'.join(day)}").write_text(json.dumps(rejected) + "\n")
    page, _ = report(tmp_path, folder)
    assert not [i for i in page.by_id if i.endswith("-series-bogus")]
