"""The chunks' content hashes follow the commits, and say what each one changed (pure)."""

from collections import Counter

from codeweir.index.chunk_hashes import ChunkHashes


def loaded() -> ChunkHashes:
    hashes = ChunkHashes()
    hashes.load({"r": {"k1": ["h1"], "k2": ["h2"], "k3": ["h2"]}})
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
    hashes.load({})
    assert hashes.loaded and hashes.counts() == {}
