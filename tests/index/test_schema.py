import hashlib

import pytest
import tantivy

from codeweir.index.membership import Placement
from codeweir.index.schema import SCHEMA, ChunkDoc, module_path, open_index, stored_chunk
from codeweir.records import Chunk


@pytest.mark.parametrize(
    "language, path, first_chunk, module",
    [
        ("python", "django/db/models/sql/query.py", "", ("django", "db", "models", "sql", "query")),
        ("python", "django/db/models/__init__.py", "", ("django", "db", "models")),
        ("go", "bufio/bufio.go", "package bufio\n", ("bufio",)),
        ("go", "internal/pkgbits/decoder.go", "// Copyright\n\npackage pkgbits\n", ("internal", "pkgbits")),
        ("go", "cmd/go/main.go", "package main\n", ("cmd", "go", "main")),  # the clause, where it differs
        ("go", "doc.go", "package std\n", ("std",)),
    ],
)
def test_a_files_module_path_is_its_directories_then_module_or_package_name(language, path, first_chunk, module):
    chunks = (Chunk(1, 1, 0, len(first_chunk), "", "text", "", first_chunk),) if first_chunk else ()
    assert module_path(language, path, chunks) == module


def test_a_chunk_document_reads_back_as_it_was_made_and_places_itself_in_another_version():
    chunk = Chunk(3, 4, 10, 30, "join", "method", "Query.join", "def join(self):\n    pass")
    content_hash = hashlib.md5(chunk.content.encode()).hexdigest()
    scope = ("db", "query", "query")
    made = ChunkDoc("r", "db/query.py", "python", frozenset({"test"}), chunk, content_hash, scope)
    doc = made.document("r/db/query.py\x00b1", "k1", "b1")
    assert ChunkDoc.of(doc) == made
    placed = stored_chunk(doc, {"k1": Placement("b2", 13, 14, 110, 130, content_hash)})
    assert (placed.blob, placed.start_line, placed.end_line) == ("b2", 13, 14)
    assert (stored_chunk(doc).blob, stored_chunk(doc).start_line) == ("b1", 3)


def test_a_chunk_is_found_by_the_trigrams_of_its_lowercased_text_and_by_no_others(tmp_path):
    chunk = Chunk(1, 1, 0, 20, "", "text", "", "ParseDuration(ÉTÉ)")
    made = ChunkDoc("r", "a.go", "go", frozenset(), chunk, "0" * 32, ())
    index = open_index(tmp_path)
    writer = index.writer(heap_size=15_000_000, num_threads=1)
    writer.add_document(made.document("r/a.go\x00b1", "k1", "b1"))
    writer.commit()
    index.reload()
    searcher = index.searcher()

    def found(trigram: str) -> bool:
        return searcher.search(tantivy.Query.term_query(SCHEMA, "trigrams", trigram)).count == 1

    assert all(found(t) for t in ("par", "ion", "(ét", "été", "té)"))
    assert not any(found(t) for t in ("Par", "ÉTÉ", "pdu"))


def test_a_chunk_document_placed_in_another_version_takes_its_lines_and_keeps_the_rest():
    chunk = Chunk(3, 4, 10, 30, "join", "method", "Query.join", "def join(self):\n    pass")
    made = ChunkDoc("r", "db/query.py", "python", frozenset(), chunk, "0" * 32, ("db",))
    moved = made.placed(Placement("b2", 13, 14, 110, 130, "h"))
    assert (moved.chunk.start_line, moved.chunk.end_line, moved.chunk.start_byte, moved.chunk.end_byte) == (13, 14, 110, 130)
    assert (moved.chunk.content, moved.scope, moved.path) == (chunk.content, made.scope, made.path)
