"""The report pages as a person sees them: loaded in real headless Chromium.

Skipped when Chromium is absent (Debian: ``apt-get install -y chromium``).
For each page: the DOM Chromium built (``--dump-dom``) has the charts, one
series per metric, a marker per ISSUE_DETECTED and the right header; the
console is silent (a blocked fetch or a script error would be logged there);
the network log has no request made by the page; a screenshot is not blank.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "matplotlib", reason='the report extra is absent: pip install "audit-logging[report]"'
)

from matplotlib import image
from test_report import Page, journal, journal_path, logged

from audit_logging.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
)  # fmt: skip


def chromium(page: Path, tmp_path: Path, *args: str) -> tuple[str, str, list[dict[str, Any]]]:
    """Load ``page``; its stdout, the console lines, and the requests the page started."""
    profile = tmp_path / f"profile-{page.stem}"
    netlog = tmp_path / f"netlog-{page.stem}.json"
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--log-net-log={netlog}", *args,
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, "\n".join(console), page_requests(netlog)


def page_requests(netlog: Path) -> list[dict[str, Any]]:
    """URL requests with an initiator: the page's own (the browser's have none)."""
    log = json.loads(netlog.read_text(encoding="utf-8"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]
        for event in log["events"]
        if event["type"] == start
        and event.get("params", {}).get("initiator", "not an origin") != "not an origin"
    ]


def test_the_checks_see_a_request_and_a_console_message(tmp_path: Path) -> None:
    """A page that fetches something is caught: the network log and the console both say so."""
    page = tmp_path / "fetching.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
        "<script>console.error('boom')</script></body></html>",
        encoding="utf-8",
    )
    _, console, requests = chromium(page, tmp_path, "--dump-dom")
    assert [r["url"] for r in requests] == ["http://127.0.0.1:9/x.png"]
    assert "boom" in console


def test_demo_report_in_chromium(tmp_path: Path) -> None:
    from audit_logging.demo import run_demo

    logs = tmp_path / "demo"
    run_demo(logs)
    out = tmp_path / "report.html"
    assert main(["report", str(logs), "-o", str(out)]) == 0

    dom, console, requests = chromium(out, tmp_path, "--dump-dom")
    assert console == "" and requests == []
    page = Page(dom)
    assert page.by_id["outcome"]["data-outcome"] == "completed"
    assert page.by_id["verification"]["data-status"] == "intact"
    svgs = [a for t, a in page.tags if t == "svg"]
    assert len(svgs) == 2  # loss and accuracy
    series = [i for i in page.by_id if "-series-" in i]
    assert sorted(s.split("-series-")[1] for s in series) == [
        "train_accuracy", "train_loss", "val_accuracy", "val_loss",
    ]  # fmt: skip
    issues = [x for x in journal(logs) if x["event"] == "ISSUE_DETECTED"]
    issue_items = [i for i in page.ids("marker-") if page.by_id[i]["data-kind"] == "issue"]
    assert len(issue_items) == len(issues) >= 1
    links = [a.get("xlink:href") or a.get("href") for t, a in page.tags if t == "a"]
    for item in issue_items:
        assert links.count(f"#{item}") == 4  # line and head, on both charts

    shot = tmp_path / "shot.png"
    chromium(out, tmp_path, f"--screenshot={shot}", "--window-size=1200,1600")
    pixels = image.imread(str(shot))
    assert pixels.shape[:2] == (1600, 1200)
    colours = {tuple(p) for p in pixels[::7, ::7, :3].reshape(-1, 3).round(2).tolist()}
    assert len(colours) > 50  # text, badges, curves: not a blank page
    white = (pixels[:, :, :3] > 0.97).all(axis=2).mean()
    assert white < 0.95


def test_tampered_and_failed_run_in_chromium(tmp_path: Path, logger: logging.Logger) -> None:
    def body(run: Any) -> None:
        for step in range(5):
            run.progress(step=step, train_loss=1.0 / (1 + step), val_loss=0.6)
        raise ValueError("out of memory <b>on rank 0</b>")

    folder = logged(tmp_path, logger, body)
    path = journal_path(folder)
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[2]  # one progress line removed
    path.write_bytes(b"".join(lines))
    out = tmp_path / "report.html"
    assert main(["report", str(folder), "-o", str(out)]) == 0
    dom, console, requests = chromium(out, tmp_path, "--dump-dom")
    assert console == "" and requests == []
    page = Page(dom)
    assert page.by_id["outcome"]["data-outcome"] == "failed"
    assert "out of memory <b>on rank 0</b>" in page.text_by_id["outcome-reason"]
    assert page.by_id["verification"]["data-status"] == "tampered"
    assert "Verification FAILED" in page.text_by_id["verification"]


def test_compare_page_in_chromium(tmp_path: Path, logger: logging.Logger) -> None:
    def body(run: Any) -> None:
        for step in range(5):
            run.progress(step=step, train_loss=1.0 / (1 + step))

    a = logged(tmp_path / "a", logger, body)
    b = logged(tmp_path / "b", logger, body)
    out = tmp_path / "compare.html"
    assert main(["compare", str(a), str(b), "-o", str(out)]) == 0
    dom, console, requests = chromium(out, tmp_path, "--dump-dom")
    assert console == "" and requests == []
    page = Page(dom)
    assert page.by_id["verification-a"]["data-status"] == "intact"
    assert sorted(i for i in page.by_id if "-series-" in i) == [
        "c0-series-A_train_loss", "c0-series-B_train_loss",
    ]  # fmt: skip
