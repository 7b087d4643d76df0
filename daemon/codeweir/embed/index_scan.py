"""The embed backlog's reads of the committed index (blocking: run in a thread): the chunks
and commit messages without a vector, and their texts when the queue holds only their hashes.

A text read back from the index is the very text the writer offered for it (the backlog's
`written_texts`): both are made by `embedded_text`'s functions from the same fields.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from typing import TYPE_CHECKING

import tantivy

from codeweir.embed.queue import COMMIT_RANK, embed_rank
from codeweir.embed.session import EmbedStopped
from codeweir.embedded_text import commit_text, document_text
from codeweir.index.schema import SCHEMA, stored_chunk

if TYPE_CHECKING:
    from codeweir.index.store import Store

EMBEDDED_KINDS = ("chunk", "commit")  # the document kinds that have a vector


def scan_index(
    store: Store, vectors: Container[str], stopping: Callable[[], bool]
) -> tuple[dict[str, tuple[str, int]], set[str]]:
    """The hashes without a vector (with their kind and rank), and every hash the index
    refers to. Hashes only: the texts are read back a call's worth at a time."""
    missing: dict[str, tuple[str, int]] = {}
    live: set[str] = set()
    searcher = store.written_searcher()
    query = _embedded_kinds()
    total = searcher.search(query, limit=1, count=True).count
    if total:
        for i, (_, address) in enumerate(searcher.search(query, limit=total, count=False).hits):
            if i % 4096 == 0 and stopping():
                raise EmbedStopped
            doc = searcher.doc(address)
            h = doc.get_first("content_hash")
            # A commit of an index from before schema 3 has none; its rebuild will.
            if h is None:
                continue
            live.add(h)
            if h not in vectors:
                kind = doc.get_first("doc_kind")
                rank = COMMIT_RANK if kind == "commit" else embed_rank(doc.get_all("facet"))
                if h not in missing or rank < missing[h][1]:
                    missing[h] = (kind, rank)
    return missing, live


def texts_of(store: Store, hashes: Sequence[str]) -> dict[str, str]:
    searcher = store.written_searcher()
    texts = {}
    for h in hashes:
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, q) for q in (_embedded_kinds(), tantivy.Query.term_query(SCHEMA, "content_hash", h))]
        )
        hits = searcher.search(query, limit=1).hits
        if hits:  # gone since the scan: nothing to embed
            texts[h] = _embedded_text(searcher.doc(hits[0][1]))
    return texts


def _embedded_kinds() -> tantivy.Query:
    return tantivy.Query.term_set_query(SCHEMA, "doc_kind", list(EMBEDDED_KINDS))


def _embedded_text(doc: tantivy.Document) -> str:
    """What the model sees for a stored chunk or commit: as the backlog's `written_texts` gives it."""
    if doc.get_first("doc_kind") == "commit":
        return commit_text(doc.get_first("message") or "")
    c = stored_chunk(doc)
    return document_text(language=c.language, symbol_path=c.symbol_path, kind=c.kind, content=c.content)
