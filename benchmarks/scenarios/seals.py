"""Scenario: seals. The tree's cost per line, a proof of one line of a long journal, verify.

Cases (``python -m benchmarks.scenarios.seals CASE [--quick] [--dir D] [--shared S]``):

* ``tree``: microseconds per line of keeping the RFC 6962 tree as a writer does
  (``TreeState.extend_lines``, batches of 100 journal-sized lines), beside the
  chain's own SHA-256 per line (``Hasher.link``), in one process.
* ``prove``: a journal of 10 M lines (200 k with ``--quick``; short lines, the
  proof reads only two runs of 256 of them) with its tiles kept as a writer
  keeps them, one Ed25519 seal; then the wall time of ``prove()`` of a line
  (a fresh reader each time, as the command does) and of ``check_proof()``.
* ``verify``: lines per second of ``verify_journal_seals`` over that journal.

The journal is built once per benchmark run in the run's shared folder.
"""

from __future__ import annotations

import json
import os
import random
import time

from benchmarks import harness

FULL = 10_000_000
QUICK = 200_000


def _tree(n: int) -> dict[str, float]:
    from audit_logging.chain import GENESIS, Hasher
    from audit_logging.seals.merkle import TreeState

    line = json.dumps({"timestamp": "2026-05-27T14:30:00.123456Z", **harness.PAYLOAD}).encode()
    batches = [[line] * 100 for _ in range(n // 100)]
    state = TreeState(keep_tiles=True)
    t0 = time.perf_counter()
    for batch in batches:
        state.extend_lines(batch)
        state.tiles.clear()
    tree_s = time.perf_counter() - t0
    hasher = Hasher()
    prev = GENESIS.encode()
    t0 = time.perf_counter()
    for batch in batches:
        for x in batch:
            prev = hasher.link(prev, x)
    chain_s = time.perf_counter() - t0
    return {"tree_us_per_line": tree_s / n * 1e6, "chain_us_per_line": chain_s / n * 1e6}


def _journal(directory: str, n: int) -> tuple[str, str]:
    """A journal of ``n`` lines with its tiles and one seal; returns (journal, public key string)."""
    from audit_logging.seals.keys import load_signer
    from audit_logging.seals.sealer import JournalSealer

    journal = os.path.join(directory, f"seals-{n}.jsonl")
    key = os.path.join(directory, f"seals-{n}.key")
    marker = journal + ".complete"
    if not os.path.exists(marker):
        from audit_logging.seals.note import Signer

        signer = Signer.from_seed("audit-logging.example/bench", os.urandom(32))
        with open(key, "w") as f:
            f.write(signer.key_string())
        open(journal, "wb").close()
        sealer = JournalSealer(journal, signer=signer)
        size = 0
        with open(journal, "ab") as f:
            for start in range(0, n, 100_000):
                lines = [
                    b'{"seq":%d,"event":"TRAINING_PROGRESS"}' % i
                    for i in range(start, min(n, start + 100_000))
                ]
                data = b"".join(x + b"\n" for x in lines)
                f.write(data)
                size += len(data)
                sealer.append(lines, size)
                sealer.tree.flush()
        sealer.seal()
        open(marker, "w").close()
    return journal, load_signer(key).verifier().key_string()


def main() -> None:
    args = harness.child_args(__doc__ or "")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        harness.emit(skipped='needs the sign extra: pip install "audit-logging[sign]"')
        return
    n = QUICK if args.quick else FULL
    if args.case == "tree":
        harness.emit(_tree(20_000 if args.quick else 500_000))
        return
    from audit_logging.seals.keys import load_verifiers
    from audit_logging.seals.proofs import check_proof, prove
    from audit_logging.seals.verify import verify_journal_seals

    journal, vkey = _journal(args.shared or args.dir, n)
    verifiers = load_verifiers(vkey)
    if args.case == "prove":
        rng = random.Random(7)
        prove_s, check_s = [], []
        for index in [rng.randrange(n) for _ in range(5)] + [n - 1]:
            t0 = time.perf_counter()
            bundle = prove(journal, index)
            prove_s.append(time.perf_counter() - t0)
            text = json.dumps(bundle)
            t0 = time.perf_counter()
            check_proof(text, verifiers)
            check_s.append(time.perf_counter() - t0)
        harness.emit(
            {
                "lines": n,
                "prove_ms_max": max(prove_s) * 1e3,
                "prove_ms_median": sorted(prove_s)[len(prove_s) // 2] * 1e3,
                "check_ms_max": max(check_s) * 1e3,  # the first includes importing cryptography
                "check_ms_median": sorted(check_s)[len(check_s) // 2] * 1e3,
                "bundle_bytes": len(text),
            }
        )
    elif args.case == "verify":
        t0 = time.perf_counter()
        report = verify_journal_seals(journal, verifiers=verifiers)
        elapsed = time.perf_counter() - t0
        notes = [] if report.ok else [str(p) for p in report.problems[:3]]
        harness.emit({"lines_per_s": n / elapsed, "lines": n, "wall_s": elapsed}, notes)
    else:
        harness.emit(skipped=f"unknown case {args.case}")


if __name__ == "__main__":
    main()
