"""The daemon and its watcher meet paths git can store that are no plain UTF-8: a byte that is not
UTF-8, a newline, an escape character. Nothing dies; such files are indexed under the names
git/worktree.py gives them, and the watcher that cannot decode a name syncs everything instead."""

from __future__ import annotations

import os
from functools import partial

import trio
from trio.testing import wait_all_tasks_blocked

from codeweir.client import Client
from codeweir.config import parse_config
from codeweir.service.daemon import run_daemon
from codeweir.service.scheduler import SyncRequest
from codeweir.service.watch import watch_worktree
from tests.gitrepo import GitRepo, make_repo


def write_raw(repo: GitRepo, relative: bytes, content: bytes) -> None:
    path = os.path.join(os.fsencode(repo.root), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(content)


async def test_a_change_the_watcher_cannot_decode_syncs_everything_and_the_watch_goes_on(tmp_path):
    repo = make_repo(tmp_path / "w", {".gitignore": "build/\n", "a.py": "x\n"})
    repo.write("build/.keep", "")  # watched from the start: a file made with its directory may go unseen
    send, receive = trio.open_memory_channel[SyncRequest](10)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(watch_worktree, repo.config("w"), send.send_nowait, debounce=0.05))
        await wait_all_tasks_blocked()  # the watcher is waiting for changes: its watches are set
        write_raw(repo, b"build/out\xff.py", b"ignored, and its name is not UTF-8\n")
        with trio.fail_after(10):
            assert await receive.receive() == SyncRequest("w")  # what changed is unknown: everything
        await wait_all_tasks_blocked()  # watching again
        write_raw(repo, b"new\nline.py", b"y\n")
        with trio.fail_after(10):
            assert await receive.receive() == SyncRequest("w", paths={r"new\x0aline.py"}, priority="interactive")
        nursery.cancel_scope.cancel()


async def test_a_daemon_over_tracked_names_that_are_not_utf8_starts_indexes_and_finds_them(tmp_path):
    repo = make_repo(tmp_path / "proj", {".gitignore": "build/\n"})
    write_raw(repo, b"src/bad\xffname.py", b"def undecodable_name():\n    pass\n")
    write_raw(repo, b"src/new\nline.py", b"def newline_name():\n    pass\n")
    write_raw(repo, b"src/esc\x1b[2Jape.py", b"def escape_name():\n    pass\n")
    repo.commit("odd names")
    write_raw(repo, b"build/ignored\xfe.py", b"def ignored_name():\n    pass\n")
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "socket": str(tmp_path / "run" / "codeweir.sock"),
            "repositories": [{"name": "proj", "path": str(repo.root)}],
            "limits": {"files_in_flight": 2, "parse_workers": 1},
            "model": {"enabled": False},
        },
        base_dir=tmp_path,
    )

    async def call(method: str, params: dict | None = None) -> dict:
        def call() -> dict:
            with Client(config.socket, timeout=60) as client:
                return client.call(method, params)

        return await trio.to_thread.run_sync(call)

    async def found(query: str) -> set[str]:
        hits = (await call("search", {"query": query, "mode": "lexical"}))["results"]
        return {hit["path"] for hit in hits}

    for _ in range(2):  # the second start reads the names back from the index
        async with trio.open_nursery() as nursery:
            daemon = await nursery.start(run_daemon, config)
            try:
                assert (await call("wait"))["done"]
                [status] = (await call("status"))["repos"]
                assert status["error"] is None and status["files_indexed"] == 4, status
                assert await found("undecodable_name") == {r"src/bad\xffname.py"}
                assert await found("newline_name") == {r"src/new\x0aline.py"}
                assert await found("escape_name") == {r"src/esc\x1b[2Jape.py"}
                assert await found("ignored_name") == set()
                job = (await call("sync", {"repo": "proj", "wait": True}))["jobs"][0]
                assert job["state"] == "completed" and job["counts"]["indexed"] == 0, job
            finally:
                daemon.shutdown()
