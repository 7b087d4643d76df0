"""One file read, decoded and chunked: the work a parse worker process does.

Workers import this module alone (with git, chunk, facets and the plain records), not the
pipeline: the index, the embedder and trio stay out of each worker's memory and start-up.
"""

from __future__ import annotations

import logging
import os

from codeweir.chunk.chunker import chunk_file, detect_language
from codeweir.config import RepoConfig
from codeweir.embedded_text import content_hash, document_text
from codeweir.errors import FileSkipped, RepoError
from codeweir.facets import classify
from codeweir.git import scan as git
from codeweir.records import FileRecord, TrackedFile

log = logging.getLogger(__name__)

BINARY_SNIFF_BYTES = 8000


def parse_file(repo: RepoConfig, file: TrackedFile, max_bytes: int) -> FileRecord | None:
    """Read, decode and chunk one file. Runs in a worker process: plain data in and out.

    None when the file has left the worktree since the scan; RepoError when the repository has.
    """

    def skipped(status: str, error: str = "", blob: str = file.blob) -> FileRecord:
        return FileRecord(repo.name, file.path, blob, "", (), (), status=status, error=error)

    try:
        data = git.read_file(repo, file)
    except FileSkipped as exc:
        if _repository_gone(repo):
            raise RepoError(f"repository {repo.name!r} at {repo.path}: removed while it was syncing") from None
        if _left_worktree(repo, file):
            return None
        return skipped("unreadable", str(exc))
    # The worktree may have changed since the scan: index what was read, under its own id.
    blob = git.blob_id(data)
    if len(data) > max_bytes:
        return skipped("too_large", blob=blob)
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return skipped("binary", blob=blob)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return skipped("undecodable", f"not UTF-8 at byte {exc.start}", blob)
    language = detect_language(file.path) or "text"
    try:
        chunks = tuple(chunk_file(file.path, text, language))
    except Exception as exc:  # a chunker bug on one file must not stop the sync
        log.exception("chunking %s/%s failed", repo.name, file.path)
        return skipped("error", f"{type(exc).__name__}: {exc}", blob)
    hashes = tuple(
        content_hash(document_text(language=language, symbol_path=c.symbol_path, kind=c.kind, content=c.content)) for c in chunks
    )
    return FileRecord(repo.name, file.path, blob, language, chunks, hashes, facets=classify(file.path, text))


def _repository_gone(repo: RepoConfig) -> bool:
    """Whether the repository itself has gone: its directory, or the git data in it."""
    return not any(os.path.lexists(os.path.join(repo.path, name)) for name in (".git", "HEAD"))


def _left_worktree(repo: RepoConfig, file: TrackedFile) -> bool:
    """Whether a file read from a worktree is gone from it (deleted, renamed away)."""
    root = repo.path
    worktree = not repo.ref and os.path.lexists(os.path.join(root, ".git"))
    return worktree and not os.path.lexists(os.path.join(root, file.path))
