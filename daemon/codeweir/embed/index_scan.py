"""The embed backlog's reads of the committed index (blocking: run in a thread): the chunks
and commit messages without a vector, and their texts when the queue holds only their hashes.

A text read back from the index is the very text the writer offered for it (the backlog's
`written_texts`): both are made by `embedded_text`'s functions from the same fields.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from typing import TYPE_CHECKING

import attrs
import numpy as np
import tantivy

from codeweir.embed.queue import COMMIT_RANK, embed_rank
from codeweir.embed.session import EmbedStopped
from codeweir.embedded_text import commit_text, document_text
from codeweir.facets import RANK_WEIGHTS, stored_weight
from codeweir.index.schema import SCHEMA, fast_hashes, hash_columns, hex_hashes, stored_chunk

if TYPE_CHECKING:
    from codeweir.index.store import Store

EMBEDDED_KINDS = ("chunk", "commit")  # the document kinds that have a vector
# A chunk's embedding rank by its `facet_weight` column (facets.stored_weight).
_RANK_BY_STORED_WEIGHT = {stored_weight([facet]): embed_rank([facet]) for facet in RANK_WEIGHTS}


@attrs.frozen
class IndexScan:
    """What a scan of the committed index found."""

    # The hashes without a vector, best rank first, up to the scan's limit: each with its kind and rank.
    missing: dict[str, tuple[str, int]]
    more: bool  # ... and more than the limit were missing
    live: np.ndarray  # every hash the index refers to, as sorted unique `digest64`s


def scan_index(store: Store, vectors: Container[str], stopping: Callable[[], bool], *, limit: int) -> IndexScan:
    """Hashes only, from the documents' fast columns: the texts are read back a call's worth at a
    time. Memory stays bounded on the largest index: the missing hashes kept are those of the
    best ranks (a few times `limit` at most, for a moment), and every hash is 8 bytes in `live`."""
    by_rank: dict[int, dict[str, str]] = {}  # rank -> missing hash -> kind
    more = False
    live = []
    searcher = store.written_searcher()
    for kind in EMBEDDED_KINDS:
        for addresses in fast_hashes(searcher, tantivy.Query.term_query(SCHEMA, "doc_kind", kind)):
            if stopping():
                raise EmbedStopped
            columns = hash_columns(searcher, addresses)
            live.append(columns[:, 0])
            if kind == "commit":
                ranks = [COMMIT_RANK] * len(addresses)
            else:
                ranks = [_RANK_BY_STORED_WEIGHT.get(w, 0) for w in searcher.fast_field_values("facet_weight", addresses)]
            for h, rank in zip(hex_hashes(columns), ranks, strict=True):
                if h in vectors:
                    continue
                found = by_rank.setdefault(rank, {})
                if h in found:
                    continue
                if len(found) + sum(len(better) for r, better in by_rank.items() if r < rank) >= limit:
                    more = True  # as many of this rank and better ones are kept already
                else:
                    found[h] = kind
    missing: dict[str, tuple[str, int]] = {}
    for rank in sorted(by_rank):
        for h, kind in by_rank.pop(rank).items():
            if h in missing:
                continue  # kept with a better rank
            if len(missing) == limit:
                more = True
                break
            missing[h] = (kind, rank)
    return IndexScan(missing, more, np.unique(np.concatenate(live)) if live else np.zeros(0, np.uint64))


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
