"""The shared writer stage: every write it receives reaches the index, whatever the timing."""

from functools import partial

import trio
from trio.testing import wait_all_tasks_blocked

from codeweir.config import Limits
from codeweir.errors import StoreError
from codeweir.index.store import Store
from codeweir.index.writes import CommitPace, SetRepoMeta, SyncTracker, WriteCommits, WriteFile, ignore, writer_stage
from codeweir.records import CommitRecord, FileRecord


def record(path: str, repo: str = "r") -> FileRecord:
    return FileRecord(repo, path, f"blob-{path}", "text", (), ())


async def test_a_write_waiting_for_the_store_as_the_commit_deadline_passes_is_still_written(tmp_path, mock_clock):
    store = Store(tmp_path / "index")
    store_limiter = trio.CapacityLimiter(1)
    send, receive = trio.open_memory_channel(8)
    tracker = SyncTracker("r", 2, report=lambda event: None)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(writer_stage, receive, store, store_limiter=store_limiter, limits=Limits(commit_every_seconds=1))
        )
        await send.send(WriteFile(tracker, record("a.txt")))
        await wait_all_tasks_blocked()
        # Holding the store: a.txt is written (not committed) and b.txt waits for the store
        # while the commit deadline passes.
        async with store_limiter:
            await send.send(WriteFile(tracker, record("b.txt")))
            await wait_all_tasks_blocked()
            mock_clock.jump(5)
            await wait_all_tasks_blocked()
        send.close()
    assert tracker.committed == 2 and tracker.error is None
    assert store.file_blobs("r") == {"a.txt": "blob-a.txt", "b.txt": "blob-b.txt"}


async def test_once_a_write_of_a_sync_fails_none_of_its_later_writes_is_applied_not_even_its_meta(tmp_path):
    store = Store(tmp_path / "index")
    send, receive = trio.open_memory_channel(0)  # each write reaches the writer on its own
    failing = SyncTracker("r", 3, report=ignore)
    other = SyncTracker("s", 1, report=ignore)
    rejected = CommitRecord(sha="a" * 40, author="x <x@y>", date=0, message="m", paths=(), content_hash="not a hash")
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(writer_stage, receive, store, store_limiter=trio.CapacityLimiter(1), limits=Limits()))
        await send.send(WriteCommits(failing, "r", (rejected,)))
        await failing.done.wait()
        assert isinstance(failing.error, StoreError) and "writing commits of r" in str(failing.error)
        await send.send(WriteFile(failing, record("a.txt")))
        await send.send(SetRepoMeta(failing, "r", {"commits": "the tip"}))
        await send.send(WriteFile(other, record("b.txt", repo="s")))  # other syncs go on
        await other.done.wait()
        send.close()
    assert other.error is None and store.file_blobs("s") == {"b.txt": "blob-b.txt"}
    assert store.repo_meta("r") == {} and store.file_blobs("r") == {}


def test_a_long_sync_commits_at_doubling_intervals_up_to_a_cap_or_a_bound_of_chunk_or_draft_text_and_a_syncs_end_starts_them_again():
    pace = CommitPace(files=250, seconds=2.0)
    assert not pace.due(249, 1.9) and pace.due(250, 0) and pace.due(0, 2.0)
    for _ in range(3):
        pace.committed(sync_finished=False)
    assert not pace.due(1999, 15.9) and pace.due(2000, 0) and pace.deadline(10.0) == 26.0
    for _ in range(20):
        pace.committed(sync_finished=False)
    assert pace.due(250 * CommitPace.STRETCH_MAX, 0) and pace.due(0, 2.0 * CommitPace.STRETCH_MAX)
    pace.committed(sync_finished=True)
    assert pace.due(250, 0)
    assert not pace.due(1, 0, CommitPace.TEXT_MAX - 1) and pace.due(1, 0, CommitPace.TEXT_MAX)  # whatever the stretch
    assert not pace.due(1, 0, 0, CommitPace.DRAFT_TEXT_MAX - 1) and pace.due(1, 0, 0, CommitPace.DRAFT_TEXT_MAX)


async def test_a_sync_of_many_files_is_committed_a_few_times_not_every_k_files(tmp_path):
    store = Store(tmp_path / "index")
    commits = 0

    def committed() -> None:
        nonlocal commits
        commits += 1

    send, receive = trio.open_memory_channel(0)
    tracker = SyncTracker("r", 70, report=ignore)
    async with trio.open_nursery() as nursery:
        limits = Limits(commit_every_files=5, commit_every_seconds=3600)
        await nursery.start(
            partial(writer_stage, receive, store, store_limiter=trio.CapacityLimiter(1), limits=limits, on_committed=committed)
        )
        for i in range(70):
            await send.send(WriteFile(tracker, record(f"{i}.txt")))
        send.close()
    # at 5, 15, 35 and 75 files, 70 being the last, rather than 14 commits of 5
    assert tracker.committed == 70 and commits == 4
