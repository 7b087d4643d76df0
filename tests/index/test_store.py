import hashlib
import sys
import threading

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeweir.chunk.chunker import chunk_file
from codeweir.errors import StoreError
from codeweir.index.chunk_hashes import ChunkHashChange
from codeweir.index.digest_counts import DigestCounts, digest64
from codeweir.index.membership import MAIN, chunk_keys, version_key
from codeweir.index.schema import query_all
from codeweir.index.store import Store
from codeweir.records import Chunk, FileRecord
from tests.index_reading import chunk_docs, chunks_of, file_docs
from tests.resident import resident_kib


def record(path: str, blob: str, *bodies: str, repo: str = "r", status: str = "indexed") -> FileRecord:
    chunks = []
    line = 1
    for i, body in enumerate(bodies):
        n = body.count("\n") + 1
        chunks.append(Chunk(line, line + n - 1, 0, len(body), f"f{i}", "function", f"f{i}", body))
        line += n
    hashes = tuple(hashlib.md5(body.encode()).hexdigest() for body in bodies)  # as the content's: what chunks share by
    return FileRecord(repo, path, blob, "python", tuple(chunks), hashes, status)


def test_a_file_update_replaces_its_chunks_in_one_commit(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "def one(): pass", "def two(): pass"))
    store.commit()
    assert [c.symbol for c in chunks_of(store, "r", "a.py")] == ["f0", "f1"]
    store.write_file(record("a.py", "b2", "def three(): pass"))
    # Not visible before the commit: searches read the last committed generation.
    assert len(chunks_of(store, "r", "a.py")) == 2
    store.commit()
    assert [c.content for c in chunks_of(store, "r", "a.py")] == ["def three(): pass"]
    assert store.file_blobs("r") == {"a.py": "b2"}
    assert store.count(("doc_kind", "file")) == 1


def test_delete_file_and_delete_repo_remove_every_document(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "x = 1"))
    store.write_file(record("b.py", "b2", "y = 2"))
    store.write_file(record("c.py", "b3", "z = 3", repo="other"))
    store.commit()
    store.set_member("r", MAIN, "a.py", None)
    store.commit()
    assert store.file_blobs("r") == {"b.py": "b2"}
    assert chunks_of(store, "r", "a.py") == []
    store.delete_repo("r")
    store.commit()
    assert store.repos() == ["other"]
    assert store.count(("repo", "r")) == 0


def test_committed_state_survives_reopening_and_uncommitted_does_not(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "x = 1"))
    store.commit()
    store.write_file(record("b.py", "b2", "y = 2"))
    store.rollback()
    store.close()
    again = Store(tmp_path / "index")
    assert again.file_blobs("r") == {"a.py": "b1"}


def test_file_status_counts_skip_reasons_of_the_versions_the_view_holds(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "x = 1"))
    store.write_file(record("img.png", "b2", status="binary"))
    store.commit()
    assert store.file_status("r") == {"indexed": 1, "binary": 1}
    store.write_file(record("img.png", "b3", "y = 2"))  # the binary's version replaced: its document deleted
    store.write_file(record("a.py", "b4", status="error"), views=("v1",))  # another view's version
    store.commit()
    assert store.file_status("r") == {"indexed": 2}
    assert store.file_status("r", "v1") == {"error": 1}


def test_the_names_git_paths_are_given_are_stored_and_read_back_as_they_are(tmp_path):
    """Every path reaches the store named by git/worktree.py: valid UTF-8, escapes and all."""
    names = [r"odd/bad\xffname.py", r"odd/new\x0aline.py", r"odd/back\\slash.py", "odd/café.py", "odd/a b/c.py"]
    store = Store(tmp_path / "index")
    for i, name in enumerate(names):
        store.write_file(record(name, f"b{i}", f"def f{i}(): pass"))
    store.commit()
    store.close()
    reopened = Store(tmp_path / "index")
    assert reopened.file_blobs("r") == {name: f"b{i}" for i, name in enumerate(names)}
    assert [c.path for name in names for c in chunks_of(reopened, "r", name)] == names
    reopened.set_member("r", MAIN, names[0], None)
    reopened.commit()
    assert sorted(reopened.file_blobs("r")) == sorted(names[1:])


