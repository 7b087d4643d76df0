"""Reading the lines of one file of a configured repository, as it is now, for a person or an agent.

A worktree's file is read from disk, opened beneath the worktree's root with no symlink followed
and only if it is a regular file (git/worktree.py); a bare repository's (or a configured ref's)
from the ref's tree. The path must be a plain repository-relative name: an absolute path, or one
with an empty, "." or ".." component, is refused before anything is opened. Which paths may be
read at all (those the index holds) is the caller's decision.

Every function blocks (file system and object database reads). Errors leave as RequestError (the
request names a file that cannot be read, and why) or RepoError (the repository cannot be opened).
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pygit2

from codeweir.errors import RepoError, RequestError
from codeweir.git.repo import cached_repository, resolve_commit, where
from codeweir.git.worktree import NotRegularFile, git_str, read_regular, why_unreadable

if TYPE_CHECKING:
    from codeweir.config import RepoConfig

MAX_READ_BYTES = 16 << 20  # a file larger than this is not read for its lines
BINARY_PROBE = 8000  # bytes looked at for a NUL, as git does


@attrs.frozen
class FileText:
    lines: tuple[str, ...]  # without their newlines; a last line without one is a line
    blob: str  # the git blob id of the content read


def path_problem(name: str) -> str | None:
    """Why `name` is not a plain repository-relative path (None when it is one)."""
    if not name:
        return "is empty"
    if name.startswith("/"):
        return "is absolute: give a path relative to the repository's root"
    parts = name.split("/")
    if ".." in parts:
        return "has a '..' component: give a path inside the repository"
    if any(part in ("", ".") for part in parts):
        return "has an empty or '.' component: write it as git lists it (a/b.py)"
    if "\0" in name:
        return "holds a NUL character"
    return None


def from_ref(repo: RepoConfig) -> bool:
    """Whether `repo`'s files are read from a ref (bare, or a ref configured) rather than the worktree."""
    return bool(repo.ref) or not (Path(repo.path) / ".git").exists()


def read_text(repo: RepoConfig, name: str) -> FileText:
    """The lines of the file `name` names in `repo`, as it is now (undecodable bytes replaced)."""
    return _lines(name, _read_checked(repo, name))


def read_whole_text(repo: RepoConfig, name: str) -> str:
    """`read_text`'s lines, joined by newlines: the text without its last newline, neither split
    nor hashed (a search reads each candidate draft's file so)."""
    return _decoded(name, _read_checked(repo, name)).removesuffix("\n")


def _read_checked(repo: RepoConfig, name: str) -> bytes:
    problem = path_problem(name)
    if problem is not None:
        raise RequestError(f"path: {name!r} {problem}")
    return _read_bytes(repo, name)


def read_version_text(repo: RepoConfig, name: str, blob: str) -> FileText:
    """The lines of one version of the file `name` (a ref's, say), by its blob id."""
    git = cached_repository(repo)
    try:
        found = git.get(blob)
    except (ValueError, pygit2.GitError) as exc:
        raise RepoError(f"{where(repo)}: {name}: cannot read blob {blob}: {exc}") from None
    if not isinstance(found, pygit2.Blob):
        raise RequestError(f"path: {name}: its version {blob} is no longer in repo {repo.name!r}")
    if found.size > MAX_READ_BYTES:
        raise RequestError(f"path: {name} is larger than {MAX_READ_BYTES >> 20} MiB: not read")
    return _lines(name, found.data)


def _lines(name: str, data: bytes) -> FileText:
    lines = _decoded(name, data).split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the last line's newline ends it; it starts no line
    return FileText(tuple(lines), str(pygit2.hash(data)))


def _decoded(name: str, data: bytes) -> str:
    if b"\0" in data[:BINARY_PROBE]:
        raise RequestError(f"path: {name} is a binary file: it has no lines to read")
    return data.decode("utf-8", "replace")


def _read_bytes(repo: RepoConfig, name: str) -> bytes:
    if from_ref(repo):
        return _ref_bytes(repo, name)
    try:
        data = read_regular(repo.path, name, MAX_READ_BYTES)
    except NotRegularFile:
        raise RequestError(f"path: {name} is not a regular file (a FIFO, socket, device or directory): not read") from None
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise RequestError(f"path: {name} is no longer in the worktree of repo {repo.name!r}") from None
        raise RequestError(f"path: {name} cannot be read: {why_unreadable(exc)}") from None
    if len(data) > MAX_READ_BYTES:
        raise RequestError(f"path: {name} is larger than {MAX_READ_BYTES >> 20} MiB: not read")
    return data


def _ref_bytes(repo: RepoConfig, name: str) -> bytes:
    git = cached_repository(repo)
    commit = resolve_commit(repo, git)
    if commit is None:
        raise RequestError(f"path: {name}: {where(repo)} has no commit yet")
    try:
        entry = commit.tree[git_str(name)]
    except KeyError:
        raise RequestError(f"path: {name} is not in {repo.ref or 'HEAD'} of repo {repo.name!r}") from None
    except pygit2.GitError as exc:
        raise RepoError(f"{where(repo)}: {exc}") from None
    if entry.type_str != "blob" or entry.filemode not in (pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE):
        raise RequestError(
            f"path: {name} is not a regular file in {repo.ref or 'HEAD'} (a directory, symlink or submodule): not read"
        )
    try:
        blob = git[entry.id]
        assert isinstance(blob, pygit2.Blob)
        if blob.size > MAX_READ_BYTES:
            raise RequestError(f"path: {name} is larger than {MAX_READ_BYTES >> 20} MiB: not read")
        return blob.data
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise RepoError(f"{where(repo)}: {name}: cannot read blob {entry.id}: {exc}") from None
