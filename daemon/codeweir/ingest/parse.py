"""One file read, decoded and chunked: the work a parse worker process does.

Workers import this module alone (with git, chunk, facets and the plain records), not the
pipeline: the index, the embedder and trio stay out of each worker's memory and start-up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from codeweir.chunk.chunker import chunk_file, detect_language
from codeweir.chunk.terms import words
from codeweir.embedded_text import content_hash, document_text
from codeweir.errors import CodeweirError, FileSkipped, RepoError
from codeweir.facets import classify
from codeweir.git import scan as git
from codeweir.git.repo import where
from codeweir.git.worktree import path_bytes
from codeweir.records import Draft, FileRecord, TrackedFile

if TYPE_CHECKING:
    from codeweir.config import RepoConfig

log = logging.getLogger(__name__)

BINARY_SNIFF_BYTES = 8000


def parse_file(repo: RepoConfig, file: TrackedFile, max_bytes: int) -> FileRecord | None:
    """Read, decode and chunk one file. Runs in a worker process: plain data in and out.

    None when the file has left the worktree since the scan; RepoError when the repository has.
    This is the worker boundary: what is raised here is pickled back to the daemon with its
    cause and context, and only codeweir's errors surely pickle (a pygit2 error does not). So
    every other error is translated here, into RepoError when the repository has gone (deleted,
    moved or replaced while it synced), else into the file's own error status; and a codeweir
    error crosses without the errors it replaced.
    """
    try:
        return _parse_file(repo, file, max_bytes)
    except CodeweirError as exc:
        exc.__cause__ = exc.__context__ = None
        raise
    except Exception as exc:
        unexpected = exc
    # Out here, not in the except block: an error raised there has the one it replaces as context.
    if _repository_gone(repo):
        raise _removed(repo)
    log.error("reading %s/%s failed", repo.name, file.path, exc_info=unexpected)
    return _skipped(repo, file, "error", f"{type(unexpected).__name__}: {unexpected}")


def parse_files(files: Sequence[tuple[RepoConfig, TrackedFile]], max_bytes: int) -> list[FileRecord | RepoError | None]:
    """`parse_file` for each of `files`, in one call: a RepoError is its file's outcome, in the list."""
    outcomes: list[FileRecord | RepoError | None] = []
    for repo, file in files:
        try:
            outcomes.append(parse_file(repo, file, max_bytes))
        except RepoError as exc:
            outcomes.append(exc)
    return outcomes


def _parse_file(repo: RepoConfig, file: TrackedFile, max_bytes: int) -> FileRecord | None:
    read = read_indexed_text(repo, file, max_bytes)
    if not isinstance(read, tuple):
        return read
    blob, text = read
    language = detect_language(file.path) or "text"
    try:
        chunks = tuple(chunk_file(file.path, text, language))
    except Exception as exc:  # a chunker bug on one file must not stop the sync
        log.exception("chunking %s/%s failed", repo.name, file.path)
        return _skipped(repo, file, "error", f"{type(exc).__name__}: {exc}", blob)
    hashes = tuple(
        content_hash(document_text(language=language, symbol_path=c.symbol_path, kind=c.kind, content=c.content)) for c in chunks
    )
    split = tuple(words(c.content) for c in chunks)
    return FileRecord(repo.name, file.path, blob, language, chunks, hashes, facets=classify(file.path, text), words=split)


def read_indexed_text(repo: RepoConfig, file: TrackedFile, max_bytes: int) -> tuple[str, str] | FileRecord | None:
    """A file's blob id and text; else the record of why it has none (too large, binary, not
    UTF-8, unreadable), or None when it has left the worktree since the scan. RepoError when
    the repository has gone."""
    try:
        data = git.read_file(repo, file, limit=max_bytes)
    except FileSkipped as exc:
        if _repository_gone(repo):
            raise _removed(repo) from None
        if _left_worktree(repo, file):
            return None
        return _skipped(repo, file, "unreadable", str(exc))
    if len(data) > max_bytes:  # read no further: its id is the scan's (the next scan skips it)
        return _skipped(repo, file, "too_large")
    # The worktree may have changed since the scan: index what was read, under its own id.
    blob = git.blob_id(data)
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return _skipped(repo, file, "binary", blob=blob)
    try:
        return blob, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _skipped(repo, file, "undecodable", f"not UTF-8 at byte {exc.start}", blob)


def read_drafts(repo: RepoConfig, files: Sequence[TrackedFile], max_bytes: int) -> list[Draft]:
    """The drafts of `files` that hold text (read as the parse workers read them: what is too
    large, binary, not UTF-8, unreadable or gone has none). Blocking: run in a thread."""
    drafts = []
    for file in files:
        read = read_indexed_text(repo, file, max_bytes)
        if isinstance(read, tuple):
            blob, text = read
            language = detect_language(file.path) or "text"
            drafts.append(Draft(repo.name, file.path, blob, language, text, classify(file.path, text)))
    return drafts


def _skipped(repo: RepoConfig, file: TrackedFile, status: str, error: str = "", blob: str | None = None) -> FileRecord:
    # The index stores UTF-8 only: a message quoting undecodable bytes keeps them as escapes.
    error = error.encode("utf-8", "backslashreplace").decode("utf-8")
    return FileRecord(repo.name, file.path, file.blob if blob is None else blob, "", (), (), status=status, error=error)


def _removed(repo: RepoConfig) -> RepoError:
    return RepoError(f"{where(repo)}: removed while it was syncing")


def _repository_gone(repo: RepoConfig) -> bool:
    """Whether the repository itself has gone: its directory, or the git data in it."""
    return not any(os.path.lexists(os.path.join(repo.path, name)) for name in (".git", "HEAD"))


def _left_worktree(repo: RepoConfig, file: TrackedFile) -> bool:
    """Whether a file read from a worktree is gone from it (deleted, renamed away)."""
    root = repo.path
    worktree = not repo.ref and os.path.lexists(os.path.join(root, ".git"))
    return worktree and not os.path.lexists(os.path.join(os.fsencode(root), path_bytes(file.path)))
