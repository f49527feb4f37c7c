"""Checking a journal against its seals: what each seal proves, and what no seal covers.

For each seal (``<journal>.seals/<period>.note``), smallest tree first:

- its signatures: with Ed25519 verifiers, one of them must have signed; with a
  forward-secure verification key, the key of the epoch the seal states
  (``fss-epoch``) must have signed, that epoch derived from ``K_0`` and no
  other, and no seal may state an epoch after the present's;
- its tree: the root of the journal's first ``size`` lines must be the one
  signed (lines edited, removed, inserted or reordered change it);
- forward-secure epochs never go back as seals grow, and every line is sealed
  by a seal of its own epoch or, for a line of the last ``grace`` seconds of
  an epoch, the next one. A host taken over in epoch ``t`` holds only ``K_t``:
  rewriting an older line means re-sealing it with an older epoch's key,
  which it cannot do, whether the old seals are kept (their roots no longer
  match), rewritten (their signatures fail) or deleted (the lines are then
  sealed too late).

Lines after the last seal are counted as unsealed: not proven, not accused.
"""

from __future__ import annotations

import calendar
import itertools
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_logging._verdicts import Problem, Unproven
from audit_logging.seals.checkpoint import Checkpoint, read_checkpoint
from audit_logging.seals.forward import VerificationKey
from audit_logging.seals.merkle import TreeState
from audit_logging.seals.note import NoteError, Verifier, open_note
from audit_logging.seals.sealer import list_seals

__all__ = [
    "DEFAULT_GRACE",
    "Problem",
    "SealChecker",
    "SealReport",
    "Unproven",
    "check_catalogue",
    "verify_journal_seals",
    "verify_since",
]

#: A line may be sealed by the next epoch's key if written this close to its epoch's end.
DEFAULT_GRACE = 60.0
_Report = Callable[..., None]
_TIMESTAMP = re.compile(rb'"timestamp":\s*"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z?"')


@dataclass
class SealReport:
    """The seals of one journal: how many held, lines sealed and unsealed, problems."""

    journal: str
    seals: int = 0
    lines: int = 0
    sealed_lines: int = 0
    bytes: int = 0
    sealed_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    last: Checkpoint | None = None

    @property
    def unsealed_lines(self) -> int:
        return self.lines - self.sealed_lines

    @property
    def unsealed_bytes(self) -> int:
        return self.bytes - self.sealed_bytes

    @property
    def ok(self) -> bool:
        return not self.problems


def _line_time(line: bytes, cache: dict[bytes, float]) -> float | None:
    m = _TIMESTAMP.search(line, 0, 200) or _TIMESTAMP.search(line)
    if m is None:
        return None
    whole = m.group(1)
    t = cache.get(whole)
    if t is None:
        t = float(calendar.timegm(time.strptime(whole.decode("ascii"), "%Y-%m-%dT%H:%M:%S")))
        cache[whole] = t
    frac = m.group(2)
    return t + float(frac) if frac else t


