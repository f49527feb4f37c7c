"""``HEAD`` of the repository holding the working directory, read with gitpython, cached.

For the warning writer's ``git_commit``: a few lines of gitpython rather than
a call into :mod:`audit_logging.probes` (writers import nothing above the
record layer). ``None`` when gitpython is not installed, outside a
repository, or before its first commit.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Final

from audit_logging._optional import available

__all__ = ["COMMIT_TTL", "current_commit"]

#: Seconds a looked-up ``HEAD`` commit is reused before it is read again.
COMMIT_TTL: Final = 30.0


_commit_cache: dict[str, tuple[float, str | None]] = {}
_commit_lock = threading.Lock()


def current_commit(path: str | None = None) -> str | None:
    """``HEAD`` of the repository holding ``path`` (the working directory), or ``None``.

    ``None`` when gitpython is not installed, ``path`` is not in a repository,
    or the repository has no commit yet. Cached for :data:`COMMIT_TTL` seconds.
    """
    key = os.path.abspath(path if path is not None else os.curdir)
    now = time.monotonic()
    with _commit_lock:
        cached = _commit_cache.get(key)
        if cached is not None and now - cached[0] < COMMIT_TTL:
            return cached[1]
    commit = _read_head(key)
    with _commit_lock:
        _commit_cache[key] = (now, commit)
    return commit


def _read_head(path: str) -> str | None:
    if not available("git"):
        return None
    # Without a git binary, importing gitpython raises unless told to stay quiet;
    # reading HEAD needs no binary.
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    try:
        import git

        with git.Repo(path, search_parent_directories=True) as repo:
            return str(repo.head.commit.hexsha)
    except Exception:  # not a repository, no commits, unreadable: no commit to report
        return None
