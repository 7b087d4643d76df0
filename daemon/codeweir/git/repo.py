"""pygit2 adapter: opening a configured repository and resolving its ref, with one wording per error.

Every repository open and ref resolution of codeweir goes through here. pygit2 and OS errors
leave as RepoError, each kind of failure in one wording:

    repository 'x' at /p: cannot open: no such directory
    repository 'x' at /p: cannot open: not a git repository
    repository 'x' at /p: cannot open: not the root of a git repository (the root is /q)
    repository 'x' at /p: cannot open: <what libgit2 or the OS says>
    repository 'x' at /p: ref 'main' does not name a commit
    repository 'x' at /p: ref 'main' cannot be read: <what libgit2 says>

Every function blocks; callers run them in a thread.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pygit2
from pygit2.enums import RepositoryOpenFlag

from codeweir.errors import RepoError
from codeweir.globs import name_regex

if TYPE_CHECKING:
    from codeweir.config import RepoConfig


def where(repo: RepoConfig) -> str:
    """How errors name a repository: "repository 'x' at /p"."""
    return f"repository {repo.name!r} at {repo.path}"


def open_repository(repo: RepoConfig) -> pygit2.Repository:
    """`repo`'s repository, opened at exactly its path (a worktree root or a bare repository's
    directory): no search upwards, so a subdirectory of a repository is refused, not widened."""
    path = Path(repo.path)
    if not path.exists():
        raise _cannot_open(repo, "no such directory")
    try:
        return pygit2.Repository(str(path), RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError as exc:
        raise _cannot_open(repo, _why_not_a_repository(path, exc)) from None
    except OSError as exc:
        raise _cannot_open(repo, exc.strerror or str(exc)) from None


_open_repositories = threading.local()


def cached_repository(repo: RepoConfig) -> pygit2.Repository:
    """`repo`'s repository, opened once per thread and path: libgit2 objects are not shared
    across threads, opening a repository for every file read would dominate reading small
    blobs, and a kept one keeps its parsed index and ignore rules between scans. A repository
    replaced at the same path (its git directory has another inode) is opened again."""
    cache: dict[str, tuple[pygit2.Repository, int]] = _open_repositories.__dict__.setdefault("by_path", {})
    if cached := cache.get(repo.path):
        git, inode = cached
        try:
            if os.stat(git.path).st_ino == inode:
                return git
        except OSError:
            pass
    git = open_repository(repo)
    try:
        cache[repo.path] = (git, os.stat(git.path).st_ino)
    except OSError as exc:
        raise _cannot_open(repo, exc.strerror or str(exc)) from None
    return git


def resolve_commit(repo: RepoConfig, git: pygit2.Repository) -> pygit2.Commit | None:
    """The commit `repo`'s ref (HEAD when none is configured) names; None for an unborn HEAD."""
    name = repo.ref or "HEAD"
    try:
        if name == "HEAD" and git.head_is_unborn:
            return None
        return git.revparse_single(name).peel(pygit2.Commit)
    except (KeyError, ValueError):  # no such ref or object, not a revision, not a commit-ish
        raise RepoError(f"{where(repo)}: ref {name!r} does not name a commit") from None
    except pygit2.GitError as exc:  # a ref or object that cannot be read
        raise RepoError(f"{where(repo)}: ref {name!r} cannot be read: {exc}") from None


def resolve_ref(repo: RepoConfig, git: pygit2.Repository | None = None) -> str:
    """The id of the commit `repo`'s ref names; "" for an unborn HEAD. Opens `repo` unless given it."""
    commit = resolve_commit(repo, git if git is not None else open_repository(repo))
    return "" if commit is None else str(commit.id)


def find_repository_root(path: Path) -> Path | None:
    """The worktree root of the repository containing `path` (a bare one's own directory), or None."""
    try:
        git_dir = pygit2.discover_repository(str(path))
        if git_dir is None:
            return None
        git = pygit2.Repository(git_dir)
    except (pygit2.GitError, OSError):
        return None
    return Path(git.workdir or git.path).resolve()


def _why_not_a_repository(path: Path, exc: pygit2.GitError) -> str:
    """Why `path`, which exists, could not be opened as a repository."""
    try:
        found = pygit2.discover_repository(str(path))
    except (pygit2.GitError, OSError):
        found = None
    if found is None:
        return "not a git repository"
    root = find_repository_root(path)
    if root is not None and root != path.resolve():
        return f"not the root of a git repository (the root is {root})"
    return str(exc)  # a repository libgit2 cannot open: a broken config, an unsupported version


def _cannot_open(repo: RepoConfig, reason: str) -> RepoError:
    return RepoError(f"{where(repo)}: cannot open: {reason}")


# Where a view's short name is looked for, in order: a name both a branch and a tag have is the branch.
REF_SPACES = ("refs/heads/", "refs/tags/", "refs/remotes/")


def resolve_views(repo: RepoConfig) -> tuple[dict[str, str], tuple[str, ...]]:
    """The refs `repo.refs` names (names and globs over branches, tags and remote branches, by
    short name: "main", "release/*", "v5.1.*", "origin/main"): short name -> full ref name, and
    the patterns that matched nothing. A short name both a branch and a tag names the branch."""
    if not repo.refs:
        return {}, ()
    git = open_repository(repo)
    try:
        names = git.references.iterator()
        full_names = [r.name for r in names]
    except pygit2.GitError as exc:
        raise RepoError(f"{where(repo)}: refs cannot be listed: {exc}") from None
    short: dict[str, str] = {}
    for prefix in REF_SPACES:
        for name in sorted(full_names):
            if name.startswith(prefix) and not name.endswith("/HEAD"):
                short.setdefault(name[len(prefix) :], name)
    views: dict[str, str] = {}
    unmatched = []
    for pattern in repo.refs:
        matcher = re.compile(name_regex(pattern))
        found = [name for name in short if matcher.fullmatch(name)]
        if not found:
            unmatched.append(pattern)
        views.update((name, short[name]) for name in found)
    return dict(sorted(views.items())), tuple(unmatched)


def views_state(repo: RepoConfig) -> str:
    """Where `repo`'s main ref and each ref `repo.refs` names point: changes when one moves,
    appears or goes. Opens `repo`."""
    git = open_repository(repo)
    head = resolve_ref(repo, git)
    refs, _ = resolve_views(repo)
    pointed = []
    for name, ref in refs.items():
        try:
            pointed.append(f"{name}={git.revparse_single(ref).peel(pygit2.Commit).id}")
        except (KeyError, ValueError, pygit2.GitError):  # moved or gone meanwhile: the next look sees it
            pointed.append(f"{name}=?")
    return " ".join([head, *pointed])