def test_a_definition_is_stored_with_its_scope_and_a_piece_without_a_symbol(tmp_path):
    text = (
        "package pkgbits\n\ntype pkgReader struct{ elems []string }\n\n"
        "func (pr *pkgReader) newReader(k int) *reader {\n\treturn &reader{k: k}\n}\n"
    )
    chunks = tuple(chunk_file("internal/pkgbits/decoder.go", text))
    store = Store(tmp_path / "index")
    store.write_file(
        FileRecord("go", "internal/pkgbits/decoder.go", "b", "go", chunks, tuple(f"{i:032x}" for i in range(len(chunks))))
    )
    body = "".join(f"        x{i} = compute_the_next_step({i})\n" for i in range(80))
    big = tuple(chunk_file("django/db/models/sql/query.py", f"class Query:\n    def join(self, join):\n{body}        return 1\n"))
    store.write_file(
        FileRecord("dj", "django/db/models/sql/query.py", "c", "python", big, tuple(f"{i:032x}" for i in range(len(big))))
    )
    store.commit()
    searcher = store.searcher()

    def scopes(symbol: str) -> list[list[str]]:
        found = searcher.search(query_all([("symbol_exact", symbol)]), limit=10).hits
        return [searcher.doc(address).get_all("scope") for _, address in found]

    assert scopes("newreader") == [["internal", "pkgbits", "pkgreader"]]
    assert scopes("join") == [["django", "db", "models", "sql", "query", "query"]]  # one: the pieces name nothing
    pieces = [c for c in chunks_of(store, "dj", "django/db/models/sql/query.py") if c.symbol_path == "Query.join"]
    assert len(pieces) > 1 and [c.symbol for c in pieces] == ["join"] + [""] * (len(pieces) - 1)


H1, H2, H3, H4 = (f"{i:032x}" for i in range(1, 5))  # content hashes


def hashed(path: str, *hashes: str, repo: str = "r") -> FileRecord:
    """A file whose chunks have these content hashes (two chunks may share one: identical text)."""
    base = record(path, f"blob-{path}-{'-'.join(hashes)}", *(f"x{i} = {i}" for i in range(len(hashes))), repo=repo)
    return attrs.evolve(base, content_hashes=hashes)


def applied(counts: dict[str, DigestCounts], changes: list[ChunkHashChange]) -> dict[str, DigestCounts]:
    """`counts` brought up to date by `changes`, as the embed backlog's coverage does."""
    for repo, content_hash, n in changes:
        if content_hash is None:
            counts.pop(repo, None)
            continue
        held = counts.setdefault(repo, DigestCounts())
        held.add(digest64(content_hash), n)
        if not len(held):
            del counts[repo]
    return counts


