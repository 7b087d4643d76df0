"""Reading what the index holds, for tests: every chunk of a file, every commit of a repository,
every chunk's vector key. The daemon never needs these whole listings, so they live here."""

from __future__ import annotations

import tantivy

from codeweir.index.chunk_tables import decode_table
from codeweir.index.membership import MAIN, version_key
from codeweir.index.schema import query_all, stored_chunk
from codeweir.index.store import Store
from codeweir.records import CommitRecord, StoredChunk


def _docs(store: Store, query: tantivy.Query) -> list[tantivy.Document]:
    searcher = store.searcher()
    total = searcher.search(query, limit=1, count=True).count
    if not total:
        return []
    return [searcher.doc(address) for _, address in searcher.search(query, limit=total).hits]


def chunks_of(store: Store, repo: str, path: str, view: str = MAIN) -> list[StoredChunk]:
    """The chunks of the version of `path` that `view` holds, placed where that version has them
    (during a rebuild: those of the old index, whatever version)."""
    docs = _docs(store, query_all([("doc_kind", "chunk"), ("repo", repo), ("path", path)]))
    if store.rebuilding:
        return sorted((stored_chunk(d) for d in docs), key=lambda c: c.start_line)
    blob = store.file_blobs(repo, view).get(path)
    files = _docs(store, query_all([("doc_kind", "file"), ("file_key", version_key(repo, path, blob or ""))]))
    table = decode_table(repo, path, blob or "", files[0].get_first("chunks") or b"") if files else {}
    chunks = [stored_chunk(d, table) for d in docs if d.get_first("chunk_key") in table]
    return sorted(chunks, key=lambda c: c.start_line)


def chunk_docs(store: Store) -> list[tantivy.Document]:
    return _docs(store, query_all([("doc_kind", "chunk")]))


def file_docs(store: Store) -> list[tantivy.Document]:
    return _docs(store, query_all([("doc_kind", "file")]))


def commits_of(store: Store, repo: str) -> list[CommitRecord]:
    return [
        CommitRecord(
            sha=doc.get_first("sha"),
            author=doc.get_first("author"),
            date=doc.get_first("date") or 0,
            message=doc.get_first("message"),
            paths=tuple(doc.get_all("path")),
            content_hash=doc.get_first("content_hash"),
        )
        for doc in _docs(store, query_all([("doc_kind", "commit"), ("repo", repo)]))
    ]


def content_hashes(store: Store) -> set[str]:
    return {doc.get_first("content_hash") for doc in _docs(store, query_all([("doc_kind", "chunk")]))}
