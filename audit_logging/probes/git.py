"""check_git(): is this training run reproducible from a commit? Logs ``dirty_git`` if not.

Read with gitpython (the ``git`` extra): ``HEAD``, the branch (or a detached
head), and ``git status --porcelain -z --untracked-files=all`` for changed
and untracked files, run with ``GIT_OPTIONAL_LOCKS=0`` so that probing never
takes the index lock a concurrent ``git`` command of the user may need.

Untracked files count as dirty: a new module that was never committed makes
a run as irreproducible as an edited one. Ignored files do not count. Paths
under ``ignore_paths`` (default ``training_logs/``, where the persistent
warnings themselves are written to be committed later) do not count either,
or every run would report the previous run's warnings as uncommitted changes.

The fingerprint is SHA-256 over the commit, the binary diff of the working
tree against ``HEAD`` and the sorted untracked names: the same state gives
the same fingerprint (and the same file name suffix), a new edit a new one.

The warning goes to ``logger``, by default ``logging.getLogger("audit_logging.probes")``:
a child of ``audit_logging``, so it propagates to the root logger that
:func:`audit_logging.configure` sets up, and can be silenced or routed by name.

Never raises: any failure (no gitpython, no ``git`` binary, not a repository,
no commit yet, a git command failing or timing out) is returned in ``reason``
and logs nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["DIRTY_GIT_RECOMMENDATION", "GitStatus", "check_git"]

#: The recommendation written with each ``dirty_git`` warning.
DIRTY_GIT_RECOMMENDATION: Final = (
    "Commit changes before production runs, so that the run can be reproduced from its commit"
)
_LOGGER_NAME: Final = "audit_logging.probes"
_GIT_TIMEOUT: Final = 20.0  # seconds; a huge working tree on a slow disk, not a hang
_MAX_LISTED: Final = 200  # file names written into one warning


@dataclass(frozen=True)
class GitStatus:
    """What :func:`check_git` found. ``reason`` says why a field is unknown."""

    available: bool
    is_repo: bool = False
    commit: str | None = None
    branch: str | None = None
    detached: bool = False
    dirty: bool = False
    changed_files: tuple[str, ...] = ()
    untracked_files: tuple[str, ...] = ()
    fingerprint: str | None = None
    reason: str | None = None


def _git_executable() -> str | None:
    return shutil.which(os.environ.get("GIT_PYTHON_GIT_EXECUTABLE") or "git")


def parse_porcelain(output: str) -> tuple[list[str], list[str]]:
    """(changed, untracked) paths from ``git status --porcelain=v1 -z`` output."""
    changed: list[str] = []
    untracked: list[str] = []
    fields = output.split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code == "??":
            untracked.append(path)
        elif code != "!!":
            changed.append(path)
            if "R" in code or "C" in code:
                i += 1  # a rename or copy is followed by its source path
    return changed, untracked


def check_git(
    path: str | os.PathLike[str] = ".",
    logger: logging.Logger | None = None,
    *,
    ignore_paths: Iterable[str] = ("training_logs/",),
    warn: bool = True,
) -> GitStatus:
    """Inspect the repository holding ``path``; log ``dirty_git`` when it has uncommitted changes.

    ``warn=False`` only inspects. Returns a :class:`GitStatus`; never raises.
    """
    try:
        status = _inspect(os.fspath(path), tuple(ignore_paths))
    except Exception as exc:  # never raise into the training script
        return GitStatus(available=True, reason=f"{type(exc).__name__}: {exc}"[:300])
    if status.dirty and warn:
        _log_dirty(status, os.fspath(path), logger or logging.getLogger(_LOGGER_NAME))
    return status


def _inspect(path: str, ignore: tuple[str, ...]) -> GitStatus:
    if importlib.util.find_spec("git") is None:
        return GitStatus(available=False, reason="gitpython is not installed (extra 'git')")
    if _git_executable() is None:
        return GitStatus(available=False, reason="no git executable found on PATH")
    # gitpython refuses to import without a git binary unless told to stay quiet.
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    import git

    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        return GitStatus(available=True, reason=f"not a git repository: {exc}"[:300])
    with repo:
        if not repo.head.is_valid():
            return GitStatus(available=True, is_repo=True, reason="repository has no commits yet")
        commit = str(repo.head.commit.hexsha)
        detached = bool(repo.head.is_detached)
        branch = None if detached else str(repo.active_branch.name)
        with repo.git.custom_environment(GIT_OPTIONAL_LOCKS="0"):
            porcelain = repo.git.status(
                "--porcelain=v1", "-z", "--untracked-files=all", kill_after_timeout=_GIT_TIMEOUT
            )
            changed, untracked = parse_porcelain(porcelain)
            changed = [p for p in changed if not p.startswith(ignore)]
            untracked = sorted(p for p in untracked if not p.startswith(ignore))
            fingerprint = None
            if changed or untracked:
                diff = repo.git.diff(
                    "HEAD",
                    "--binary",
                    "--no-ext-diff",
                    "--no-textconv",
                    "--",
                    ".",
                    *(f":(exclude){p}" for p in ignore),
                    kill_after_timeout=_GIT_TIMEOUT,
                    strip_newline_in_stdout=False,
                )
                h = hashlib.sha256()
                h.update(commit.encode())
                h.update(b"\0")
                h.update(diff.encode("utf-8", "surrogateescape"))
                for name in untracked:
                    h.update(b"\0" + name.encode("utf-8", "surrogateescape"))
                fingerprint = h.hexdigest()
    return GitStatus(
        available=True,
        is_repo=True,
        commit=commit,
        branch=branch,
        detached=detached,
        dirty=bool(changed or untracked),
        changed_files=tuple(changed),
        untracked_files=tuple(untracked),
        fingerprint=fingerprint,
    )


def _log_dirty(status: GitStatus, path: str, logger: logging.Logger) -> None:
    details: dict[str, Any] = {
        "path": os.path.abspath(path),
        "branch": status.branch,
        "detached": status.detached,
        "changed_count": len(status.changed_files),
        "untracked_count": len(status.untracked_files),
        "changed_files": list(status.changed_files[:_MAX_LISTED]),
        "untracked_files": list(status.untracked_files[:_MAX_LISTED]),
    }
    try:
        logger.warning(
            "Training with uncommitted changes (%d changed, %d untracked files)",
            len(status.changed_files),
            len(status.untracked_files),
            extra={
                "warning_type": "dirty_git",
                "details": details,
                "fingerprint": status.fingerprint,
                "git_commit": status.commit,
                "recommendation": DIRTY_GIT_RECOMMENDATION,
            },
        )
    except Exception:
        pass  # a broken handler set-up must not stop the run