class SealChecker:
    """Checks one journal's lines against its seals as they are fed, in a single pass.

    A reader that already goes through the journal (``verify``'s chain check)
    feeds it the lines it reads (:meth:`feed`) and calls :meth:`finish`;
    :func:`verify_journal_seals` does the reading itself. The seals' signatures are
    checked when the checker is made.
    """

    def __init__(
        self,
        journal: str | os.PathLike[str],
        *,
        verifiers: Iterable[Verifier] = (),
        verification_key: VerificationKey | None = None,
        grace: float = DEFAULT_GRACE,
        now: float | None = None,
    ) -> None:
        self.journal = Path(journal)
        self.name = str(self.journal)
        self.report = SealReport(self.name)
        self.vk = verification_key
        self.grace = grace
        static = list(verifiers)
        now = time.time() if now is None else now
        read: list[tuple[Checkpoint, bytes, str]] = []
        for _, path in list_seals(journal):
            data = path.read_bytes()
            try:
                read.append((read_checkpoint(data), data, str(path)))
            except NoteError as exc:
                self._problem(None, "seal-malformed", f"not a signed checkpoint: {exc}", str(path))
        epoch_keys: dict[int, Verifier] = {}
        if verification_key is not None:
            last_epoch = verification_key.epoch_at(now) + 1
            wanted = {
                cp.epoch for cp, _, _ in read if cp.epoch is not None and cp.epoch <= last_epoch
            }
            epoch_keys = verification_key.verifiers(wanted)  # one pass from K_0
        seals: list[Checkpoint] = []
        for cp, data, where in sorted(read, key=lambda r: r[0].size):
            signed = _signed(cp, data, static, verification_key, epoch_keys, where, self._problem)
            if signed and (not seals or seals[-1].size != cp.size):
                seals.append(cp)
        self.seals = seals
        self.epochs_ok = True
        for before, after in itertools.pairwise(seals):
            if verification_key is not None and (after.epoch or 0) < (before.epoch or 0):
                self._problem(
                    after.size,
                    "seal-epoch",
                    f"the seal of {after.size} lines is of epoch {after.epoch}, "
                    f"before the epoch {before.epoch} of the seal of {before.size}",
                )
                self.epochs_ok = False
        self.state = TreeState()
        self._pending = iter(seals)
        self._target = next(self._pending, None)
        self._times: dict[bytes, float] = {}
        self._late: set[int] = set()
        self._bytes = self._sealed_bytes = 0

    def _problem(self, line: int | None, kind: str, message: str, where: str = "") -> None:
        self.report.problems.append(Problem(where or self.name, line, kind, message))

    def feed(self, lines: list[bytes]) -> None:
        """The journal's next whole lines, without their newlines, in file order."""
        state, i, n = self.state, 0, len(lines)
        while i < n:
            target = self._target
            if target is not None and target.size == state.size:
                if _compare(state, target, self._problem):
                    self._sealed_bytes = self._bytes
                self._target = next(self._pending, None)
                continue
            stop = n if target is None else min(n, i + target.size - state.size)
            if self.vk is not None and target is not None and self.epochs_ok:
                self._check_epochs(lines, i, stop, target)
            segment = lines[i:stop]
            state.extend_lines(segment)
            self._bytes += sum(map(len, segment)) + len(segment)
            i = stop

    def _check_epochs(self, lines: list[bytes], i: int, stop: int, target: Checkpoint) -> None:
        """Each line's seal must be of the line's epoch (or the next, within ``grace``)."""
        vk, epoch = self.vk, target.epoch
        if vk is None or epoch is None or target.size in self._late:
            return
        for k in range(i, stop):
            t = _line_time(lines[k], self._times)
            if t is not None and epoch > vk.epoch_at(t + self.grace):
                self._late.add(target.size)
                number = self.state.size + (k - i) + 1
                self._problem(
                    number,
                    "seal-epoch",
                    f"line {number} of epoch {vk.epoch_at(t)} is first sealed in epoch "
                    f"{epoch}: its own epoch's seals are missing",
                )
                return

    def finish(self) -> SealReport:
        """The report, once every line was fed: seals past the end name removed lines."""
        state = self.state
        target = self._target
        while target is not None:
            if target.size == state.size:
                if _compare(state, target, self._problem):
                    self._sealed_bytes = self._bytes
            else:
                self._problem(
                    state.size,
                    "seal-mismatch",
                    f"a seal covers {target.size} lines but the journal has {state.size}: "
                    "lines were removed",
                )
            target = next(self._pending, None)
        self._target = None
        report = self.report
        report.lines = state.size
        report.seals = len(self.seals)
        good = [cp for cp in self.seals if cp.size <= state.size]
        report.last = good[-1] if good else None
        report.sealed_lines = report.last.size if report.last else 0
        report.bytes, report.sealed_bytes = self._bytes, self._sealed_bytes
        return report


def verify_journal_seals(
    journal: str | os.PathLike[str],
    *,
    verifiers: Iterable[Verifier] = (),
    verification_key: VerificationKey | None = None,
    grace: float = DEFAULT_GRACE,
    now: float | None = None,
) -> SealReport:
    """Check every seal of ``journal`` and its lines against them (see the module's doc)."""
    checker = SealChecker(
        journal, verifiers=verifiers, verification_key=verification_key, grace=grace, now=now
    )
    rest = b""
    with open(journal, "rb") as f:
        while chunk := f.read(4 << 20):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()  # a line still being written is not a leaf yet
            checker.feed(lines)
    return checker.finish()


def _compare(state: TreeState, cp: Checkpoint, problem: _Report) -> bool:
    """Whether the tree so far is the one ``cp`` signed (a problem reported when not)."""
    if state.root() == cp.root:
        return True
    problem(
        cp.size,
        "seal-mismatch",
        f"the first {cp.size} lines are not those sealed: a line up to {cp.size} was changed",
    )
    return False


def _signed(
    cp: Checkpoint,
    data: bytes,
    static: list[Verifier],
    vk: VerificationKey | None,
    epoch_keys: dict[int, Verifier],
    where: str,
    problem: _Report,
) -> bool:
    """Whether the seal carries every signature the keys given demand (problems reported)."""
    wanted: list[tuple[str, list[Verifier]]] = []
    if static:
        wanted.append(("the public key", static))
    if vk is not None:
        epoch = cp.epoch
        if epoch is None:
            problem(
                None,
                "seal-forged",
                "no forward-secure epoch: not sealed by the forward-secure key",
                where,
            )
            return False
        if epoch not in epoch_keys:
            problem(None, "seal-epoch", f"a seal of epoch {epoch}, after the present one", where)
            return False
        wanted.append((f"epoch {epoch}'s forward-secure key", [epoch_keys[epoch]]))
    for label, keys in wanted:
        try:
            open_note(data, keys)
        except NoteError as exc:
            problem(None, "seal-forged", f"not signed by {label}: {exc}", where)
            return False
    return True


