"""Commit history: walking a repository's commits with pygit2.

Indexing is incremental: the repository's meta document remembers the commit the last walk
started from, and the next walk stops where that one began (libgit2's revwalk hides it and
its ancestors). Commits come in batches, so a history of any length is never held whole.
A rewritten history (the old tip is no longer an ancestor) is indexed again from scratch.

The functions block (pygit2): callers run them in a thread. pygit2 errors leave this module
as RepoError.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import attrs
import pygit2

from codeweir.embedded_text import commit_text, content_hash
from codeweir.errors import RepoError
from codeweir.git.repo import open_repository, resolve_ref, where
from codeweir.git.worktree import path_name
from codeweir.records import CommitRecord

if TYPE_CHECKING:
    from codeweir.config import RepoConfig

BATCH = 500  # commits per batch sent to the writer
MAX_PATHS = 1000  # changed paths kept per commit: a mass import names them all otherwise
META_KEY = "commits"  # in the repository's meta document: the tip the last walk started from


@attrs.frozen
class WalkPlan:
    head: str  # the commit to walk from; "" for an unborn branch
    since: str | None  # stop at this commit and its ancestors; None: walk everything
    rewritten: bool  # the indexed history is not an ancestor of head: drop it first


def plan_walk(repo: RepoConfig, indexed_tip: str | None) -> WalkPlan:
    """What to walk, given the tip the last walk of `repo` started from."""
    git = open_repository(repo)
    head = resolve_ref(repo, git)
    if not head or not indexed_tip or head == indexed_tip:
        return WalkPlan(head, indexed_tip if head == indexed_tip else None, False)
    try:
        descends = git.descendant_of(pygit2.Oid(hex=head), pygit2.Oid(hex=indexed_tip))
    except (KeyError, ValueError, pygit2.GitError):  # the old tip is gone (rewritten, then pruned)
        descends = False
    return WalkPlan(head, indexed_tip if descends else None, not descends)


def walk_commits(
    repo: RepoConfig, head: str, since: str | None, batch: int = BATCH, *, hide: tuple[str, ...] = ()
) -> Iterator[list[CommitRecord]]:
    """Commits reachable from `head` but not from `since` nor from those of `hide` that exist
    still, newest first, `batch` at a time."""
    if not head:
        return
    git = open_repository(repo)
    try:
        walker = git.walk(pygit2.Oid(hex=head))
        if since:
            walker.hide(pygit2.Oid(hex=since))
        for tip in hide:
            if git.get(tip) is not None:
                walker.hide(pygit2.Oid(hex=tip))
        records: list[CommitRecord] = []
        for commit in walker:
            records.append(_record(git, commit))
            if len(records) >= batch:
                yield records
                records = []
        if records:
            yield records
    except pygit2.GitError as exc:
        raise RepoError(f"{where(repo)}: walking commits: {exc}") from None


def _record(git: pygit2.Repository, commit: pygit2.Commit) -> CommitRecord:
    author = commit.author
    try:
        message = commit.message
    except (UnicodeDecodeError, LookupError):  # a wrong or unknown encoding header
        message = commit.raw_message.decode("utf-8", "replace")
    message = message.strip()
    return CommitRecord(
        sha=str(commit.id),
        author=f"{author.name} <{author.email}>",
        date=author.time,
        message=message,
        paths=_changed_paths(git, commit),
        content_hash=content_hash(commit_text(message)),
    )


def _changed_paths(git: pygit2.Repository, commit: pygit2.Commit) -> tuple[str, ...]:
    """Paths changed against the first parent (a merge: what it brought in); all, for a root."""
    if commit.parents:
        diff = git.diff(commit.parents[0].tree, commit.tree)  # type: ignore[call-overload]  # trees diff too; the stubs omit it
    else:
        diff = commit.tree.diff_to_tree(swap=True)
    paths = []
    for delta in diff.deltas:
        paths.append(path_name(delta.new_file.raw_path))
        if len(paths) >= MAX_PATHS:
            break
    return tuple(paths)


_REACH_CACHE_SIZE = 16  # sets of commits kept, per (repository, tips, hidden tips)
_reach_cache: OrderedDict[tuple[str, frozenset[str], frozenset[str]], frozenset[str]] = OrderedDict()
_reach_lock = threading.Lock()


def reachable_only_from(repo: RepoConfig, tips: Iterable[str], hidden: Iterable[str]) -> frozenset[str]:
    """The commits reachable from `tips` but from none of `hidden` (ids; a tip that no longer
    exists is passed over), cached per set of tips: what a search of the views at `hidden`
    leaves out of the history the views at `tips` add."""
    key = (repo.path, frozenset(t for t in tips if t), frozenset(h for h in hidden if h))
    with _reach_lock:
        if (cached := _reach_cache.get(key)) is not None:
            _reach_cache.move_to_end(key)
            return cached
    found = _walk_ids(repo, key[1], key[2])
    with _reach_lock:
        _reach_cache[key] = found
        while len(_reach_cache) > _REACH_CACHE_SIZE:
            _reach_cache.popitem(last=False)
    return found


def _walk_ids(repo: RepoConfig, tips: frozenset[str], hidden: frozenset[str]) -> frozenset[str]:
    if not tips:
        return frozenset()
    git = open_repository(repo)
    try:
        walker = git.walk(None)
        pushed = False
        for tip in sorted(tips):
            if git.get(tip) is not None:
                walker.push(pygit2.Oid(hex=tip))
                pushed = True
        if not pushed:
            return frozenset()
        for tip in sorted(hidden):
            if git.get(tip) is not None:
                walker.hide(pygit2.Oid(hex=tip))
        return frozenset(str(commit.id) for commit in walker)
    except (ValueError, pygit2.GitError) as exc:
        raise RepoError(f"{where(repo)}: walking commits: {exc}") from None
