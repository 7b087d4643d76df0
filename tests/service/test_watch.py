import math
import shutil
from functools import partial

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio.testing import wait_all_tasks_blocked

from codeweir.config import RepoConfig
from codeweir.errors import RepoError
from codeweir.git.repo import resolve_ref
from codeweir.service.scheduler import SyncRequest
from codeweir.service.watch import (
    Changes,
    Debouncer,
    is_ref_change,
    poll_refs,
    sync_request,
    watch_worktree,
    watches_worktree,
)
from tests.gitrepo import make_repo


def test_changes_are_due_after_a_quiet_period():
    debouncer = Debouncer(quiet=0.3, max_delay=1.0)
    assert debouncer.deadline() == math.inf
    debouncer.add(Changes(frozenset({"a.py"})), now=10.0)
    debouncer.add(Changes(frozenset({"b.py"})), now=10.2)
    assert debouncer.deadline() == pytest.approx(10.5)
    assert debouncer.take(now=10.4) is None
    assert debouncer.take(now=10.5) == Changes(frozenset({"a.py", "b.py"}))
    assert debouncer.deadline() == math.inf and debouncer.take(now=99) is None


def test_a_worktree_that_never_goes_quiet_is_synced_after_max_delay():
    debouncer = Debouncer(quiet=0.3, max_delay=1.0)
    for tick in range(20):
        debouncer.add(Changes(frozenset({f"gen/{tick}.py"})), now=tick * 0.1)
    assert debouncer.deadline() == pytest.approx(1.0)


def test_a_ref_move_is_kept_with_the_paths():
    debouncer = Debouncer(quiet=0.3, max_delay=1.0)
    debouncer.add(Changes(frozenset({"a.py"})), now=0)
    debouncer.add(Changes(refs_moved=True), now=0.1)
    debouncer.add(Changes(), now=0.2)  # nothing: does not extend the quiet period
    assert debouncer.take(now=0.4) == Changes(frozenset({"a.py"}), refs_moved=True)


@given(
    st.lists(st.tuples(st.floats(0, 2, allow_nan=False), st.integers(0, 50)), min_size=1, max_size=50),
    st.floats(0.05, 1),
    st.floats(1, 3),
)
def test_every_change_is_delivered_once_in_batches_split_by_quiet_or_max_delay(events, quiet, max_factor):
    debouncer = Debouncer(quiet=quiet, max_delay=quiet * max_factor)
    batches, times, now = [], [], 0.0
    for gap, path in events:
        now += gap
        while debouncer.deadline() <= now:
            batches.append((debouncer.take(debouncer.deadline()).paths, list(times)))
            times.clear()
        debouncer.add(Changes(frozenset({f"{path}.py"})), now)
        times.append(now)
    batches.append((debouncer.take(debouncer.deadline()).paths, list(times)))
    assert set().union(*(paths for paths, _ in batches)) == {f"{p}.py" for _, p in events}
    for _, batch_times in batches:
        assert all(b - a < quiet for a, b in zip(batch_times, batch_times[1:]))
        assert batch_times[-1] - batch_times[0] < quiet * max_factor


@pytest.mark.parametrize(
    "path, moved",
    [
        (".git/HEAD", True),
        (".git/refs/heads/main", True),
        (".git/packed-refs", True),
        (".git/refs/heads/main.lock", False),
        (".git/index", False),
        (".git/objects/ab/cdef", False),
    ],
)
def test_only_head_and_ref_files_count_as_ref_moves(path, moved):
    assert is_ref_change(path) is moved


def test_paths_become_an_interactive_paths_sync_and_a_ref_move_a_whole_sync():
    assert sync_request("r", Changes(frozenset({"a.py"}))) == SyncRequest("r", paths={"a.py"}, priority="interactive")
    assert sync_request("r", Changes(frozenset({"a.py"}), refs_moved=True)) == SyncRequest("r")


def test_worktrees_are_watched_and_bare_repos_and_configured_refs_polled(tmp_path):
    repo = make_repo(tmp_path / "w", {"a.py": "x\n"})
    assert watches_worktree(repo.config())
    assert not watches_worktree(repo.config(ref="main"))
    assert not watches_worktree(repo.clone_bare(tmp_path / "b.git").config())
    with pytest.raises(RepoError, match=r"^repository 'gone' at .*missing: cannot open: no such directory$"):
        watches_worktree(RepoConfig(name="gone", path=str(tmp_path / "missing")))


async def test_saving_a_file_submits_a_sync_of_that_path_and_not_of_ignored_ones(tmp_path):
    repo = make_repo(tmp_path / "w", {".gitignore": "*.log\nbuild/\n", "a.py": "x\n"})
    send, receive = trio.open_memory_channel[SyncRequest](10)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(watch_worktree, repo.config("w"), send.send_nowait, debounce=0.05))
        await wait_all_tasks_blocked()  # the watcher is waiting for changes: its watches are set
        repo.write("debug.log", "ignored\n")
        repo.write("build/out.py", "ignored\n")
        repo.write("a.py", "y\n")
        with trio.fail_after(10):
            assert await receive.receive() == SyncRequest("w", paths={"a.py"}, priority="interactive")
            await trio.to_thread.run_sync(repo.commit, "edit")
            assert await receive.receive() == SyncRequest("w")
        nursery.cancel_scope.cancel()


async def test_poll_refs_submits_a_whole_sync_when_the_ref_moves(tmp_path):
    # The real clock: resolving runs in a thread, which an autojump clock would jump past.
    work = make_repo(tmp_path / "w", {"a.py": "x\n"})
    bare = work.clone_bare(tmp_path / "b.git")
    send, receive = trio.open_memory_channel[SyncRequest](10)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(poll_refs, bare.config("b"), send.send_nowait, interval=0.01))
        for message in ("one", "two"):
            work.write("a.py", f"{message}\n")
            work.commit(message)
            work.git("push", "-q", str(bare.root), "main")
            with trio.fail_after(10):
                assert await receive.receive() == SyncRequest("b")
            assert resolve_ref(bare.config()) == work.head()
        nursery.cancel_scope.cancel()


async def test_poll_refs_submits_a_whole_sync_when_a_ref_the_refs_patterns_name_appears_or_goes(tmp_path):
    work = make_repo(tmp_path / "w", {"a.py": "x\n"})
    bare = work.clone_bare(tmp_path / "b.git")
    send, receive = trio.open_memory_channel[SyncRequest](10)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(poll_refs, bare.config("b", refs=("feature/*",)), send.send_nowait, interval=0.01))
        for change in (("branch", "feature/x"), ("branch", "-D", "feature/x")):
            bare.git(*change)
            with trio.fail_after(10):
                assert await receive.receive() == SyncRequest("b")
        nursery.cancel_scope.cancel()


async def test_a_deleted_worktree_ends_its_watcher_with_a_repo_error(tmp_path):
    repo = make_repo(tmp_path / "w", {"a.py": "x\n"})
    with pytest.raises(ExceptionGroup) as raised:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(watch_worktree, repo.config("w"), lambda request: None, debounce=0.05))
                await wait_all_tasks_blocked()
                shutil.rmtree(repo.root)
    assert raised.group_contains(RepoError, match="the worktree is gone", depth=None)