def test_chunk_hash_counts_are_read_from_the_commit_and_each_commit_after_reports_what_it_changed(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(hashed("a.py", H1, H2))
    store.write_file(hashed("b.py", H2))
    store.commit()
    # Read from the index the first time: everything committed so far, and no changes yet.
    assert store.chunk_hash_counts() == {"r": DigestCounts.of([H2, H2, H1])}
    assert store.take_chunk_hash_changes() == []
    store.write_file(hashed("a.py", H3))  # rewritten: h1 and one h2 go
    store.write_file(hashed("c.py", H4, repo="other"))
    store.set_member("r", MAIN, "b.py", None)
    assert store.take_chunk_hash_changes() == [], "nothing changes before the commit"
    store.commit()
    assert sorted(store.take_chunk_hash_changes()) == [("other", H4, 1), ("r", H1, -1), ("r", H2, -2), ("r", H3, 1)]
    assert store.take_chunk_hash_changes() == []
    store.delete_repo("other")
    store.commit()
    assert store.take_chunk_hash_changes() == [("other", None, 0)]
    assert store.chunk_hash_counts() == {"r": DigestCounts.of([H3])}


def test_chunk_hash_counts_leave_out_rolled_back_writes(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(hashed("a.py", H1))
    store.commit()
    assert store.chunk_hash_counts() == {"r": DigestCounts.of([H1])}
    store.write_file(hashed("a.py", H2))
    store.rollback()
    store.write_file(hashed("b.py", H3))
    store.commit()
    assert store.take_chunk_hash_changes() == [("r", H3, 1)]
    assert store.chunk_hash_counts() == store.chunk_hash_counts() == {"r": DigestCounts.of([H1, H3])}


def written_index(directory, n: int = 30) -> None:
    store = Store(directory)
    for i in range(n):
        store.write_file(record(f"f{i}.py", f"b{i}", f"def f{i}(): pass", "def g(): pass"))
    store.commit()
    store.close()


def test_the_checksum_scan_finds_a_garbled_block_that_tantivy_opens(tmp_path):
    written_index(tmp_path / "index")
    assert Store(tmp_path / "index").verify() is None
    postings = max((tmp_path / "index").glob("*.idx"), key=lambda p: p.stat().st_size)
    with open(postings, "r+b") as file:  # in place: a file cut short under a map of it faults
        file.seek(postings.stat().st_size // 2)
        flipped = bytes(b ^ 0xFF for b in file.read(1))
        file.seek(-1, 1)
        file.write(flipped)
    store = Store(tmp_path / "index")
    assert store.damage is None  # it opens
    directory, problem = store.verify()
    assert directory == tmp_path / "index" and postings.name in problem and "checksum" in problem


def test_a_read_that_finds_the_index_damaged_reports_it_and_says_so(tmp_path):
    written_index(tmp_path / "index")
    store = Store(tmp_path / "index")
    reported = []
    store.on_damage = lambda directory, reason: reported.append(directory)
    for path in (tmp_path / "index").glob("*.idx"):  # in place: under Tantivy's map
        with open(path, "r+b") as postings:
            postings.write(b"\xff" * (path.stat().st_size - 200))  # no valid number: every read fails
    with pytest.raises(StoreError, match="the index is damaged .*rebuilt"):
        store.count(("doc_kind", "chunk"))
    assert reported == [tmp_path / "index"]


def test_a_rebuild_after_damage_serves_a_new_index_that_replaces_the_damaged_one(tmp_path):
    written_index(tmp_path / "index")
    store = Store(tmp_path / "index")
    store.start_rebuild("a read failed", store.read_directory)
    assert store.rebuilding and store.generation == 1 and store.damage == "a read failed"
    assert store.file_blobs("r") == {} and store.count(("doc_kind", "file")) == 0  # searches read the rebuild
    store.write_file(record("a.py", "b1", "def a(): pass"))
    store.commit()
    assert store.count(("doc_kind", "file")) == 1
    store.finish_rebuild()
    assert not store.rebuilding and store.damage is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    assert Store(tmp_path / "index").file_blobs("r") == {"a.py": "b1"}


def test_the_checksum_scan_finds_nothing_wrong_while_commits_merge_segments_and_supersede_deletes(tmp_path):
    written_index(tmp_path / "index", 60)
    store = Store(tmp_path / "index")
    found = []
    done = threading.Event()

    def scan() -> None:
        while not done.is_set():
            found.append(store.verify())

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        for i in range(40):  # each commit writes a segment, deletes documents of others, merges
            store.set_member("r", MAIN, f"f{i}.py", None)
            store.write_file(record(f"n{i}.py", f"c{i}", f"def n{i}(): pass"))
            store.commit()
    finally:
        done.set()
        scanner.join()
    assert found and set(found) == {None}


def test_a_version_on_several_views_is_stored_once_and_goes_when_the_last_view_lets_it_go(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "x = 1"), views=(MAIN, "v1"))
    store.commit()
    assert store.count(("doc_kind", "chunk")) == 1
    assert store.file_blobs("r") == store.file_blobs("r", "v1") == {"a.py": "b1"}
    store.write_file(record("a.py", "b2", "x = 2"))  # the main view moves on; v1 still holds b1
    store.commit()
    assert store.count(("file_key", version_key("r", "a.py", "b1"))) == 2  # its file doc and chunk
    assert [c.content for c in chunks_of(store, "r", "a.py", "v1")] == ["x = 1"]
    store.set_member("r", "v1", "a.py", "b2")  # v1 adopts the version the main view holds
    store.commit()
    assert store.count(("file_key", version_key("r", "a.py", "b1"))) == 0
    assert store.count(("doc_kind", "chunk")) == 1
    assert store.membership.holders("r", "a.py", "b2") == (MAIN, "v1")


def test_views_and_their_versions_survive_reopening(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "x = 1"), views=("v1",))
    store.write_file(record("a.py", "b2", "x = 2"), views=(MAIN, "v2"))
    store.commit()
    store.close()
    reopened = Store(tmp_path / "index")
    assert reopened.membership.views("r") == [MAIN, "v1", "v2"]
    assert reopened.file_blobs("r", "v1") == {"a.py": "b1"}
    assert reopened.file_status("r", "v2") == {"indexed": 1}


def test_a_rolled_back_view_change_leaves_the_committed_views_and_versions(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "x = 1"), views=(MAIN, "v1"))
    store.commit()
    store.set_member("r", MAIN, "a.py", None)
    store.set_member("r", "v1", "a.py", None)  # the version would go with this commit
    store.rollback()
    store.write_file(record("b.py", "b3", "y = 3"))
    store.commit()
    assert store.file_blobs("r", "v1") == {"a.py": "b1"}
    assert [c.content for c in chunks_of(store, "r", "a.py")] == ["x = 1"]


