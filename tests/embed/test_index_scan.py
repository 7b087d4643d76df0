"""embed/index_scan.py: the chunks and commits of the committed index that have no vector."""

from codeweir.embed.index_scan import scan_index, texts_of
from codeweir.embed.queue import COMMIT_RANK, embed_rank
from codeweir.embedded_text import content_hash, document_text
from codeweir.facets import classify
from codeweir.index.digest_counts import digest64
from codeweir.index.store import Store
from codeweir.records import Chunk, CommitRecord, FileRecord


def one_chunk_file(path: str, text: str) -> FileRecord:
    chunk = Chunk(1, 1, 0, len(text), "", "function", "", text)
    embedded = document_text(language="python", symbol_path="", kind="function", content=text)
    return FileRecord("r", path, f"blob-{path}", "python", (chunk,), (content_hash(embedded),), facets=classify(path, text))


def indexed(tmp_path, files: dict[str, str]) -> Store:
    store = Store(tmp_path / "index")
    for path, text in files.items():
        store.write_file(one_chunk_file(path, text))
    store.write_commits("r", [CommitRecord("c" * 40, "someone", 0, "Fix the parser", ("a.py",), content_hash("Fix the parser"))])
    store.commit()
    return store


def test_a_scan_finds_what_has_no_vector_with_its_kind_and_rank_and_every_hash_the_index_holds(tmp_path):
    store = indexed(
        tmp_path, {"app.py": "def app(): pass", "tests/test_app.py": "def test_app(): pass", "vendor/x.py": "def x(): pass"}
    )
    source, test, vendored = (
        one_chunk_file(p, t).content_hashes[0]
        for p, t in [
            ("app.py", "def app(): pass"),
            ("tests/test_app.py", "def test_app(): pass"),
            ("vendor/x.py", "def x(): pass"),
        ]
    )
    commit = content_hash("Fix the parser")
    found = scan_index(store, {source}, lambda: False, limit=10)
    assert found.missing == {
        test: ("chunk", embed_rank(["test"])),
        vendored: ("chunk", embed_rank(["vendored"])),
        commit: ("commit", COMMIT_RANK),
    }
    assert not found.more
    assert found.live.tolist() == sorted(digest64(h) for h in (source, test, vendored, commit))
    assert texts_of(store, [test]) == {
        test: document_text(language="python", symbol_path="", kind="function", content="def test_app(): pass")
    }


def test_a_scan_keeps_the_best_ranked_up_to_its_limit_and_says_more_are_missing(tmp_path):
    files = {f"tests/test_{i}.py": f"def test_{i}(): pass" for i in range(5)}
    files |= {f"src_{i}.py": f"def src_{i}(): pass" for i in range(3)}
    store = indexed(tmp_path, files)
    found = scan_index(store, set(), lambda: False, limit=4)
    ranks = sorted(rank for _, rank in found.missing.values())
    assert found.more and ranks == [0, 0, 0, embed_rank(["test"])]
    assert len(found.live) == 9  # eight chunks and a commit
