"""Scenario: ``audit-logging report`` on a 1 M-line journal (target: < 10 s, < 300 MB).

Writes, once per benchmark run (into the shared folder), a journal of one
training run through ``TrainingRun`` -> ``AuditQueueHandler`` ->
``JsonlHandler`` with the hash chain: 1,000,000 lines (20,000 in --quick),
almost all TRAINING_PROGRESS with four metrics, plus a decision, the
hyperparameters, 20 ISSUE_DETECTED lines spread over the run, an evaluation and
the closing line. Then times the ``report`` command on it in a subprocess, as a
user runs it (interpreter start-up, reading, verifying, charts, HTML), and reads
its peak RSS from ``getrusage``.

Run alone: ``python -m benchmarks.scenarios.report report [--quick]``; the last
line is the JSON result, the line before says whether each target was met.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks import harness

FULL = 1_000_000
QUICK = 20_000
TARGET_SECONDS = 10.0
TARGET_MB = 300.0
ISSUES = 20


def _write_journal(directory: str, lines: int) -> None:
    from audit_logging.queue import AuditQueueHandler
    from audit_logging.training import TrainingRun
    from audit_logging.writers.jsonl import JsonlHandler

    handler = AuditQueueHandler(handlers=[JsonlHandler(directory=directory)])
    log = logging.getLogger("bench.report")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    steps = lines - 5 - ISSUES
    every = max(steps // ISSUES, 1)
    with TrainingRun(
        log, dataset="big.csv", model="BigNet", progress_every=1, detector=False, git=None
    ) as run:
        run.decide("ALGORITHM_SELECTED", "MLP", reasoning="tabular data, 40 features")
        run.hyperparameters({"learning_rate": 0.01, "batch_size": 64}, defaults_used=["batch_size"])
        for step in range(steps):
            train = 1.0 / (1.0 + step / 5000) + 0.02 * ((step * 7919) % 13) / 13
            val = train + 0.03 + 0.02 * ((step * 104729) % 7) / 7
            run.progress(
                step=step,
                train_loss=train,
                val_loss=val,
                train_accuracy=1 - train / 2,
                val_accuracy=1 - val / 2,
            )
            if step % every == every - 1:
                log.warning(
                    "Issue detected",
                    extra={
                        "event": "ISSUE_DETECTED",
                        "decision": "Flagged for review; training continues",
                        "reasoning": f"val_loss above its best for 10 checks at step {step}",
                        "metrics_snapshot": {
                            "issue": "plateau",
                            "step": step,
                            "val_loss": val,
                            "thresholds": {"patience": 10, "min_delta": 0.001},
                        },
                    },
                )
        run.evaluated(val_loss=val)
    handler.close()


def main() -> None:
    args = harness.child_args(__doc__ or "")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        harness.emit(skipped='matplotlib missing: pip install "audit-logging[report]"')
        return
    n = QUICK if args.quick else FULL
    directory = os.path.join(args.shared or args.dir, f"report-{n}")
    done_marker = os.path.join(directory, ".complete")
    if not os.path.exists(done_marker):
        shutil.rmtree(directory, ignore_errors=True)
        _write_journal(directory, n)
        open(done_marker, "w").close()
    out = tempfile.mkdtemp(prefix="bench-report-")
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "audit_logging", "report", directory, "-o", f"{out}/r.html"],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        size = os.path.getsize(f"{out}/r.html") if done.returncode == 0 else 0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_mb = after.ru_maxrss / 1024  # Linux: KiB, the largest child so far (only this one)
    journal = next(
        os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".jsonl")
    )
    with open(journal, "rb") as fh:
        lines = sum(1 for _ in fh)
    notes = [] if done.returncode == 0 else [f"report exit {done.returncode}: {done.stderr[-300:]}"]
    met_time = "met" if wall < TARGET_SECONDS else "MISSED"
    met_mem = "met" if peak_mb < TARGET_MB else "MISSED"
    scale = "" if n == FULL else f" (scaled: {n} lines, the target is for {FULL})"
    print(
        f"report of {lines} lines: {wall:.2f} s wall ({cpu:.2f} s CPU), peak {peak_mb:.0f} MB; "
        f"< {TARGET_SECONDS:g} s {met_time}, < {TARGET_MB:g} MB {met_mem}{scale}"
    )
    harness.emit(
        {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_mb, "lines": lines, "html_bytes": size},
        notes,
    )


if __name__ == "__main__":
    main()
