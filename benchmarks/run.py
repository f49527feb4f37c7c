"""Run every scenario in its own subprocess, interleaved over rounds; print and save the results.

Usage (from the repository root)::

    python -m benchmarks                 # full run, 5 rounds, under 5 minutes on 2 cores
    python -m benchmarks --quick         # smoke test, under 1 minute; asserts nothing
    python -m benchmarks --out DIR       # where the JSON goes (default benchmarks/results/)

Why it is built this way:

* one subprocess per measurement, so that no library's import, global
  configuration, threads or heap affect another's figures;
* rounds, each running every case once in a new shuffled order, so that a
  slow minute of a shared machine spreads over all cases instead of landing on
  one; the table gives the median over rounds and the min-max;
* every target is a ratio to a baseline measured in the same run (the floor,
  one process, 1k events), never an absolute figure from another machine.
  (The memory scenario runs once: it logs 10 million records, and peak RSS is
  a bound, not a rate that needs a median.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results"

#: (family, case, label) in table order. The family is the module in benchmarks/scenarios.
CALLER = [
    ("floor", "floor: stdlib logger + NullHandler"),
    ("stdlib_queue_noop", "stdlib QueueHandler, no-op listener"),
    ("pjl_file", "python-json-logger + FileHandler"),
    ("pjl_queue", "python-json-logger behind QueueHandler"),
    ("clh_json", "concurrent-log-handler + JsonFormatter"),
    ("structlog_orjson", "structlog + orjson"),
    ("loguru_serialize", "loguru serialize"),
    ("loguru_enqueue", "loguru serialize, enqueue=True"),
    ("bare_queue_orjson", "hand-built queue + orjson (no checks)"),
    ("audit_queue_noop", "AuditQueueHandler, no-op target (the queue alone)"),
    ("audit_queue_nosnapshot", "the queue alone, prepare() overridden: no snapshot"),
    ("audit_jsonl", "audit_logging -> JSONL (orjson, hash chain)"),
    ("audit_jsonl_nochain", "audit_logging -> JSONL (orjson, chain=False)"),
    ("audit_jsonl_plain", "audit_logging -> JSONL (orjson, chain=False, redact=False)"),
    ("audit_jsonl_bare", "JSONL, chain and redaction off, no snapshot"),
    ("audit_jsonl_stdlib_json", "audit_logging -> JSONL (stdlib json, hash chain)"),
    ("audit_json_array", "audit_logging -> JSON array"),
    ("audit_csv", "audit_logging -> CSV"),
    ("audit_all_four", "audit_logging -> all four writers"),
]
GROWTH = [
    ("array_1k", "JsonArrayHandler, 1k existing"),
    ("array_10k", "JsonArrayHandler, 10k existing"),
    ("array_100k", "JsonArrayHandler, 100k existing"),
    ("naive_1k", "rewrite per event, 1k existing"),
    ("naive_10k", "rewrite per event, 10k existing"),
]
PROCESSES = [("procs_1", "1 process"), ("procs_2", "2 processes"), ("procs_4", "4 processes")]
TRAINING = [("overhead", "numpy loop, ~1 ms/step, TrainingRun.progress() per step")]
VERIFY = [("verify", "audit-logging verify")]
INTEGRATIONS = [("overhead", "framework callbacks, hooks per 1 ms step (100-step epochs)")]
#: The frameworks of benchmarks/scenarios/integrations.py, in its order.
FRAMEWORKS = ("xgboost", "lightgbm", "keras", "lightning", "transformers", "sklearn")
SQL = [
    ("sql_duckdb", "audit-logging sql: grouped count, 1M lines in 20 runs (50k in --quick)"),
    ("sql_jq", "jq reduce: the same grouped count"),
]
REPORT = [("report", "audit-logging report, 1M-line journal (20k in --quick)")]
SEALS = [
    ("tree", "seals: RFC 6962 tree kept per line, beside the chain's hash"),
    ("prove", "seals: prove one line of a 10M-line journal (200k in --quick), check_proof"),
    ("verify", "seals: verify the seals of that journal"),
]
THREADS = [
    (f"{impl}_{fmt}_{n}", f"{who}, {label}, {n} thread{'s' if n > 1 else ''}")
    for impl, who in (("audit", "AuditLogger"), ("weightslab", "WeightsLab's design"))
    for fmt, label in (("json", "json"), ("csv", "csv"), ("both", "json,csv"))
    for n in (1, 2, 4, 8)
]
MEMORY = [
    ("rss", "10M records (200k in --quick), AuditQueueHandler -> JSONL (chain, redaction off)")
]

FAMILIES: dict[str, list[tuple[str, str]]] = {
    "caller": CALLER,
    "growth": GROWTH,
    "processes": PROCESSES,
    "training": TRAINING,
    "integrations": INTEGRATIONS,
    "verify": VERIFY,
    "sql": SQL,
    "threads": THREADS,
    "seals": SEALS,
    "report": REPORT,
    "memory": MEMORY,
}
#: Suites that build their own large inputs and run their commands as a user
#: does (one process per command, beside jq): run once, after the families,
#: printing their own tables and targets. name -> (module, heading)
SUITES: dict[str, tuple[str, str]] = {
    "read": ("benchmarks.read_model", "Reading: verify, summary, query --limit 10 beside jq"),
}
QUICK_SKIP = {("growth", "array_100k")} | {
    ("threads", case) for case, _ in THREADS if case.endswith(("_2", "_4"))
}
ENV = {("caller", "audit_jsonl_stdlib_json"): {"BENCH_NO_ORJSON": "1"}}
TIMEOUT = {"memory": 900.0, "sql": 600.0, "seals": 600.0, "report": 600.0}
#: Scratch bytes a family's child writes, for those that may need a RAM-backed folder.
SCRATCH_BYTES = {"memory": 10_000_000 * 500}


@dataclass
class Result:
    family: str
    case: str
    label: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    #: Wall seconds of each child run, start-up included: where the run's time goes.
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        keys = {k for r in self.rounds for k in r}
        out = {}
        for key in sorted(keys):
            values = [r[key] for r in self.rounds if isinstance(r.get(key), (int, float))]
            if values:
                out[key] = {
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                }
        return out

    def median(self, key: str) -> float | None:
        return self.summary().get(key, {}).get("median")


def scratch_root(family: str, quick: bool) -> str | None:
    """``/dev/shm`` for a full run's family that writes gigabytes, if it has room twice over.

    The 10M-record memory scenario writes a 4.6 GB journal; on a disk, the
    kernel's write-back throttling then sets its pace (1.5 to 3 minutes here,
    depending on the disk's state), and the disk's speed is not what it measures.
    """
    need = 2 * SCRATCH_BYTES.get(family, 0)
    if quick or need == 0 or not os.path.isdir("/dev/shm"):
        return None
    try:
        free = shutil.disk_usage("/dev/shm").free
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    return "/dev/shm" if min(free, available) >= need else None


def run_child(result: Result, quick: bool, shared: str) -> None:
    """Run one measurement of ``result``'s case in a fresh interpreter and record it.

    ``shared`` is a folder kept for the whole run: a child may leave an input
    there that later rounds only read (the journal that ``verify`` checks).
    """
    scratch = tempfile.mkdtemp(
        prefix=f"bench-{result.case}-", dir=scratch_root(result.family, quick)
    )
    cmd = [
        sys.executable,
        "-m",
        f"benchmarks.scenarios.{result.family}",
        result.case,
        "--dir",
        scratch,
        "--shared",
        shared,
    ]
    if quick:
        cmd.append("--quick")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(ENV.get((result.family, result.case), {}))
    started = time.perf_counter()
    try:
        done = subprocess.run(
            cmd,
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=TIMEOUT.get(result.family, 180.0),
        )
    except subprocess.TimeoutExpired:
        result.error = "timed out"
        return
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        result.seconds.append(time.perf_counter() - started)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        result.error = f"exit {done.returncode}: {done.stderr.strip()[-800:]}"
        return
    payload = json.loads(lines[-1])
    if "skipped" in payload:
        result.skipped = payload["skipped"]
        return
    result.rounds.append(payload["metrics"])
    for note in payload.get("notes", []):
        if note not in result.notes:
            result.notes.append(note)


# --------------------------------------------------------------------------- environment


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
    }


def packages() -> dict[str, str | None]:
    names = [
        "audit-logging",
        "orjson",
        "structlog",
        "loguru",
        "python-json-logger",
        "concurrent-log-handler",
        "portalocker",
        "numpy",
    ]
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


# --------------------------------------------------------------------------- report


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    if value is None:
        return "-"
    v = value * scale
    return f"{v:,.{digits}f}" if abs(v) < 1000 else f"{v:,.0f}"


def _range(result: Result, key: str, scale: float = 1.0, digits: int = 1) -> str:
    s = result.summary().get(key)
    if s is None:
        return "-"
    return (
        f"{_fmt(s['median'], scale, digits)} "
        f"({_fmt(s['min'], scale, digits)}-{_fmt(s['max'], scale, digits)})"
    )


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _status(result: Result) -> str | None:
    if result.error:
        return f"ERROR {result.error.splitlines()[-1] if result.error else ''}"
    if result.skipped:
        return f"skipped: {result.skipped}"
    return None


def report(results: dict[tuple[str, str], Result]) -> tuple[str, list[dict[str, Any]]]:
    """The Markdown tables and the list of targets (met or missed)."""
    out: list[str] = []
    get = results.get
    floor = get(("caller", "floor"))
    f_lat = floor.median("lat_median_ns") if floor else None
    f_cpu = floor.median("cpu_us_per_record") if floor else None

    rows = []
    for case, label in CALLER:
        r = results[("caller", case)]
        status = _status(r)
        if status:
            rows.append([label, status] + [""] * 7)
            continue
        rows.append(
            [
                label,
                _range(r, "lat_median_ns", 1e-3, 2),
                _ratio(r.median("lat_median_ns"), f_lat),
                _fmt(r.median("lat_p99_ns"), 1e-3),
                _fmt(r.median("lat_p999_ns"), 1e-3),
                _fmt(r.median("burst_caller_ns"), 1e-3, 2),
                _range(r, "records_per_s", 1e-3, 0),
                _fmt(r.median("cpu_us_per_record"), 1, 2),
                _ratio(r.median("cpu_us_per_record"), f_cpu),
            ]
        )
    out.append("### 1. Caller cost and end-to-end throughput\n")
    out.append(
        _table(
            [
                "set-up",
                "spaced call median us (min-max)",
                "x floor",
                "p99 us",
                "p99.9 us",
                "burst call us",
                "k records/s to disk (min-max)",
                "CPU us/record",
                "x floor CPU",
            ],
            rows,
        )
    )

    base = get(("growth", "array_1k"))
    rows = []
    for case, label in GROWTH:
        r = results[("growth", case)]
        status = _status(r)
        if status:
            rows.append([label, status, ""])
            continue
        ref = base if case.startswith("array") else get(("growth", "naive_1k"))
        rows.append(
            [
                label,
                _range(r, "us_per_event", 1, 0),
                _ratio(r.median("us_per_event"), ref.median("us_per_event") if ref else None),
            ]
        )
    out.append("\n### 2. audit_log.json growth (each event on disk before the next call)\n")
    out.append(_table(["implementation", "us per event (min-max)", "x at 1k"], rows))

    one = get(("processes", "procs_1"))
    rows = []
    for case, label in PROCESSES:
        r = results[("processes", case)]
        rows.append(
            [
                label,
                _status(r) or _range(r, "records_per_s", 1e-3, 0),
                _ratio(r.median("records_per_s"), one.median("records_per_s") if one else None),
            ]
        )
    out.append("\n### 3. Processes appending to one journal folder\n")
    out.append(_table(["writers", "total k records/s (min-max)", "x 1 process"], rows))

    rows = []
    for fam, cases, cols in (
        (
            "training",
            TRAINING,
            [
                ("overhead_pct", 1, 2, "% overhead, default progress_every=100"),
                ("overhead_pct_every_step", 1, 2, "% overhead, a line every step"),
                ("step_ms_plain", 1, 3, "ms/step plain"),
                ("progress_call_us", 1, 2, "us per progress() call (4 metrics, a line every 100)"),
            ],
        ),
        (
            "memory",
            MEMORY,
            [("peak_rss_mb", 1, 1, "MB peak RSS"), ("records_per_s", 1e-3, 0, "k records/s")],
        ),
        ("verify", VERIFY, [("lines_per_s", 1e-3, 0, "k lines/s")]),
        (
            "integrations",
            INTEGRATIONS,
            [(f"{fw}_overhead_pct", 1, 3, f"% {fw}") for fw in FRAMEWORKS],
        ),
        ("sql", SQL, [("wall_s", 1, 2, "s"), ("lines_per_s", 1e-3, 0, "k lines/s")]),
        (
            "report",
            REPORT,
            [("wall_s", 1, 2, "s wall"), ("peak_rss_mb", 1, 0, "MB peak RSS")],
        ),
        (
            "seals",
            SEALS,
            [
                ("tree_us_per_line", 1, 2, "us/line tree"),
                ("chain_us_per_line", 1, 2, "us/line chain"),
                ("prove_ms_max", 1, 0, "ms prove (max)"),
                ("check_ms_median", 1, 2, "ms check_proof"),
                ("lines_per_s", 1e-3, 0, "k lines/s"),
            ],
        ),
    ):
        for case, label in cases:
            r = results[(fam, case)]
            status = _status(r)
            text = status or "; ".join(f"{_range(r, k, s, d)} {unit}" for k, s, d, unit in cols)
            rows.append([label, text])
    out.append("\n### 4-6. Training overhead, memory, verify, framework callbacks\n")
    out.append(_table(["scenario", "median (min-max)"], rows))

    rows = []
    for case, label in THREADS:
        r = results[("threads", case)]
        rows.append(
            [
                label,
                _status(r) or _range(r, "us_per_event", 1, 0),
                "" if _status(r) else _range(r, "events_per_s", 1, 0),
            ]
        )
    out.append(
        "\n### 7. Action audit from threads (each event in the file when log_event returns)\n"
    )
    out.append(_table(["logger, format, threads", "us per event (min-max)", "events/s"], rows))

    notes = [f"- {r.label}: {n}" for r in results.values() for n in r.notes]
    if notes:
        out.append("\nNotes:\n" + "\n".join(notes))

    targets = evaluate(results)
    out.append("\n### Targets (ratios from this run)\n")
    out.append(
        _table(
            ["target", "measured", "status"],
            [[t["target"], t["measured"], t["status"]] for t in targets],
        )
    )
    return "\n".join(out), targets


def evaluate(results: dict[tuple[str, str], Result]) -> list[dict[str, Any]]:
    def med(family: str, case: str, key: str) -> float | None:
        r = results.get((family, case))
        return r.median(key) if r else None

    def check(target: str, value: float | None, ok: bool | None, shown: str) -> dict[str, Any]:
        status = "n/a" if value is None or ok is None else ("met" if ok else "MISSED")
        return {
            "target": target,
            "value": value,
            "measured": shown if value is not None else "-",
            "status": status,
        }

    out = []
    f_lat = med("caller", "floor", "lat_median_ns")
    f_cpu = med("caller", "floor", "cpu_us_per_record")
    # The journal's targets: the defaults (chain and redaction on) and both off.
    for case, what, cpu_target in (
        ("audit_jsonl", "JSONL (defaults: chain, redaction)", 2.3),
        ("audit_jsonl_plain", "JSONL chain=False redact=False", 1.9),
    ):
        lat = med("caller", case, "lat_median_ns")
        r = lat / f_lat if lat and f_lat else None
        out.append(
            check(
                f"{what}: spaced call median <= 1.3x floor",
                r,
                r is not None and r <= 1.3,
                f"{r:.2f}x" if r else "",
            )
        )
        p999 = med("caller", case, "lat_p999_ns")
        out.append(
            check(
                f"{what}: spaced call p99.9 < 1 ms",
                p999,
                p999 is not None and p999 < 1e6,
                f"{p999 / 1e3:.0f} us" if p999 else "",
            )
        )
        cpu = med("caller", case, "cpu_us_per_record")
        r = cpu / f_cpu if cpu and f_cpu else None
        out.append(
            check(
                f"{what}: sustained CPU/record <= {cpu_target}x floor CPU/call",
                r,
                r is not None and r <= cpu_target,
                f"{r:.2f}x" if r else "",
            )
        )
    a1, a100 = (
        med("growth", "array_1k", "us_per_event"),
        med("growth", "array_100k", "us_per_event"),
    )
    r = a100 / a1 if a1 and a100 else None
    out.append(
        check(
            "JSON array per-event cost 100k/1k within 2x",
            r,
            r is not None and r <= 2,
            f"{r:.2f}x" if r else "",
        )
    )
    p1, p4 = (
        med("processes", "procs_1", "records_per_s"),
        med("processes", "procs_4", "records_per_s"),
    )
    r = p4 / p1 if p1 and p4 else None
    out.append(
        check(
            "4 processes >= 1.5x one process",
            r,
            r is not None and r >= 1.5,
            f"{r:.2f}x" if r else "",
        )
    )
    ov = med("training", "overhead", "overhead_pct")
    out.append(
        check(
            "training overhead < 1% (1 ms step)",
            ov,
            ov is not None and ov < 1,
            f"{ov:.2f}%" if ov is not None else "",
        )
    )
    for fw in FRAMEWORKS:
        ov = med("integrations", "overhead", f"{fw}_overhead_pct")
        out.append(
            check(
                f"{fw} callback overhead < 1% (1 ms step)",
                ov,
                ov is not None and ov < 1,
                f"{ov:.3f}%" if ov is not None else "",
            )
        )
    pc = med("training", "overhead", "progress_call_us")
    training = results.get(("training", "overhead"))
    # The probe must time calls that raise no issue (ISSUE_DETECTED lines cost more).
    probe_issues = (
        training.summary().get("progress_probe_issues", {}).get("max") if training else None
    )
    out.append(
        check(
            "TrainingRun.progress() < 5 us per call",
            pc,
            pc is not None and pc < 5 and not probe_issues,
            (f"{pc:.2f} us" if pc is not None else "")
            + (f" (probe raised {probe_issues:.0f} issues)" if probe_issues else ""),
        )
    )
    for fmt, label in (("json", "json"), ("csv", "csv"), ("both", "json,csv")):
        one, eight = (
            med("threads", f"audit_{fmt}_1", "us_per_event"),
            med("threads", f"audit_{fmt}_8", "us_per_event"),
        )
        r = eight / one if one and eight else None
        out.append(
            check(
                f"AuditLogger {label}: 8 threads cost no more per event than 1",
                r,
                r is not None and r <= 1.0,
                f"{eight:.0f} vs {one:.0f} us ({r:.2f}x)" if r else "",
            )
        )
    duck, jq = med("sql", "sql_duckdb", "wall_s"), med("sql", "sql_jq", "wall_s")
    r = duck / jq if duck and jq else None
    out.append(
        check(
            "sql grouped count faster than jq over the same lines",
            r,
            r is not None and r < 1,
            f"{r:.2f}x jq's time ({duck:.2f} s vs {jq:.2f} s)" if r else "",
        )
    )
    full = (med("report", "report", "lines") or 0) >= 1_000_000
    wall, peak = med("report", "report", "wall_s"), med("report", "report", "peak_rss_mb")
    out.append(
        check(
            "report of a 1M-line journal < 10 s",
            wall,
            (wall < 10) if full and wall is not None else None,
            f"{wall:.2f} s" + ("" if full else " (--quick size: no verdict)") if wall else "",
        )
    )
    out.append(
        check(
            "report of a 1M-line journal < 300 MB peak RSS",
            peak,
            (peak < 300) if full and peak is not None else None,
            f"{peak:.0f} MB" + ("" if full else " (--quick size: no verdict)") if peak else "",
        )
    )
    prove_ms = med("seals", "prove", "prove_ms_max")
    out.append(
        check(
            "seals: a proof of one line of a 10M-line journal in < 1 s",
            prove_ms,
            prove_ms is not None and prove_ms < 1000,
            f"{prove_ms:.0f} ms" if prove_ms is not None else "",
        )
    )
    check_ms = med("seals", "prove", "check_ms_median")
    out.append(
        check(
            "seals: check_proof < 10 ms",
            check_ms,
            check_ms is not None and check_ms < 10,
            f"{check_ms:.2f} ms" if check_ms is not None else "",
        )
    )
    rss = med("memory", "rss", "peak_rss_mb")
    out.append(
        check(
            "peak RSS < 200 MB (10M records)",
            rss,
            rss is not None and rss < 200,
            f"{rss:.0f} MB" if rss else "",
        )
    )
    return out


# --------------------------------------------------------------------------- main


def _load(load: tuple[float, float, float] | None) -> str:
    return "-" if load is None else f"{load[0]:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and 2 rounds: a smoke test under a minute"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds of every scenario (default 5, --quick 2)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for the JSON results (default benchmarks/results/)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted([*FAMILIES, *SUITES]),
        default=None,
        help="run only this scenario family (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the interleaving order")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    families = args.only or [*FAMILIES, *SUITES]
    out_dir = args.out.resolve()

    results: dict[tuple[str, str], Result] = {}
    for family in FAMILIES:
        for case, label in FAMILIES[family]:
            results[(family, case)] = Result(family, case, label)
            if family not in families:
                results[(family, case)].skipped = "not selected (--only)"
            elif args.quick and (family, case) in QUICK_SKIP:
                results[(family, case)].skipped = "not in --quick"

    def runnable(r: Result) -> bool:
        return r.skipped is None and r.error is None

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    started = time.perf_counter()
    rng = random.Random(args.seed)
    shared = tempfile.mkdtemp(prefix="bench-shared-")
    repeated = [r for r in results.values() if r.family != "memory"]
    for n in range(1, rounds + 1):
        order = [r for r in repeated if runnable(r)]
        rng.shuffle(order)
        for r in order:
            print(
                f"[round {n}/{rounds} {time.perf_counter() - started:6.1f}s] {r.family}/{r.case}",
                file=sys.stderr,
                flush=True,
            )
            run_child(r, args.quick, shared)
    for r in results.values():
        if r.family == "memory" and runnable(r):
            print(
                f"[once {time.perf_counter() - started:6.1f}s] memory/{r.case}",
                file=sys.stderr,
                flush=True,
            )
            run_child(r, args.quick, shared)
    elapsed = time.perf_counter() - started
    shutil.rmtree(shared, ignore_errors=True)
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None

    text, targets = report(results)
    now = dt.datetime.now(dt.timezone.utc)
    env = machine()
    header = (
        f"audit_logging benchmarks, {now:%Y-%m-%d}, {'quick' if args.quick else 'full'}, "
        f"{rounds} rounds, {elapsed:.0f} s\n{env['cpu']} x{env['cpu_count']}, "
        f"{env['platform']}, Python {env['python']}, load average before/after "
        f"{_load(load_before)} / {_load(load_after)} (other work on the machine skews "
        "every figure; compare ratios)\n"
    )
    spent: dict[str, float] = {}
    for r in results.values():
        spent[r.family] = spent.get(r.family, 0.0) + sum(r.seconds)
    header += "seconds per family: " + ", ".join(f"{f} {t:.0f}" for f, t in spent.items()) + "\n"
    print(header)
    print(text)
    suite_failures = run_suites([name for name in SUITES if name in families], args.quick)

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{now:%Y%m%dT%H%M%SZ}{'-quick' if args.quick else ''}.json"
    document = {
        "date": now.isoformat(),
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "elapsed_s": elapsed,
        "machine": env,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "packages": packages(),
        "results": [
            {
                "family": r.family,
                "case": r.case,
                "label": r.label,
                "skipped": r.skipped,
                "error": r.error,
                "notes": r.notes,
                "summary": r.summary(),
                "rounds": r.rounds,
                "seconds": r.seconds,
            }
            for r in results.values()
        ],
        "targets": targets,
        "table": text,
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults: {path}")
    errors = [r for r in results.values() if r.error]
    for r in errors:
        print(f"ERROR in {r.family}/{r.case}: {r.error}", file=sys.stderr)
    for name in suite_failures:
        print(f"ERROR in suite {name}", file=sys.stderr)
    return 1 if errors or suite_failures else 0


def run_suites(names: list[str], quick: bool) -> list[str]:
    """Run each suite of ``names`` in its own process, its output printed as it comes."""
    failed = []
    for name in names:
        module, heading = SUITES[name]
        print(f"\n### {heading} (python -m {module}{' --quick' if quick else ''})\n", flush=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", module, *(["--quick"] if quick else [])]
        if subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode != 0:
            failed.append(name)
    return failed


if __name__ == "__main__":
    sys.exit(main())
