"""The chunks' content hashes follow the commits, and say what each one changed (pure)."""

from collections import Counter

from codeweir.index.chunk_hashes import ChunkHashes


def loaded() -> ChunkHashes:
    hashes = ChunkHashes()
    hashes.load([("r", "k1", "h1"), ("r", "k2", "h2"), ("r", "k3", "h2")])
    return hashes


def test_counts_are_a_copy_of_the_loaded_hashes_per_repository():
    hashes = loaded()
    counts = hashes.counts()
    assert counts == {"r": Counter({"h2": 2, "h1": 1})}
    counts["r"]["h1"] = 99
    assert hashes.counts()["r"]["h1"] == 1


def test_writes_count_only_once_committed_and_each_commit_reports_its_changes():
    hashes = loaded()
    hashes.written("r", "k1", ("h3",))  # rewritten with another hash
    hashes.written("r", "k2", ())  # deleted
    hashes.written("other", "k9", ("h4",))
    assert hashes.counts() == {"r": Counter({"h2": 2, "h1": 1})} and hashes.take_changes() == []
    hashes.committed()
    assert hashes.counts() == {"r": Counter({"h2": 1, "h3": 1}), "other": Counter({"h4": 1})}
    hashes.written("r", "k3", ("h5",))
    hashes.committed()
    assert sorted(hashes.take_changes()) == [("r", "h2", -1), ("r", "h5", 1)]
    assert hashes.take_changes() == []


def test_a_repository_dropped_or_every_chunk_dropped_leaves_no_counts_behind():
    hashes = loaded()
    hashes.written("other", "k9", ("h4",))
    hashes.committed()
    hashes.repo_dropped("r")
    hashes.committed()
    assert hashes.counts() == {"other": Counter({"h4": 1})}
    hashes.all_dropped()
    hashes.committed()
    assert hashes.take_changes() == [("other", "h4", -1)]
    assert hashes.counts() == {}


def test_a_rollback_forgets_the_uncommitted_writes():
    hashes = loaded()
    hashes.written("r", "k1", ())
    hashes.rolled_back()
    hashes.committed()
    assert hashes.counts() == {"r": Counter({"h2": 2, "h1": 1})}


def test_before_the_first_load_commits_record_nothing():
    hashes = ChunkHashes()
    hashes.written("r", "k1", ("h1",))
    hashes.committed()
    assert not hashes.loaded and hashes.take_changes() == []
    hashes.load([])
    assert hashes.loaded and hashes.counts() == {}


def test_digest_keys_and_a_key_with_two_documents_count_each_document_and_go_together():
    """Keys are kept as their digest's int; a key whose documents are two (a resumed write) counts
    both, and a delete of the key takes both away."""
    digest = "0f" * 16
    hashes = ChunkHashes()
    hashes.load([("r", digest, "h1"), ("r", digest, "h2"), ("r", "k2", "h1")])
    assert hashes.counts() == {"r": Counter({"h1": 2, "h2": 1})}
    hashes.written("r", digest, ())
    hashes.committed()
    assert sorted(hashes.take_changes()) == [("r", "h1", -1), ("r", "h2", -1)]
    assert hashes.counts() == {"r": Counter({"h1": 1})}


def test_a_load_that_raises_loads_nothing():
    def interrupted():
        yield "r", "k1", "h1"
        raise RuntimeError("stopped")

    hashes = ChunkHashes()
    try:
        hashes.load(interrupted())
    except RuntimeError:
        pass
    assert not hashes.loaded
