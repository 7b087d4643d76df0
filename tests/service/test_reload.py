"""Repositories coming and going under a running daemon: `reload` (added, removed, changed,
broken), their watchers, repositories dropped while the daemon was down, and a repository
that keeps failing. In-process daemons over a real socket, real git repositories, real Tantivy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from codeweir.cli import main as cli
from codeweir.client import Client
from codeweir.config import load_config
from codeweir.service.daemon import run_daemon
from codeweir.service.scheduler import SyncRequest
from tests.gitrepo import make_repo
from tests.service.test_daemon_process import write_config


async def call(home: Path, method: str, params: dict | None = None):
    """One request through the real client, in a thread, as the CLI makes it."""
    return await trio.to_thread.run_sync(lambda: Client(home / "cw.sock").call(method, params))


async def codeweir(home: Path, *argv: str) -> int:
    return await trio.to_thread.run_sync(cli.main, [*argv, "--socket", str(home / "cw.sock")])


async def indexed_paths(daemon, repo: str) -> set[str]:
    return set(await trio.to_thread.run_sync(daemon.store.file_blobs, repo))


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


async def start(nursery: trio.Nursery, config: Path):
    daemon = await nursery.start(run_daemon, load_config(config), config)
    await call(config.parent, "wait")
    return daemon


async def test_reload_syncs_added_deletes_removed_and_resyncs_changed_repositories(nursery, home, repos):
    config = write_config(home / "config.toml", home, {n: f'path = "{repos[n].root}"' for n in ("a", "b")})
    daemon = await start(nursery, config)
    assert await indexed_paths(daemon, "b") == {"b.py", "notes.md"}

    write_config(config, home, {"b": f'path = "{repos["b"].root}"\nexclude = ["*.md"]', "c": f'path = "{repos["c"].root}"'})
    changes = await call(home, "reload")
    assert (changes["added"], changes["removed"], changes["changed"]) == (["c"], ["a"], ["b"])
    assert await call(home, "wait", {"timeout": 30}) == {"done": True, "waited_for": ["index"]}

    assert await indexed_paths(daemon, "a") == set()
    assert await indexed_paths(daemon, "b") == {"b.py"}
    assert await indexed_paths(daemon, "c") == {"c.py"}
    assert [r["name"] for r in (await call(home, "repos"))["repos"]] == ["b", "c"]
    hits = (await call(home, "search", {"query": "alpha", "mode": "lexical"}))["results"]
    assert hits == []
    daemon.shutdown()


async def test_a_ref_added_by_reload_parses_only_the_files_the_worktree_does_not_share(nursery, home, repos):
    b = repos["b"]
    b.git("branch", "old")
    b.write("b.py", "def beta():\n    return 2\n")
    b.commit("beta returns 2")
    config = write_config(home / "config.toml", home, {"b": f'path = "{b.root}"'})
    daemon = await start(nursery, config)
    write_config(config, home, {"b": f'path = "{b.root}"\nrefs = ["old"]'})
    assert (await call(home, "reload"))["changed"] == ["b"]
    assert (await call(home, "wait", {"timeout": 30}))["done"]
    job = max((await call(home, "jobs"))["jobs"], key=lambda j: j["created"])
    assert (job["counts"]["indexed"], job["counts"]["shared"]) == (1, 1)  # old's b.py parsed; notes.md shared
    assert set(await trio.to_thread.run_sync(daemon.store.file_blobs, "b", "old")) == {"b.py", "notes.md"}
    daemon.shutdown()


async def test_reload_starts_watchers_of_added_repositories_and_stops_those_of_removed_ones(nursery, home, repos):
    config = write_config(home / "config.toml", home, {"a": f'path = "{repos["a"].root}"'})
    daemon = await start(nursery, config)
    assert set(daemon.watchers) == {"a"}
    submitted_send, submitted = trio.open_memory_channel[SyncRequest](16)
    submit = daemon.runner.submit

    def recording_submit(request: SyncRequest):
        submitted_send.send_nowait(request)
        return submit(request)

    daemon.runner.submit = recording_submit  # watchers started from now on submit through it

    write_config(config, home, {"c": f'path = "{repos["c"].root}"'})
    await call(home, "reload")
    assert set(daemon.watchers) == {"c"}
    assert (await submitted.receive()) == SyncRequest("c")  # the reload's own sync of c
    await call(home, "wait")
    await wait_all_tasks_blocked()  # c's watcher waits for changes: its watches are set

    repos["a"].write("a.py", "def alpha_changed():\n    pass\n")
    repos["c"].write("c.py", "def gamma_changed():\n    pass\n")
    with trio.fail_after(30):
        request = await submitted.receive()
    assert request.repo == "c" and request.paths == frozenset({"c.py"})
    daemon.shutdown()


async def test_a_broken_config_is_rejected_naming_the_field_and_the_old_one_stays(nursery, home, repos, capsys):
    config = write_config(home / "config.toml", home, {"a": f'path = "{repos["a"].root}"'})
    daemon = await start(nursery, config)
    write_config(config, home, {"b": f'path = "{repos["b"].root}"'}, extra="[server]\nmax_connections = -1\n")

    assert await codeweir(home, "reload") == 1
    error = capsys.readouterr().err
    assert "reload rejected, the old config stays in force" in error and "server.max_connections" in error
    assert [r["name"] for r in (await call(home, "repos"))["repos"]] == ["a"]
    assert set(daemon.watchers) == {"a"}

    write_config(config, home, {"b": f'path = "{repos["b"].root}"'})
    assert await codeweir(home, "reload") == 0
    assert [r["name"] for r in (await call(home, "repos"))["repos"]] == ["b"]
    daemon.shutdown()


async def test_settings_taken_at_start_are_kept_and_named_on_reload(nursery, home, repos):
    config = write_config(home / "config.toml", home, {"a": f'path = "{repos["a"].root}"'})
    daemon = await start(nursery, config)
    write_config(config, home, {"a": f'path = "{repos["a"].root}"'}, extra="[server]\nmax_connections = 3\n")
    changes = await call(home, "reload")
    assert changes["restart_needed"] == ["server"] and changes["changed"] == []
    assert daemon.config.server.max_connections == 64  # the server was started with it
    daemon.shutdown()


async def test_a_repository_removed_while_the_daemon_was_down_loses_its_documents_at_start(home, repos):
    config = write_config(home / "config.toml", home, {n: f'path = "{repos[n].root}"' for n in ("a", "b")})
    async with trio.open_nursery() as nursery:
        daemon = await start(nursery, config)
        assert await indexed_paths(daemon, "a") == {"a.py"}
        daemon.shutdown()
    write_config(config, home, {"b": f'path = "{repos["b"].root}"'})
    async with trio.open_nursery() as nursery:
        daemon = await start(nursery, config)
        assert await indexed_paths(daemon, "a") == set()
        assert await indexed_paths(daemon, "b") == {"b.py", "notes.md"}
        daemon.shutdown()


async def test_a_failing_repository_backs_off_exponentially_and_the_others_carry_on(mock_clock, nursery, home, repos, tmp_path):
    # The backoff's 10 s, 20 s, 40 s pass a hundred times faster. (An autojump clock would jump
    # while the daemon waits for its threads, past the deadlines of requests in progress.)
    mock_clock.rate = 100
    repos_toml = {"gone": f'path = "{tmp_path / "missing"}"', "a": f'path = "{repos["a"].root}"'}
    server = "[server]\nrequest_timeout_seconds = 1e6\nidle_timeout_seconds = 1e6\n"
    config = write_config(home / "config.toml", home, repos_toml, extra=server)
    await start(nursery, config)

    async def backoff_after_a_failed_sync() -> dict:
        [job] = (await call(home, "sync", {"repo": "gone", "wait": True}))["jobs"]
        assert job["state"] == "failed"
        gone = next(r for r in (await call(home, "status"))["repos"] if r["name"] == "gone")
        assert "missing" in gone["error"]
        return {**gone["backoff"], "delay": round(gone["backoff"]["retry_at"] - job["ended"], 1)}

    delays = [await backoff_after_a_failed_sync() for _ in range(3)]
    # The start-up sync was the first failure; retries after each backoff fail too, by themselves.
    assert delays[0]["failures"] >= 2 and [d["failures"] for d in delays] == sorted({d["failures"] for d in delays})
    assert all(d["delay"] == 10.0 * 2 ** (d["failures"] - 1) for d in delays)
    assert all("missing" in d["reason"] for d in delays)

    # gone's next sync is queued first, yet a's runs first: a backing-off repository holds up no one.
    [deferred] = (await call(home, "sync", {"repo": "gone"}))["jobs"]
    repos["a"].write("a2.py", "def another():\n    pass\n")
    [job] = (await call(home, "sync", {"repo": "a", "wait": True}))["jobs"]
    assert job["state"] == "completed" and job["counts"]["indexed"] == 1
    deferred = next(j for j in (await call(home, "jobs"))["jobs"] if j["id"] == deferred["id"])
    assert deferred["started"] is None or deferred["started"] > job["started"]
    status = {r["name"]: r for r in (await call(home, "status"))["repos"]}
    assert status["a"]["backoff"] is None and status["gone"]["backoff"] is not None
