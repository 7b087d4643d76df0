"""Versions' chunk tables: stored and read back, cached and written over, and what a search over
some views leaves out chunk by chunk (pure)."""

from codeweir.index.chunk_tables import ChunkTables, StoredTable, decode_table, encode_table
from codeweir.index.membership import MAIN, Membership, Placement, chunk_keys, version_key


def placements(blob: str, *hashes: str) -> list[Placement]:
    return [Placement(blob, i + 1, i + 1, 10 * i, 10 * i + 9, h) for i, h in enumerate(hashes)]


def stored(path: str, blob: str, *hashes: str) -> StoredTable:
    return "r", path, blob, encode_table(placements(blob, *hashes))


class Documents:
    """File documents by version key, counting the reads the tables make."""

    def __init__(self, *versions: StoredTable) -> None:
        self.docs = {version_key(repo, path, blob): (repo, path, blob, data) for repo, path, blob, data in versions}
        self.reads = 0

    def read(self, key: str) -> StoredTable | None:
        self.reads += 1
        return self.docs.get(key)


def test_a_table_reads_back_as_it_was_stored_keyed_by_each_chunks_key():
    table = decode_table(*stored("a.py", "b1", "h1", "h2", "h1"))
    assert list(table) == chunk_keys("r", "a.py", ["h1", "h2", "h1"])
    assert list(table.values()) == placements("b1", "h1", "h2", "h1")
    assert decode_table("r", "a.py", "b1", b"") == {}


def test_a_table_is_read_once_and_a_written_one_stands_until_the_commit():
    documents = Documents(stored("a.py", "b1", "h1"))
    tables: ChunkTables[object] = ChunkTables()
    key = version_key("r", "a.py", "b1")
    assert tables.table(key, documents.read) == decode_table(*stored("a.py", "b1", "h1"))
    assert tables.table(key, documents.read) == tables.table(key, documents.read) and documents.reads == 1
    written = decode_table(*stored("a.py", "b1", "h9"))
    tables.written(key, written)
    assert tables.table(key, documents.read) == written
    tables.committed()
    assert tables.table(key, documents.read) == decode_table(*stored("a.py", "b1", "h1")) and documents.reads == 1
    assert tables.table(version_key("r", "a.py", "none"), documents.read) == {}


def test_a_dropped_or_rolled_back_table_is_read_again():
    documents = Documents(stored("a.py", "b1", "h1"))
    tables: ChunkTables[object] = ChunkTables()
    key = version_key("r", "a.py", "b1")
    tables.table(key, documents.read)
    tables.dropped(key)
    tables.table(key, documents.read)
    tables.rolled_back()
    tables.table(key, documents.read)
    assert documents.reads == 3


def test_a_chunk_document_written_again_elsewhere_leaves_its_former_home_and_a_commit_forgets_them_all():
    tables: ChunkTables[str] = ChunkTables()
    tables.homed("k1", "v1", "doc at v1")
    tables.homed("k2", "v1", "other doc at v1")
    tables.homed("k1", "v2", "doc at v2")
    assert tables.pending_homed_at("v1") == {"k2": "other doc at v1"}
    assert tables.pending_home("k1") == "v2"
    tables.dropped("v2")
    assert tables.pending_home("k1") is None and tables.pending_homed_at("v2") == {}
    tables.committed()
    assert tables.pending_homed_at("v1") == {} and tables.pending_home("k2") is None


def test_a_search_leaves_out_the_chunks_only_hidden_versions_hold_and_places_those_it_sees_where_its_view_has_them():
    membership = Membership({"r": {MAIN: {"a.py": "b1"}, "v1": {"a.py": "b2"}}})
    documents = Documents(stored("a.py", "b1", "kept", "old"), stored("a.py", "b2", "new", "kept"))
    tables: ChunkTables[object] = ChunkTables()
    main_keys = chunk_keys("r", "a.py", ["kept", "old"])
    v1_keys = chunk_keys("r", "a.py", ["new", "kept"])
    main = tables.visibility(membership, documents.read, "r")
    assert main.hidden == (version_key("r", "a.py", "b2"),)
    assert main.hidden_chunks == (v1_keys[0],)
    assert main.placed[main_keys[0]] == Placement("b1", 1, 1, 0, 9, "kept")
    v1 = tables.visibility(membership, documents.read, "r", ("v1",))
    assert v1.hidden_chunks == (main_keys[1],) and v1.placed[v1_keys[1]] == Placement("b2", 2, 2, 10, 19, "kept")
    assert tables.visibility(membership, documents.read, "r") is main  # kept while the committed views stand
    assert tables.visibility(membership, documents.read, "r", (MAIN, "v1")).hidden_chunks == ()
