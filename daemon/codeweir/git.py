"""pygit2 adapter: the files of a repository (worktree or a ref) with their git blob ids.

Every function blocks; callers run them in a thread. pygit2 and OS errors leave this module as
RepoError (naming the repository) or FileSkipped (one file).
"""

from __future__ import annotations

from pathlib import Path

import pygit2


def find_repository_root(path: Path) -> Path | None:
    """The worktree root of the repository containing `path` (a bare one's own directory), or None."""
    try:
        git_dir = pygit2.discover_repository(str(path))
        if git_dir is None:
            return None
        repo = pygit2.Repository(git_dir)
    except (pygit2.GitError, OSError):
        return None
    return Path(repo.workdir or repo.path).resolve()