def verify_since(
    journal: str | os.PathLike[str],
    earlier: bytes | str,
    *,
    verifiers: Iterable[Verifier] = (),
    verification_key: VerificationKey | None = None,
) -> list[Problem]:
    """Check that the journal today extends an earlier signed checkpoint (RFC 6962 consistency).

    The earlier checkpoint's signature is checked first (by the keys given);
    then a consistency proof from its size to the journal's present tree is
    built from the tiles and verified against both roots, so nothing the
    earlier checkpoint covered was changed since. Returns the problems found.
    """
    from audit_logging.seals.merkle import MerkleError, verify_consistency
    from audit_logging.seals.tiles import TreeReader

    name = str(journal)
    static = list(verifiers)
    data = earlier.encode("utf-8") if isinstance(earlier, str) else earlier
    try:
        old = read_checkpoint(data)
    except NoteError as exc:
        return [Problem(name, None, "since-malformed", f"not a signed checkpoint: {exc}")]
    found: list[Problem] = []

    def problem(line: int | None, kind: str, message: str, where: str = name) -> None:
        found.append(Problem(where, line, kind, message))

    keys: dict[int, Verifier] = {}
    if verification_key is not None and old.epoch is not None:
        keys = verification_key.verifiers({old.epoch})
    if (static or verification_key is not None) and not _signed(
        old, data, static, verification_key, keys, "the earlier checkpoint", problem
    ):
        return found
    with TreeReader(journal, trust_tiles=False) as tree:  # the tiles file is not evidence
        if tree.size < old.size:
            problem(
                tree.size,
                "since-mismatch",
                f"the journal has {tree.size} lines, fewer than the {old.size} checkpointed",
            )
            return found
        try:
            proof = tree.consistency(old.size, tree.size)
            verify_consistency(old.size, tree.size, old.root, tree.root(tree.size), proof)
        except MerkleError as exc:
            problem(
                old.size,
                "since-mismatch",
                f"the journal does not extend the checkpoint of {old.size} lines: {exc}",
            )
    return found


def check_catalogue(
    seal_files: Iterable[Any],
    journals: Iterable[str | os.PathLike[str]],
    report: Any,
    *,
    public_key: Any = None,
    verification_key: Any = None,
    since: Any = None,
) -> None:
    """The read package's ``verify`` plug-in: every journal's seals, into its report.

    ``seal_files``: the catalogue's seal files (objects with ``.path``, or
    paths); ``journals``: the journals ``verify`` read; ``report``: its
    ``VerifyReport``, to which :class:`Problem` (kind ``seal``) and
    :class:`Unproven` entries are added (the read package's own types, from
    :mod:`audit_logging._verdicts`). ``public_key`` (PEM file or
    verifier key strings) and ``verification_key`` (forward-secure) name the
    keys that must have signed; with one given, a journal without seals is a
    problem and the lines after its last seal are unproven. Without a key, the
    seals' roots are still checked against the lines. ``since``: an earlier
    signed checkpoint (a file) that the journal of its origin must extend.
    """
    from audit_logging.seals.keys import load_verification_key, load_verifiers
    from audit_logging.seals.tiles import seals_dir

    verifiers = load_verifiers(public_key) if public_key is not None else []
    vk = load_verification_key(verification_key) if verification_key is not None else None
    keyed = bool(verifiers) or vk is not None
    paths = [Path(os.fspath(j)) for j in journals]
    sealed = set()
    for seal in seal_files:
        folder = Path(os.fspath(getattr(seal, "path", seal))).parent
        if folder.name.endswith(".jsonl.seals"):
            sealed.add(folder.with_name(folder.name[: -len(".seals")]))
    for journal in paths:
        name = str(journal)
        if journal not in sealed and not seals_dir(journal).is_dir():
            if keyed:
                report.problems.append(Problem(name, None, "seal", "no seal: not signed"))
            continue
        checked = verify_journal_seals(journal, verifiers=verifiers, verification_key=vk)
        for p in checked.problems:
            report.problems.append(Problem(p.path, p.line, "seal", f"{p.kind}: {p.message}"))
        if keyed and checked.unsealed_lines:
            report.unproven.append(
                Unproven(
                    name, checked.unsealed_bytes, checked.unsealed_lines, "after the last seal"
                )
            )
    for journal in sorted(sealed - set(paths)):
        if not journal.exists():
            message = "its seals are here but the journal is missing"
            report.problems.append(Problem(str(journal), None, "seal", message))
    if since is not None:
        data = Path(os.fspath(since)).read_bytes()
        origin = read_checkpoint(data).origin
        matches = [j for j in paths if origin.endswith("/" + j.name)]
        if not matches:
            report.problems.append(
                Problem(str(since), None, "seal", f"no journal of the checkpoint's {origin}")
            )
        for journal in matches:
            for p in verify_since(journal, data, verifiers=verifiers, verification_key=vk):
                report.problems.append(Problem(p.path, p.line, "seal", f"{p.kind}: {p.message}"))
