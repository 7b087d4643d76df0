"""Whether a hit's file still holds what was indexed: its current blob id against the indexed one.

Only the files of the hits returned are checked. A worktree file is stat'ed, and hashed only
when its stat signature is new (a small cache keeps the ids of files seen unchanged), opened
beneath the worktree's root with no symlink followed (git/worktree.py, which also turns the
paths' names back into git's bytes); a bare repository's (or a configured ref's) file is looked
up in the ref's tree. A file seen through one of the repository's refs (a view other than the
main one) is looked up in the tree that ref points at now. Blocking: callers run it in a
thread. pygit2 errors leave as RepoError.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pygit2

from codeweir.errors import RepoError
from codeweir.git.repo import REF_SPACES, open_repository, resolve_commit, where
from codeweir.git.worktree import git_str, open_beneath, read_fd, stat_beneath

if TYPE_CHECKING:
    from codeweir.config import RepoConfig

CACHE_SIZE = 8192  # worktree files whose blob id is remembered by stat signature

_blob_by_signature: OrderedDict[tuple, str] = OrderedDict()


def stale_paths(repo: RepoConfig, indexed: Mapping[str, str], view: str = "") -> set[str]:
    """The paths of `indexed` (path -> indexed blob id) whose current content differs, or is
    gone: in the repository's worktree (or its ref), or with `view`, a ref's short name, in the
    tree that ref points at now (every path, when it names no commit any more)."""
    if not indexed:
        return set()
    root = Path(repo.path)
    current: Mapping[str, str | None]
    if view:
        current = _view_blobs(repo, view, indexed)
    elif repo.ref or not (root / ".git").exists():
        current = _ref_blobs(repo, indexed)
    else:
        current = {path: _worktree_blob(repo.path, path) for path in indexed}
    return {path for path, blob in indexed.items() if current.get(path) != blob}


def _worktree_blob(root: str, path: str) -> str | None:
    """The blob id of the regular file at `path` (a name) beneath `root`; None for anything else."""
    try:
        held = stat_beneath(root, path)  # a file seen unchanged: known without giving the GIL up
    except OSError:
        return None
    if held is not None:
        if not stat.S_ISREG(held[0]):
            return None
        signature = (root, path, *held[1:])
        if (blob := _blob_by_signature.get(signature)) is not None:
            _blob_by_signature.move_to_end(signature)
            return blob
    try:
        fd = open_beneath(root, path)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        signature = (root, path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        blob = _blob_by_signature.get(signature)
        if blob is not None:
            _blob_by_signature.move_to_end(signature)
            return blob
        blob = str(pygit2.hash(read_fd(fd)))
    except OSError:
        return None
    finally:
        os.close(fd)
    _blob_by_signature[signature] = blob
    if len(_blob_by_signature) > CACHE_SIZE:
        _blob_by_signature.popitem(last=False)
    return blob


def _ref_blobs(repo: RepoConfig, paths: Mapping[str, str]) -> dict[str, str]:
    git = open_repository(repo)
    return _tree_blobs(repo, resolve_commit(repo, git), paths)


def _view_blobs(repo: RepoConfig, view: str, paths: Mapping[str, str]) -> dict[str, str]:
    git = open_repository(repo)
    commit = None
    try:
        for space in REF_SPACES:
            ref = git.references.get(space + view)
            if ref is not None:
                commit = ref.peel(pygit2.Commit)
                break
    except (KeyError, ValueError):  # a ref to something that is not a commit-ish: no files
        commit = None
    except pygit2.GitError as exc:
        raise RepoError(f"{where(repo)}: ref {view!r} cannot be read: {exc}") from None
    return _tree_blobs(repo, commit, paths)


def _tree_blobs(repo: RepoConfig, commit: pygit2.Commit | None, paths: Mapping[str, str]) -> dict[str, str]:
    """path -> blob id at each of `paths` in `commit`'s tree (none for None: an unborn HEAD, a
    ref gone)."""
    if commit is None:
        return {}
    current = {}
    try:
        tree = commit.tree
        for path in paths:
            try:
                current[path] = str(tree[git_str(path)].id)
            except KeyError:  # deleted from the ref since
                pass
    except pygit2.GitError as exc:
        raise RepoError(f"{where(repo)}: {exc}") from None
    return current