def test_chunks_two_versions_of_a_file_have_alike_are_stored_once_and_placed_in_each(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "def kept(): pass", "def old(): pass"), views=("v1",))
    store.write_file(record("a.py", "b2", "# new first line", "def kept(): pass"))
    store.commit()
    assert store.count(("doc_kind", "chunk")) == 3  # `kept` once, for both versions
    assert [(c.content, c.start_line) for c in chunks_of(store, "r", "a.py", "v1")] == [
        ("def kept(): pass", 1),
        ("def old(): pass", 2),
    ]
    assert [(c.content, c.start_line, c.blob) for c in chunks_of(store, "r", "a.py")] == [
        ("# new first line", 1, "b2"),
        ("def kept(): pass", 2, "b2"),
    ]
    main, v1 = store.visibility("r"), store.visibility("r", ("v1",))
    assert len(main.hidden_chunks) == 1 and len(v1.hidden_chunks) == 1 and main.hidden_chunks != v1.hidden_chunks


def test_a_shared_chunk_whose_home_version_goes_moves_home_to_a_version_that_holds_it(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "def kept(): pass", "def old(): pass"))
    store.commit()
    store.write_file(record("a.py", "b2", "# new first line", "def kept(): pass"), views=("v1",))
    store.commit()
    store.set_member("r", MAIN, "a.py", None)  # b1, home of `kept`, goes
    store.commit()
    assert store.count(("doc_kind", "chunk")) == 2
    assert [(c.content, c.start_line, c.blob) for c in chunks_of(store, "r", "a.py", "v1")] == [
        ("# new first line", 1, "b2"),
        ("def kept(): pass", 2, "b2"),
    ]
    assert store.chunk_hash_counts() == {
        "r": DigestCounts.of([hashlib.md5(b"# new first line").hexdigest(), hashlib.md5(b"def kept(): pass").hexdigest()])
    }


_bodies = st.sampled_from(["def a(): pass", "def b(): pass", "x = 1", "# note"])
_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"),
            st.sampled_from(["p.py", "q.py"]),
            st.lists(_bodies, max_size=4),
            st.sampled_from([(MAIN,), ("v1",), (MAIN, "v1")]),
        ),
        st.tuples(st.just("leave"), st.sampled_from(["p.py", "q.py"]), st.sampled_from([MAIN, "v1"])),
        st.tuples(st.just("commit")),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(_steps)
