"""What each commit changed in the chunks' content hashes, from the first load on (pure)."""

from codeweir.index.chunk_hashes import ChunkHashChange, ChunkHashes


def loaded() -> ChunkHashes:
    hashes = ChunkHashes()
    hashes.load({"r"})
    return hashes


def test_writes_count_only_once_committed_and_each_commit_reports_its_net_changes():
    hashes = loaded()
    hashes.written("r", "h1", -1)
    hashes.written("r", "h3", 1)
    hashes.written("r", "h2", -1)
    hashes.written("other", "h4", 1)
    assert hashes.take_changes() == [], "nothing before the commit"
    hashes.committed()
    assert sorted(hashes.take_changes()) == [("other", "h4", 1), ("r", "h1", -1), ("r", "h2", -1), ("r", "h3", 1)]
    hashes.written("r", "h2", -1)
    hashes.written("r", "h5", 1)
    hashes.written("r", "h3", 1)
    hashes.written("r", "h3", -1)  # written and deleted again in one commit: no change
    hashes.committed()
    assert sorted(hashes.take_changes()) == [("r", "h2", -1), ("r", "h5", 1)]
    assert hashes.take_changes() == []


def test_a_repository_dropped_says_so_before_what_the_same_commit_wrote_after_it():
    hashes = loaded()
    hashes.written("r", "h1", -1)
    hashes.repo_dropped("r")
    hashes.written("r", "h7", 1)  # after the drop, in the same commit
    hashes.repo_dropped("never-held")
    hashes.committed()
    assert hashes.take_changes() == [ChunkHashChange("r", None, 0), ChunkHashChange("r", "h7", 1)]


def test_every_chunk_dropped_names_each_repository_loaded_or_written_since():
    hashes = loaded()
    hashes.written("other", "h4", 1)
    hashes.committed()
    hashes.take_changes()
    hashes.all_dropped()
    hashes.committed()
    assert sorted(hashes.take_changes(), key=str) == [("other", None, 0), ("r", None, 0)]


def test_a_rollback_forgets_the_uncommitted_writes():
    hashes = loaded()
    hashes.written("r", "h1", -1)
    hashes.rolled_back()
    hashes.committed()
    assert hashes.take_changes() == []


def test_before_the_first_load_commits_record_nothing_and_a_load_drops_what_was_recorded():
    hashes = ChunkHashes()
    hashes.written("r", "h1", 1)
    hashes.committed()
    assert hashes.take_changes() == []
    hashes.load(set())
    hashes.written("r", "h1", 1)
    hashes.committed()
    hashes.load({"r"})  # read again: that commit is in what was read
    assert hashes.take_changes() == []
