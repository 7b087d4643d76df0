"""The plain records that cross between stages: what a parse worker hands the writer, and
what the index gives back. No Tantivy here, so a parse worker can import them cheaply."""

from __future__ import annotations

import attrs

# What a chunk can be: the kinds the chunker gives, and a query may filter by.
KINDS = (
    "function", "method", "class", "struct", "interface", "trait", "enum", "impl", "type",
    "module", "const", "variable", "section", "text",
)  # fmt: skip


@attrs.frozen
class Chunk:
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    start_byte: int  # offsets into text.encode("utf-8")
    end_byte: int
    symbol: str  # the defined name ("handle"), "" for none
    kind: str  # one of KINDS
    symbol_path: str  # enclosing path including the symbol: "Server.handle"; "" for none
    content: str  # the exact text of lines start_line..end_line, without the last line's newline

    def __reduce__(self) -> tuple[type[Chunk], tuple[int, int, int, int, str, str, str, str]]:
        # Unpickled by one call of the class: attrs' state methods for a slotted class loop over
        # the fields in Python, and the event loop unpickles every chunk a parse worker sends
        # (the kernel's 1.8 M): 5.2 -> 2.3-2.7 us a chunk, and 3.7 -> 2.3-2.9 to pickle one.
        return Chunk, (
            self.start_line, self.end_line, self.start_byte, self.end_byte, self.symbol, self.kind, self.symbol_path, self.content
        )  # fmt: skip


@attrs.frozen
class FileRecord:
    """What the writer stores for one path: its chunks, or why it has none."""

    repo: str
    path: str
    blob: str
    language: str
    chunks: tuple[Chunk, ...]
    content_hashes: tuple[str, ...]  # one per chunk: the vector key of its embedded text
    status: str = "indexed"  # or a skip reason: "binary", "undecodable", "unreadable", "error"
    error: str = ""
    facets: frozenset[str] = frozenset()  # see codeweir.facets
    # One per chunk: its subwords as the index's `words` field takes them (chunk/terms.py's
    # `words`), split by the worker, where a regex pays per match. Its identifiers are split by
    # the writer: a byte table is as quick as unpickling them, and they do not cross the pipe.
    words: tuple[str, ...] = ()


@attrs.frozen
class Draft:
    """A file version's whole text, written before its chunks on a large sync (ingest/drafts.py):
    exact and regex search find it until the version's chunks replace it."""

    repo: str
    path: str
    blob: str
    language: str
    text: str
    facets: frozenset[str] = frozenset()


@attrs.frozen
class CommitRecord:
    """One commit as the index stores it."""

    sha: str
    author: str  # "Name <email>"
    date: int  # author date, epoch seconds
    message: str
    paths: tuple[str, ...]  # changed paths (against the first parent)
    content_hash: str  # the vector key of its message


@attrs.frozen
class StoredChunk:
    repo: str
    path: str
    blob: str
    language: str
    kind: str
    symbol: str
    symbol_path: str
    start_line: int
    end_line: int
    content: str
    content_hash: str
    facets: tuple[str, ...] = ()  # stored terms: "source" or the file's facets


@attrs.frozen
class TrackedFile:
    path: str  # posix path relative to the repository root
    blob: str  # hex git blob id of the content (what `git hash-object` prints for it)
    size: int
