"""check_git(): is this training run reproducible from a commit? Logs ``dirty_git`` if not.

Read with gitpython (the ``git`` extra): ``HEAD``, the branch (or a detached
head), and ``git status --porcelain -z --untracked-files=all`` for changed
and untracked files, run with ``GIT_OPTIONAL_LOCKS=0`` so that probing never
takes the index lock a concurrent ``git`` command of the user may need.

Untracked files count as dirty: a new module that was never committed makes
a run as irreproducible as an edited one. Ignored files do not count. Paths
under ``ignore_paths`` (default ``training_logs/``, where the persistent
warnings themselves are written to be committed later) do not count either,
nor do the outputs of the logging handlers alive in this process (see
:func:`output_paths`: the journal folder of a ``JsonlHandler``, the
``audit_log.json`` / ``audit_log.csv`` of the array and CSV writers with the
files written beside them, a ``WarningFileHandler``'s folder, a
``logging.FileHandler``'s file), or the second run of a script would report
the first run's logs as uncommitted changes. What was ignored is returned in
``GitStatus.ignored_paths`` and written in the warning's ``details``.

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
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from audit_logging._optional import available

__all__ = ["DIRTY_GIT_RECOMMENDATION", "GitStatus", "check_git", "output_paths"]

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
    ignored_paths: tuple[str, ...] = ()


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


def _handler_outputs(handler: logging.Handler) -> Iterator[tuple[str, bool]]:
    """(path, is_folder) of what ``handler`` writes, read from its public attributes."""
    directory = getattr(handler, "directory", None)
    if isinstance(directory, (str, os.PathLike)):
        yield os.fspath(directory), True
    for attribute in ("path", "baseFilename"):
        path = getattr(handler, attribute, None)
        if isinstance(path, (str, os.PathLike)):
            path = os.fspath(path)
            yield path, False
            # What a file writer keeps beside its file: its hidden lock file
            # (".audit_log.json.lock"), its manifest and its rejects.
            folder, name = os.path.split(os.path.abspath(path))
            yield os.path.join(folder, "." + name), False
            yield os.path.join(folder, ".audit-manifest.jsonl"), False
            yield os.path.join(folder, "rejected-"), False


def output_paths() -> list[tuple[str, bool]]:
    """(absolute path, is_folder) written by the logging handlers alive in this process.

    Read from ``logging``'s own list of handlers (so the targets of an
    ``AuditQueueHandler`` set up by ``configure()`` or ``dictConfig`` are in it)
    by their ``directory``, ``path`` and ``baseFilename`` attributes; no writer
    is imported.
    """
    found: dict[str, bool] = {}
    for ref in list(getattr(logging, "_handlerList", [])):
        handler = ref() if callable(ref) else None
        if handler is None:
            continue
        try:
            for path, folder in _handler_outputs(handler):
                found[os.path.realpath(os.path.abspath(path))] = folder
        except Exception:
            continue  # a handler with odd attributes: skip it, not the probe
    return sorted(found.items())


def _in_repo(root: str, outputs: Iterable[tuple[str, bool]]) -> list[str]:
    """The outputs inside the working tree ``root``, as status prefixes (``logs/``)."""
    root = os.path.realpath(root)
    prefixes = []
    for path, folder in outputs:
        try:
            rel = os.path.relpath(path, root)
        except ValueError:  # another drive on Windows
            continue
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            continue  # the whole tree, or outside it
        rel = rel.replace(os.sep, "/")
        prefixes.append(rel + "/" if folder else rel)
    return prefixes


def check_git(
    path: str | os.PathLike[str] = ".",
    logger: logging.Logger | None = None,
    *,
    ignore_paths: Iterable[str] = ("training_logs/",),
    warn: bool = True,
) -> GitStatus:
    """Inspect the repository holding ``path``; log ``dirty_git`` when it has uncommitted changes.

    ``warn=False`` only inspects. The outputs of the live logging handlers
    inside the tree are ignored too (module docstring). Returns a
    :class:`GitStatus`; never raises.
    """
    try:
        status = _inspect(os.fspath(path), tuple(ignore_paths))
    except Exception as exc:  # never raise into the training script
        return GitStatus(available=True, reason=f"{type(exc).__name__}: {exc}"[:300])
    if status.dirty and warn:
        _log_dirty(status, os.fspath(path), logger or logging.getLogger(_LOGGER_NAME))
    return status


def _inspect(path: str, ignore: tuple[str, ...]) -> GitStatus:
    if not available("git"):
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
        if repo.working_tree_dir is not None:
            outputs = _in_repo(os.fspath(repo.working_tree_dir), output_paths())
            ignore = tuple(dict.fromkeys((*ignore, *outputs)))
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
        ignored_paths=ignore,
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
        # Not counted as changes: the given ignore_paths and this process's log outputs.
        "ignored_paths": list(status.ignored_paths[:_MAX_LISTED]),
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
