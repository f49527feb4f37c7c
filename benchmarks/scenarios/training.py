"""Scenario 4: overhead of ``TrainingRun.progress()`` on a training loop of ~1 ms steps.

The step is fixed numpy work (a matrix product sized to take about 1 ms here).
Blocks of 10 steps of three arms alternate in one process, so that drifts of
the machine hit all arms alike (with blocks of 100 steps, the default arm's
median of five full runs went from -0.2% to 1.6%; with blocks of 10, from
0.36% to 1.02% in four, the highest on a loaded machine): no logging; ``progress()`` every step with the
defaults (the detector sees every step, a TRAINING_PROGRESS line is written
every 100 steps); ``progress()`` with ``progress_every=1`` (a line every
step). Then the cost of one ``progress()`` call that writes no line, and of
one carrying ``val_loss`` (always written). The overhead is the median step of an arm over the median plain step,
minus one. The records go through ``AuditQueueHandler -> JsonlHandler`` as in
real use; ``git=None`` keeps the git probe out of the figures.
"""

from __future__ import annotations

import importlib.util
import logging
import statistics
import time

from benchmarks import harness

BLOCKS = 60
STEPS_PER_BLOCK = 10
QUICK_BLOCKS = 10


def main() -> None:
    args = harness.child_args(__doc__ or "")
    if importlib.util.find_spec("audit_logging.training") is None:
        harness.emit(skipped="audit_logging.training does not exist yet")
        return
    import numpy as np

    from audit_logging.queue import AuditQueueHandler
    from audit_logging.training import TrainingRun  # type: ignore[import-not-found]
    from audit_logging.writers.jsonl import JsonlHandler

    handler = AuditQueueHandler(handlers=[JsonlHandler(directory=args.dir)])
    log = logging.getLogger("bench.training")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False

    rng = np.random.default_rng(0)
    size = 64
    a = rng.standard_normal((size, size))

    def work() -> float:
        m = a
        for _ in range(reps):
            m = np.tanh(m @ a * 0.01)
        return float(m[0, 0])

    # Calibrate the fixed work to a median of about 1 ms per step.
    reps = 10
    for _ in range(3):
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            work()
            times.append(time.perf_counter() - t0)
        reps = max(1, round(reps * 0.001 / statistics.median(times)))

    perf = time.perf_counter
    steps: dict[str, list[float]] = {"plain": [], "default": [], "every_step": []}
    runs = {
        "default": TrainingRun(logger=log, dataset="churn.csv", model="RandomForest", git=None),
        "every_step": TrainingRun(
            logger=log, dataset="churn.csv", model="RandomForest", git=None, progress_every=1
        ),
    }
    for run in runs.values():
        run.__enter__()
    step = 0
    for _ in range(QUICK_BLOCKS if args.quick else BLOCKS):
        for arm, times in steps.items():
            run = runs.get(arm)
            for _ in range(STEPS_PER_BLOCK):
                t0 = perf()
                loss = work()
                if run is not None:
                    run.progress(
                        step=step, loss=loss, accuracy=0.87, precision=0.85, recall=0.81, f1=0.83
                    )
                times.append(perf() - t0)
                step += 1
    for run in runs.values():
        run.__exit__(None, None, None)
    # The cost of one progress() call that writes no line (target < 5 us): four
    # training metrics (no val_* metric: a call carrying one is always
    # written), a line every 100 calls carrying the summary of the 99 between;
    # the empty loop's own cost subtracted. The losses fall 0.05% a step, so
    # that no issue fires (the JSON says how many did).
    calls = 20_000
    losses = [0.9995**i for i in range(calls)]
    probe = TrainingRun(logger=log, dataset="churn.csv", model="RandomForest", git=None)
    probe.__enter__()
    # CPU time too (all threads, the listener's share of the lines included):
    # on a shared machine it moves far less than the wall time.
    c0 = time.process_time()
    t0 = perf()
    for i, loss in enumerate(losses):
        probe.progress(step=i, train_loss=loss, accuracy=0.5, f1=0.4, precision=0.45)
    spent = perf() - t0
    handler.flush()
    progress_call_cpu_us = (time.process_time() - c0) / calls * 1e6
    t0 = perf()
    for _i, loss in enumerate(losses):
        1.1 * loss  # the loop's own arithmetic, subtracted below
    loop = perf() - t0
    progress_call_us = (spent - loop) / calls * 1e6
    probe_issues = len(probe.issues)
    probe.__exit__(None, None, None)
    # A call carrying a validation metric: always written (a line per call).
    evaluations = 2_000
    probe = TrainingRun(logger=log, dataset="churn.csv", model="RandomForest", git=None)
    probe.__enter__()
    t0 = perf()
    for i, loss in enumerate(losses[:evaluations]):
        probe.progress(step=i, train_loss=loss, val_loss=1.1 * loss, accuracy=0.5, f1=0.4)
    progress_val_call_us = (perf() - t0) / evaluations * 1e6
    probe_issues += len(probe.issues)
    probe.__exit__(None, None, None)
    handler.flush()
    handler.close()
    plain = statistics.median(steps["plain"])
    metrics = {
        "step_ms_plain": plain * 1e3,
        "steps_per_arm": len(steps["plain"]),
        "reps": reps,
        "progress_call_us": progress_call_us,
        "progress_call_cpu_us": progress_call_cpu_us,  # loop included: an upper bound
        "progress_val_call_us": progress_val_call_us,  # every such call writes a line
        "progress_probe_issues": probe_issues,  # 0, or the probe measured lines too
    }
    for arm in ("default", "every_step"):
        median = statistics.median(steps[arm])
        suffix = "" if arm == "default" else "_every_step"
        metrics[f"step_ms{suffix or '_default'}"] = median * 1e3
        metrics[f"overhead_pct{suffix}"] = (median / plain - 1) * 100
        metrics[f"overhead_pct_mean{suffix}"] = (
            statistics.fmean(steps[arm]) / statistics.fmean(steps["plain"]) - 1
        ) * 100
    harness.emit(metrics, ["step work: tanh(64x64 @ 64x64) repeated to a median of ~1 ms"])


if __name__ == "__main__":
    main()
