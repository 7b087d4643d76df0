"""The control API's methods (service/handlers.py) and what a reload (service/reload.py) does to
their answers: an in-process daemon over its real socket, real git repositories, real Tantivy.

A sync is held at its first git read by taking the daemon's only git thread (limits.git_threads
= 1): the test decides when it may go on, no timing involved.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from codeweir.config import load_config
from codeweir.errors import RequestError
from codeweir.protocol_params import CancelParams, NoParams, SyncParams
from codeweir.service.daemon import run_daemon
from tests.gitrepo import make_repo
from tests.service.test_daemon import Conn
from tests.service.test_daemon_process import write_config

LIMITS = "commit_every_files = 20\ngit_threads = 1\nsearch_threads = 3"
INDEXED = {"done": True, "waited_for": ["index"]}  # a wait's answer: the lexical index is complete


@pytest.fixture
def repos(tmp_path):
    return {
        "a": make_repo(tmp_path / "a", {"a.py": "def alpha():\n    pass\n"}),
        "b": make_repo(tmp_path / "b", {"b.py": "def beta():\n    pass\n", "notes.md": "# Notes\n"}),
        "c": make_repo(tmp_path / "c", {"c.py": "def gamma():\n    pass\n"}),
    }


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return home


def configure(home: Path, repos, names: tuple[str, ...]) -> Path:
    return write_config(home / "config.toml", home, {n: f'path = "{repos[n].root}"' for n in names}, limits=LIMITS)


@pytest.fixture
async def daemon(nursery, home, repos):
    path = configure(home, repos, ("a", "b"))
    daemon = await nursery.start(run_daemon, load_config(path), path)
    yield daemon
    daemon.shutdown()


@pytest.fixture
async def conn(daemon, home):
    async with await trio.open_unix_socket(home / "cw.sock") as stream:
        conn = Conn(stream)
        assert (await result(conn, "wait"))["done"]  # the start-up syncs
        yield conn


async def result(conn: Conn, method: str, params: dict | None = None):
    reply = await conn.call(method, params)
    assert "result" in reply, reply
    return reply["result"]


async def error(conn: Conn, method: str, params: dict | None = None) -> dict:
    reply = await conn.call(method, params)
    assert "error" in reply, reply
    return reply["error"]


async def test_status_of_a_synced_repository_counts_its_files_and_chunks_and_names_its_head(conn, repos, home):
    status = await result(conn, "status")
    a = next(r for r in status["repos"] if r["name"] == "a")
    assert a["path"] == str(repos["a"].root)
    assert (a["files_indexed"], a["files_seen"], a["files_total"]) == (1, 1, 1)
    assert a["chunks"] >= 1 and a["chunks_embedded"] == 0  # the model is disabled
    assert a["head"] == repos["a"].git("rev-parse", "HEAD").strip()
    assert a["synced_at"] is not None and a["error"] is None and a["backoff"] is None
    assert a["files_skipped"] == {} and a["file_errors"] == []
    assert [r["name"] for r in status["repos"]] == ["a", "b"]
    assert status["queue"] == {"queued": 0, "running": 0}
    assert status["index"]["rebuilding"] is False and status["index"]["rebuilt_repos"] == []
    assert status["model"]["state"] == "disabled"
    assert status["daemon"]["socket"] == str(home / "cw.sock")


async def test_repos_lists_the_configured_repositories_with_their_settings(conn, repos):
    listed = (await result(conn, "repos"))["repos"]
    assert listed[0] == {"name": "a", "path": str(repos["a"].root), "ref": None, "include": [], "exclude": [], "error": None}
    assert [r["name"] for r in listed] == ["a", "b"]


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("sync", {"repo": "nope"}),
        ("wait", {"repo": "nope"}),
        ("cancel", {"repo": "nope"}),
        ("search", {"query": "alpha", "repo": "nope"}),
        ("search", {"query": "alpha repo:nope"}),
    ],
)
async def test_a_request_naming_an_unknown_repository_is_an_error_listing_the_configured_ones(conn, method, params):
    assert await error(conn, method, params) == {
        "code": -32602,
        "message": "repo: no repository named 'nope' (configured: a, b)",
    }


async def test_cancel_of_an_unknown_or_ended_job_is_an_error(conn):
    assert await error(conn, "cancel", {"job": "j999"}) == {
        "code": -32602,
        "message": "no job 'j999': it never existed or has left the history",
    }
    [ended] = (await result(conn, "jobs"))["jobs"][:1]  # a start-up sync
    assert await error(conn, "cancel", {"job": ended["id"]}) == {
        "code": -32602,
        "message": f"job: no queued or running job {ended['id']!r}",
    }


async def test_sync_all_queues_one_job_per_repository_and_jobs_lists_them(conn):
    jobs = (await result(conn, "sync", {"all": True}))["jobs"]
    assert [(j["repo"], j["full"], j["paths"], j["priority"]) for j in jobs] == [
        ("a", False, None, "normal"),
        ("b", False, None, "normal"),
    ]
    assert await result(conn, "wait") == INDEXED
    # (Queued behind b's whole sync, it would have joined it.)
    [paths_job] = (await result(conn, "sync", {"repo": "b", "paths": ["notes.md", "b.py"], "priority": "interactive"}))["jobs"]
    assert paths_job["paths"] == ["b.py", "notes.md"] and paths_job["priority"] == "interactive"
    assert await result(conn, "wait", {"repo": "b"}) == INDEXED
    listed = {j["id"]: j for j in (await result(conn, "jobs"))["jobs"]}
    assert {j["id"] for j in [*jobs, paths_job]} <= listed.keys()
    assert all(listed[j["id"]]["state"] == "completed" for j in [*jobs, paths_job])


async def test_the_limits_size_the_daemons_limiters(daemon):
    assert daemon.stages.git_limiter.total_tokens == 1
    assert daemon.stages.search_limiter.total_tokens == 3


async def test_wait_with_a_timeout_answers_with_the_jobs_still_pending(conn, daemon):
    async with daemon.stages.git_limiter:  # the sync cannot start reading git
        [job] = (await result(conn, "sync", {"repo": "a", "full": True}))["jobs"]
        answer = await result(conn, "wait", {"repo": "a", "timeout": 0})
        assert answer["done"] is False and [j["id"] for j in answer["pending"]] == [job["id"]]
        assert await result(conn, "wait", {"repo": "b", "timeout": 0}) == INDEXED  # b has nothing pending
    assert await result(conn, "wait", {"repo": "a", "timeout": 60}) == INDEXED
    [ended] = [j for j in (await result(conn, "jobs"))["jobs"] if j["id"] == job["id"]]
    assert ended["state"] == "completed"


async def test_cancel_by_repository_cancels_its_sync_and_wait_then_returns(conn, daemon):
    async with daemon.stages.git_limiter:
        [job] = (await result(conn, "sync", {"repo": "a", "full": True}))["jobs"]
        cancelled = (await result(conn, "cancel", {"repo": "a"}))["cancelled"]
        assert [j["id"] for j in cancelled] == [job["id"]]
        assert await result(conn, "wait", {"repo": "a"}) == INDEXED
    [ended] = [j for j in (await result(conn, "jobs"))["jobs"] if j["id"] == job["id"]]
    assert ended["state"] == "cancelled"
    a = next(r for r in (await result(conn, "status"))["repos"] if r["name"] == "a")
    assert a["files_indexed"] == 1  # the index as the start-up sync left it


async def test_the_handlers_take_their_protocol_params_classes(conn, daemon):
    """The server structures params before it calls a handler: a handler never reads a dict."""
    progress = []

    async def notify(method: str, params) -> None:
        progress.append((method, params["stage"]))

    [job] = (await daemon.sync(SyncParams(repo="a", wait=True), notify))["jobs"]
    assert job["state"] == "completed" and ("progress", "scan") in progress
    assert job["id"] in {j["id"] for j in (await daemon.jobs(NoParams(), notify))["jobs"]}
    with pytest.raises(RequestError, match=f"no queued or running job {job['id']!r}"):
        await daemon.cancel(CancelParams(job=job["id"]), notify)


async def test_reload_applies_an_added_and_a_removed_repository_to_every_method(conn, daemon, home, repos):
    configure(home, repos, ("b", "c"))
    changes = await result(conn, "reload")
    assert changes == {"added": ["c"], "removed": ["a"], "changed": [], "restart_needed": []}
    assert await result(conn, "wait") == INDEXED

    status = {r["name"]: r for r in (await result(conn, "status"))["repos"]}
    assert status.keys() == {"b", "c"}
    assert status["c"]["files_indexed"] == 1 and status["c"]["head"] == repos["c"].git("rev-parse", "HEAD").strip()
    assert [r["name"] for r in (await result(conn, "repos"))["repos"]] == ["b", "c"]
    assert (await error(conn, "sync", {"repo": "a"}))["message"] == "repo: no repository named 'a' (configured: b, c)"
    hits = (await result(conn, "search", {"query": "gamma", "mode": "lexical"}))["results"]
    assert {h["repo"] for h in hits} == {"c"}
    assert (await result(conn, "search", {"query": "alpha", "mode": "lexical"}))["results"] == []
    assert set(daemon.watchers) == {"b", "c"} and daemon.state.repo_states.keys() == {"b", "c"}


async def test_a_rejected_reload_changes_nothing(conn, daemon, home, repos):
    write_config(home / "config.toml", home, {"c": f'path = "{repos["c"].root}"'}, limits="git_threads = 0")
    message = (await error(conn, "reload"))["message"]
    assert message.startswith("reload rejected, the old config stays in force") and "limits.git_threads" in message
    assert [r["name"] for r in (await result(conn, "repos"))["repos"]] == ["a", "b"]
    assert set(daemon.watchers) == {"a", "b"}


async def test_sync_all_with_wait_follows_a_repositorys_running_sync_instead_of_queueing_another(conn, daemon, home):
    git = daemon.stages.git_limiter
    await git.acquire()  # a's sync runs, held at its first git read
    try:
        [a] = (await result(conn, "sync", {"repo": "a"}))["jobs"]
        async with daemon.runner.subscribe(a["id"]) as events:
            assert (await events.receive())["stage"] == "scan"  # it runs
        waiting = Conn(await trio.open_unix_socket(home / "cw.sock"))
        await waiting.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"sync","params":{"all":true,"wait":true}}\n')
        assert "id" not in await waiting.line()  # a progress event: the jobs are chosen
    finally:
        git.release()
    while "id" not in (answer := await waiting.line()):
        pass
    await waiting.stream.aclose()
    followed = answer["result"]["jobs"]
    assert [(j["repo"], j["state"]) for j in followed] == [("a", "completed"), ("b", "completed")]
    assert followed[0]["id"] == a["id"]
    assert [j["id"] for j in (await result(conn, "jobs"))["jobs"] if j["repo"] == "a"][0] == a["id"]  # no later job of a


async def test_status_shows_each_ref_with_its_commit_and_files_and_names_patterns_matching_no_ref(nursery, home, repos):
    a = repos["a"]
    a.git("branch", "release/1")
    a.write("more.py", "def more():\n    pass\n")
    a.commit("more")
    path = write_config(home / "config.toml", home, {"a": f'path = "{a.root}"\nrefs = ["release/*", "v9*"]'}, limits=LIMITS)
    daemon = await nursery.start(run_daemon, load_config(path), path)
    async with await trio.open_unix_socket(home / "cw.sock") as stream:
        conn = Conn(stream)
        assert (await result(conn, "wait"))["done"]
        (status,) = (await result(conn, "status"))["repos"]
        (release,) = status["refs"]
        assert release["name"] == "release/1" and release["commit"] == a.git("rev-parse", "release/1").strip()
        assert release["files"] == 1 and status["files_indexed"] == 2
        assert status["refs_unmatched"] == ["v9*"]
    daemon.shutdown()