def test_whatever_views_write_and_leave_each_chunk_is_stored_once_each_view_reads_what_it_holds_and_hashes_are_counted(
    tmp_path_factory, steps
):
    store = Store(tmp_path_factory.mktemp("index") / "index")
    counts = store.chunk_hash_counts()  # from here on each commit's changes to them are recorded
    written: dict[str, FileRecord] = {}  # blob -> the record of that version
    for step in [*steps, ("commit",)]:
        if step[0] == "write":
            _, path, bodies, views = step
            blob = hashlib.md5(f"{path}{bodies}".encode()).hexdigest()
            written[blob] = record(path, blob, *bodies)
            store.write_file(written[blob], views=views)
        elif step[0] == "leave":
            store.set_member("r", step[2], step[1], None)
        else:
            store.commit()
    keys = [d.get_first("chunk_key") for d in chunk_docs(store)]
    assert len(keys) == len(set(keys))
    held = {blob for view in store.membership.views("r") for blob in store.file_blobs("r", view).values()}
    for view in store.membership.views("r"):
        for path, blob in store.file_blobs("r", view).items():
            want = [(c.start_line, c.content) for c in written[blob].chunks]
            assert [(c.start_line, c.content) for c in chunks_of(store, "r", path, view)] == want
    # Nothing is stored that no view holds.
    assert {(d.get_first("path"), d.get_first("blob")) for d in file_docs(store)} == {(written[b].path, b) for b in held}
    assert len(keys) == len({k for b in held for k in chunk_keys("r", written[b].path, written[b].content_hashes)})
    # The content hashes counted commit by commit are those of the chunk documents.
    hashes = [d.get_first("content_hash") for d in chunk_docs(store)]
    assert applied(counts, store.take_chunk_hash_changes()) == ({"r": DigestCounts.of(hashes)} if hashes else {})
    assert store.chunk_hash_counts() == counts


def test_files_of_a_commit_a_killed_writer_never_finished_do_not_fail_the_same_commit_made_again(tmp_path):
    """A kill between writing a commit's files (Tantivy lists each in .managed.json first) and
    its meta leaves them behind; the resumed sync makes the same deletes at the same opstamp,
    whose file must not already exist."""
    directory = tmp_path / "index"
    store = Store(directory)
    store.write_file(record("a.py", "b1", "x = 1"))
    store.write_file(record("b.py", "b2", "y = 2"))
    store.commit()
    store.close()
    committed = (directory / "meta.json").read_bytes()
    store = Store(directory)
    store.set_member("r", MAIN, "a.py", None)  # a delete: a `.del` file for the segment at commit
    store.commit()
    store.close()
    left = {p.name for p in directory.iterdir()}
    (directory / "meta.json").write_bytes(committed)  # as if killed before the meta was written
    assert any(name.endswith(".del") for name in left)
    store = Store(directory)
    assert store.file_blobs("r") == {"a.py": "b1", "b.py": "b2"}
    store.set_member("r", MAIN, "a.py", None)
    store.commit()
    assert store.file_blobs("r") == {"b.py": "b2"} and chunks_of(store, "r", "a.py") == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")
def test_release_pages_drops_the_index_pages_reads_mapped_and_the_index_reads_the_same_after(tmp_path):
    store = Store(tmp_path / "index")
    for i in range(200):
        store.write_file(
            FileRecord(
                "r", f"f{i}.txt", f"b{i}", "text", (Chunk(1, 1, 0, 4000, "", "text", "", f"x{i} " * 800),), (f"{i:032x}",)
            ),
            (MAIN,),
        )
    store.commit()

    def contents() -> list[bytes]:  # every stored chunk, read through mmap
        return sorted(doc.get_first("content") for doc in chunk_docs(store))

    before = contents()
    assert resident_kib(tmp_path / "index") > 0
    store.release_pages()
    assert resident_kib(tmp_path / "index") == 0
    assert contents() == before and len(before) == 200


def test_commits_counts_the_commits_made_after_which_merges_may_run(tmp_path):
    store = Store(tmp_path / "index")
    assert store.commits == 0
    store.write_file(FileRecord("r", "a.txt", "b1", "text", (Chunk(1, 1, 0, 4, "", "text", "", "abcd"),), ("0" * 32,)), (MAIN,))
    store.commit()
    store.commit()
    assert store.commits == 2
