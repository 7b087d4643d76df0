"""The index's schema: fields, code-aware analyzers, the keys of its documents, how a record
becomes documents and documents become records again, and opening an index with them."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath

import attrs
import numpy as np
import tantivy

from codeweir.chunk import terms
from codeweir.chunk.terms import PARTS_PATTERN
from codeweir.chunk.version import CHUNKER_VERSION
from codeweir.facets import SOURCE, stored_facets, stored_lexical_weight, stored_weight
from codeweir.index.digest_counts import hex_keys
from codeweir.index.membership import Placement
from codeweir.index.trigram_terms import text_terms
from codeweir.records import Chunk, CommitRecord, Draft, FileRecord, StoredChunk

# 4: chunks carry their scope (module and enclosing definitions); pieces no symbol; 5: lexical_weight;
# 6: documents per file version (repository, path, blob), which views hold them in `member` documents;
# 7: chunk documents shared by a path's versions (`chunk_key`), each version's chunks in its file document;
# 8: chunk text split into `words` and `ident` by the parse workers, stored as bytes in `content`;
# 9: chunks carry their content hash as two fast columns, as commits do;
# 10: `draft` documents, before a large sync's chunks (ingest/drafts.py), and their `draft_trigrams`
SCHEMA_VERSION = 10
VERSIONS = {"schema": SCHEMA_VERSION, "chunker": CHUNKER_VERSION}  # an index of others is rebuilt


def _analyzer(tokenizer: tantivy.Tokenizer) -> tantivy.TextAnalyzer:
    return tantivy.TextAnalyzerBuilder(tokenizer).filter(tantivy.Filter.lowercase()).build()


# Subwords of short fields (names, paths, commit messages): the same terms chunk/terms.py gives.
PARTS = _analyzer(tantivy.Tokenizer.regex(PARTS_PATTERN))
# A chunk's `words` and `ident`, split by chunk/terms.py (its subwords in the parse workers, its
# identifiers in the writer), lowercased; and a draft's trigram terms (index/trigram_terms.py).
SPLIT = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()
# Character trigrams of chunk content, lowercased by the writer before: the prefilter of
# substring and regex search. Lowercasing each of its ~80 M trigrams (go-std) in Tantivy took a
# third of the field's indexing time; Python lowercases the whole text in a fraction of that.
TRIGRAMS = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.ngram(3, 3, False)).build()


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    for name in (
        "doc_kind",
        "repo",
        "path",
        "file_key",
        "chunk_key",
        "blob",
        "language",
        "kind",
        "status",
        "content_hash",
        "facet",
        "sha",
        "view",
    ):
        b.add_text_field(name, stored=True, tokenizer_name="raw")
    # Document ids only, as in codesearch: the prefilter needs no frequencies or positions.
    b.add_text_field("trigrams", tokenizer_name="code_trigrams", index_option="basic")
    b.add_text_field("draft_trigrams", tokenizer_name="code_split", index_option="basic")  # index/trigram_terms.py
    b.add_float_field("facet_weight", fast=True)  # see facets.stored_weight
    b.add_float_field("lexical_weight", fast=True)  # see facets.stored_lexical_weight
    b.add_text_field("author", stored=True, tokenizer_name="code_parts")  # commits: name and email
    b.add_text_field("message", stored=True, tokenizer_name="code_parts")
    b.add_integer_field("date", stored=True, indexed=True, fast=True)  # epoch seconds
    b.add_text_field("path_parts", tokenizer_name="code_parts")
    # A chunk's or commit's vector key again, as two fast columns (`hash_halves`): semantic commit
    # search reads the keys of every commit its filters allow, and the embed backlog those of
    # every chunk (`fast_hashes`); fetching each stored document would take 13 µs.
    b.add_unsigned_field("hash_high", fast=True)
    b.add_unsigned_field("hash_low", fast=True)
    b.add_text_field("symbol", stored=True, tokenizer_name="code_parts")
    b.add_text_field("symbol_exact", tokenizer_name="raw")  # lowercased whole symbol
    b.add_text_field("symbol_path", stored=True, tokenizer_name="raw")
    # A definition's qualifiers, lowercased, in order: its module's path, then the definitions
    # enclosing it (see `scope`). `sym:bufio.NewReader` and `sym:Query.join` require them.
    b.add_text_field("scope", stored=True, tokenizer_name="raw")
    b.add_bytes_field("content", stored=True, indexed=False)  # a chunk's text, UTF-8
    b.add_text_field("words", tokenizer_name="code_split")  # its subwords (chunk/terms.py)
    b.add_text_field("ident", tokenizer_name="code_split")  # its identifiers
    b.add_text_field("error", stored=True)
    b.add_text_field("meta", stored=True, tokenizer_name="raw")
    b.add_bytes_field("chunks", stored=True, indexed=False)  # a version's file document: chunk_tables.encode_table
    for name in ("start_line", "end_line", "start_byte", "end_byte", "chunk_count"):
        b.add_unsigned_field(name, stored=True)
    return b.build()


SCHEMA = _schema()


def member_key(repo: str, view: str, path: str) -> str:
    return f"\x00member\x00{repo}\x00{view}\x00{path}"


def repo_key(repo: str) -> str:
    # Repository names contain no "/", so this never collides with a file key.
    return f"\x00repo:{repo}"


def commit_key(repo: str, sha: str) -> str:
    return f"\x00commit:{repo}:{sha}"


def first(doc: tantivy.Document, field: str, default=""):
    values = doc.get_all(field)
    return values[0] if values else default


# Module files that name their directory rather than a module of their own.
_PACKAGE_FILES = frozenset({"__init__", "__main__", "index", "mod"})
_GO_PACKAGE = re.compile(r"^package\s+([A-Za-z_]\w*)", re.MULTILINE)


def module_path(language: str, path: str, chunks: Sequence[Chunk] = ()) -> tuple[str, ...]:
    """What qualifies a file's top-level names, outermost first: `django/db/models/query.py` ->
    (django, db, models, query); a Go file's directories, then its package clause where that
    differs from the last one (`cmd/go/main.go` -> (cmd, go, main))."""
    parts = PurePosixPath(path).parts
    dirs, name = parts[:-1], PurePosixPath(path).stem
    if language == "go":
        clause = next((found.group(1) for c in chunks[:3] if (found := _GO_PACKAGE.search(c.content))), "")
        return dirs + ((clause,) if clause and clause != (dirs[-1] if dirs else "") else ())
    return dirs if name in _PACKAGE_FILES else (*dirs, name)


def scope(module: Sequence[str], symbol_path: str, symbol: str) -> list[str]:
    """The stored `scope` of a definition: its module's path and the definitions enclosing it
    (`Query` for the method `Query.join`), lowercased."""
    enclosing = symbol_path[: len(symbol_path) - len(symbol)].rstrip(".")
    return [part.lower() for part in (*module, *(enclosing.split(".") if enclosing else ())) if part]


def stored_chunk(doc: tantivy.Document, placed: Mapping[str, Placement] | None = None) -> StoredChunk:
    """A chunk document as the version a search sees it through holds it: `placed` (a
    Visibility's) places it in that version where that is not its home."""
    blob, start_line, end_line = first(doc, "blob"), first(doc, "start_line", 0), first(doc, "end_line", 0)
    if placed and (placement := placed.get(first(doc, "chunk_key"))) is not None:
        blob, start_line, end_line = placement.blob, placement.start_line, placement.end_line
    return StoredChunk(
        repo=first(doc, "repo"),
        path=first(doc, "path"),
        blob=blob,
        language=first(doc, "language"),
        kind=first(doc, "kind"),
        symbol=first(doc, "symbol"),
        symbol_path=first(doc, "symbol_path"),
        start_line=start_line,
        end_line=end_line,
        content=first(doc, "content", b"").decode(),
        content_hash=first(doc, "content_hash"),
        facets=tuple(doc.get_all("facet")),
    )


@functools.lru_cache(maxsize=64)
def _facet_fields(facets: frozenset[str], path: str) -> tuple[tuple[str, ...], float, float]:
    """A file's stored facet terms, facet weight and lexical weight, the same for each of its
    chunks: worked out once a file, not 2 µs a chunk again (1.77 M chunks in the kernel)."""
    return stored_facets(facets), stored_weight(facets), stored_lexical_weight(facets, path)


def file_fields(doc: tantivy.Document, repo: str, path: str, blob: str, language: str, facets: frozenset[str], key: str) -> None:
    doc.add_text("repo", repo)
    doc.add_text("path", path)
    doc.add_text("path_parts", path)
    doc.add_text("file_key", key)
    doc.add_text("blob", blob)
    doc.add_text("language", language)
    for facet in _facet_fields(facets, path)[0]:
        doc.add_text("facet", facet)


def file_document(record: FileRecord, key: str, chunks: bytes) -> tantivy.Document:
    """A version's file document; `chunks`: its chunk table, encoded (index/chunk_tables.py)."""
    doc = tantivy.Document()
    file_fields(doc, record.repo, record.path, record.blob, record.language, record.facets, key)
    doc.add_text("doc_kind", "file")
    doc.add_text("status", record.status)
    doc.add_unsigned("chunk_count", len(record.chunks))
    doc.add_bytes("chunks", chunks)
    if record.error:
        doc.add_text("error", record.error)
    return doc


def draft_document(draft: Draft, key: str) -> tantivy.Document:
    """A version's draft (ingest/drafts.py): its text's distinct trigrams, under the version's
    key, so the write of its chunks deletes it. Not the text: a search reads it from the file
    (stored, the kernel's 945 MB were written, then merged again, only to be deleted)."""
    doc = tantivy.Document()
    file_fields(doc, draft.repo, draft.path, draft.blob, draft.language, draft.facets, key)
    doc.add_text("doc_kind", "draft")
    doc.add_text("draft_trigrams", text_terms(draft.text))
    doc.add_float("facet_weight", _facet_fields(draft.facets, draft.path)[1])
    return doc


def member_document(repo: str, view: str, path: str, blob: str, key: str) -> tantivy.Document:
    """`view` of `repo` holds the version `blob` at `path`."""
    doc = tantivy.Document()
    for field, value in (("doc_kind", "member"), ("repo", repo), ("view", view), ("path", path), ("blob", blob)):
        doc.add_text(field, value)
    doc.add_text("file_key", key)
    return doc


def _repo_document(kind: str, repo: str, key: str) -> tantivy.Document:
    """A document of `kind` for the whole of `repo` (a commit, its metadata), by its key."""
    doc = tantivy.Document()
    doc.add_text("doc_kind", kind)
    doc.add_text("repo", repo)
    doc.add_text("file_key", key)
    return doc


def commit_document(repo: str, commit: CommitRecord, key: str) -> tantivy.Document:
    doc = _repo_document("commit", repo, key)
    doc.add_text("sha", commit.sha)
    doc.add_text("author", commit.author)
    doc.add_integer("date", commit.date)
    doc.add_text("message", commit.message)
    _add_content_hash(doc, commit.content_hash)
    for path in commit.paths:
        doc.add_text("path", path)
        doc.add_text("path_parts", path)
    return doc


def repo_document(repo: str, meta: Mapping, key: str) -> tantivy.Document:
    """A repository's metadata document: `meta`, as JSON."""
    doc = _repo_document("repo", repo, key)
    doc.add_text("meta", json.dumps(dict(meta), sort_keys=True))
    return doc


@attrs.frozen
class ChunkDoc:
    """A chunk document's content, apart from its home version: what moves when its home goes."""

    repo: str
    path: str
    language: str
    facets: frozenset[str]
    chunk: Chunk
    content_hash: str
    scope: tuple[str, ...]

    def document(self, home: str, chunk_id: str, blob: str, words: str | None = None) -> tantivy.Document:
        """`words`: the parse worker's split of its content into subwords, else split here."""
        chunk = self.chunk
        doc = tantivy.Document()
        file_fields(doc, self.repo, self.path, blob, self.language, self.facets, home)
        doc.add_text("doc_kind", "chunk")
        doc.add_text("chunk_key", chunk_id)
        doc.add_text("kind", chunk.kind)
        if chunk.symbol:  # a definition's piece names none: only the definition is found by name
            doc.add_text("symbol", chunk.symbol)
            doc.add_text("symbol_exact", chunk.symbol.lower())
            for part in self.scope:
                doc.add_text("scope", part)
        doc.add_text("symbol_path", chunk.symbol_path)
        doc.add_bytes("content", chunk.content.encode())
        doc.add_text("words", terms.words(chunk.content) if words is None else words)
        doc.add_text("ident", terms.identifier_text(chunk.content))
        _add_content_hash(doc, self.content_hash)
        doc.add_unsigned("start_line", chunk.start_line)
        doc.add_unsigned("end_line", chunk.end_line)
        doc.add_unsigned("start_byte", chunk.start_byte)
        doc.add_unsigned("end_byte", chunk.end_byte)
        doc.add_text("trigrams", chunk.content.lower())
        _, facet_weight, lexical_weight = _facet_fields(self.facets, self.path)
        doc.add_float("facet_weight", facet_weight)
        doc.add_float("lexical_weight", lexical_weight)
        return doc

    def placed(self, placement: Placement) -> ChunkDoc:
        """The same chunk where `placement` has it: in another version of its file, its new home."""
        return attrs.evolve(
            self,
            chunk=attrs.evolve(
                self.chunk,
                start_line=placement.start_line,
                end_line=placement.end_line,
                start_byte=placement.start_byte,
                end_byte=placement.end_byte,
            ),
        )

    @classmethod
    def of(cls, doc: tantivy.Document) -> ChunkDoc:
        """A chunk document read back from the index."""
        chunk = Chunk(
            start_line=first(doc, "start_line", 0),
            end_line=first(doc, "end_line", 0),
            start_byte=first(doc, "start_byte", 0),
            end_byte=first(doc, "end_byte", 0),
            symbol=first(doc, "symbol"),
            kind=first(doc, "kind"),
            symbol_path=first(doc, "symbol_path"),
            content=first(doc, "content", b"").decode(),
        )
        facets = frozenset(doc.get_all("facet")) - {SOURCE}
        scope = tuple(doc.get_all("scope"))
        repo, path, language = first(doc, "repo"), first(doc, "path"), first(doc, "language")
        return cls(repo, path, language, facets, chunk, first(doc, "content_hash"), scope)


def open_index(directory: Path) -> tantivy.Index:
    return _with_analyzers(tantivy.Index(SCHEMA, path=str(directory), reuse=True))


def open_index_to_read(directory: Path) -> tantivy.Index:
    """The index in `directory` as another process writes it: opened, never created (search/index_search.py)."""
    return _with_analyzers(tantivy.Index.open(str(directory)))


def _with_analyzers(index: tantivy.Index) -> tantivy.Index:
    index.register_tokenizer("code_parts", PARTS)
    index.register_tokenizer("code_split", SPLIT)
    index.register_tokenizer("code_trigrams", TRIGRAMS)
    return index


def hash_halves(content_hash: str) -> tuple[int, int]:
    """A content hash's two fast columns: its 32 hex digits as two 64-bit halves, the first its
    `digest64`. ValueError if it is not 32 hex digits."""
    if len(content_hash) != 32:
        raise ValueError(f"a content hash is 32 hex digits, not {content_hash!r}")
    return int(content_hash[:16], 16), int(content_hash[16:], 16)


def _add_content_hash(doc: tantivy.Document, content_hash: str) -> None:
    high, low = hash_halves(content_hash)
    doc.add_text("content_hash", content_hash)
    doc.add_unsigned("hash_high", high)
    doc.add_unsigned("hash_low", low)


def hash_columns(searcher: tantivy.Searcher, addresses: Sequence[tantivy.DocAddress]) -> np.ndarray:
    """The two fast columns of these chunk or commit documents' content hashes: a row each, high
    half (its `digest64`) first."""
    halves = [np.array(searcher.fast_field_values(f, addresses), dtype=np.uint64) for f in ("hash_high", "hash_low")]
    return np.stack(halves, axis=1)


def hex_hashes(columns: np.ndarray) -> list[str]:
    """The content hashes `hash_columns` read, as their 32 hex digits."""
    return hex_keys(columns.astype(">u8").view(np.uint8).reshape(len(columns), -1))  # big-endian: the hex reads as written


def vector_keys(searcher: tantivy.Searcher, addresses: Sequence[tantivy.DocAddress]) -> list[str]:
    """The content hashes of these chunk or commit documents, from their fast columns."""
    return hex_hashes(hash_columns(searcher, addresses))


# The documents of a `fast_hashes` read are fetched in this many slices of their hashes: a
# search's hits cost ~150 bytes each until read, 260 MiB for the kernel's chunks at once.
HASH_SLICES = 32


def fast_hashes(searcher: tantivy.Searcher, query: tantivy.Query) -> Iterator[list[tantivy.DocAddress]]:
    """The documents `query` matches (chunks or commits), a slice of their content hashes at a
    time: read their fast columns (`hash_columns`, `vector_keys`)."""
    step = 2**64 // HASH_SLICES
    for lower in range(0, 2**64, step):
        upper = lower + step - 1
        sliced = tantivy.Query.range_query(SCHEMA, "hash_high", tantivy.FieldType.Unsigned, lower, upper)
        both = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, sliced)])
        total = searcher.search(both, limit=1, count=True).count
        if total:
            yield [address for _, address in searcher.search(both, limit=total, count=False).hits]


def query_all(pairs: Sequence[tuple[str, str]]) -> tantivy.Query:
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, tantivy.Query.term_query(SCHEMA, f, v)) for f, v in pairs])


def documents(index: tantivy.Index, query: tantivy.Query) -> Iterable[tantivy.Document]:
    """Every document of `index` (as of its last reload) that `query` matches."""
    searcher = index.searcher()
    total = searcher.search(query, limit=1, count=True).count
    if not total:
        return []
    hits = searcher.search(query, limit=total, count=False).hits
    return (searcher.doc(address) for _, address in hits)
