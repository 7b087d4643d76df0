"""The chunks' content hashes follow the commits, and say what each one changed (pure)."""

from codeweir.index.chunk_hashes import ChunkHashChange, ChunkHashes
from codeweir.index.digest_counts import DigestCounts


def counted(*hashes: str) -> DigestCounts:
    return DigestCounts.of(hashes)


def loaded() -> ChunkHashes:
    hashes = ChunkHashes()
    hashes.load({"r": counted("h1", "h2", "h2"), "empty": counted()})
    return hashes


def test_counts_are_a_copy_of_the_loaded_hashes_per_repository():
    hashes = loaded()
    counts = hashes.counts()
    assert counts == {"r": counted("h1", "h2", "h2")}
    counts["r"].add(counts["r"].arrays()[0][0], 99)
    assert hashes.counts() == {"r": counted("h1", "h2", "h2")}


def test_writes_count_only_once_committed_and_each_commit_reports_its_changes():
    hashes = loaded()
    hashes.written("r", "h1", -1)
    hashes.written("r", "h3", 1)
    hashes.written("r", "h2", -1)
    hashes.written("other", "h4", 1)
    assert hashes.counts() == {"r": counted("h1", "h2", "h2")} and hashes.take_changes() == []
    hashes.committed()
    assert hashes.counts() == {"r": counted("h2", "h3"), "other": counted("h4")}
    hashes.written("r", "h2", -1)
    hashes.written("r", "h5", 1)
    hashes.written("r", "h3", 1)
    hashes.written("r", "h3", -1)  # written and deleted again in one commit: no change
    hashes.committed()
    assert sorted(hashes.take_changes()) == [("r", "h2", -1), ("r", "h5", 1)]
    assert hashes.take_changes() == []


def test_a_repository_dropped_or_every_chunk_dropped_says_so_and_leaves_no_counts_behind():
    hashes = loaded()
    hashes.written("other", "h4", 1)
    hashes.committed()
    hashes.take_changes()
    hashes.written("r", "h1", -1)
    hashes.repo_dropped("r")
    hashes.written("r", "h7", 1)  # after the drop, in the same commit
    hashes.committed()
    assert hashes.take_changes() == [ChunkHashChange("r", None, 0), ChunkHashChange("r", "h7", 1)]
    assert hashes.counts() == {"other": counted("h4"), "r": counted("h7")}
    hashes.written("other", "h4", -1)  # its last chunk: the repository has none left
    hashes.all_dropped()
    hashes.committed()
    assert sorted(hashes.take_changes(), key=str) == [("other", None, 0), ("r", None, 0)]
    assert hashes.counts() == {}


def test_a_rollback_forgets_the_uncommitted_writes():
    hashes = loaded()
    hashes.written("r", "h1", -1)
    hashes.rolled_back()
    hashes.committed()
    assert hashes.counts() == {"r": counted("h1", "h2", "h2")}


def test_before_the_first_load_commits_record_nothing():
    hashes = ChunkHashes()
    hashes.written("r", "h1", 1)
    hashes.committed()
    assert not hashes.loaded and hashes.take_changes() == [] and hashes.counts() == {}
    hashes.load({})
    assert hashes.loaded and hashes.counts() == {}
