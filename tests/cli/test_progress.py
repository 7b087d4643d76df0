"""Progress of a sync as its client sees it: an in-process daemon, a real repository and socket."""

import json

import pytest
import trio

from codeweir.cli import main as cli
from codeweir.config import parse_config
from codeweir.service.daemon import run_daemon
from tests.gitrepo import make_repo

FILES = {f"pkg/mod{i}.py": f"def handler_{i}(request):\n    return request + {i}\n" for i in range(9)}


@pytest.fixture
def config(tmp_path):
    repo = make_repo(tmp_path / "proj", FILES)
    return parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "socket": str(tmp_path / "run" / "codeweir.sock"),
            "repositories": [{"name": "proj", "path": str(repo.root)}],
            # Commits (and so index events) every few files, not just at the end.
            "limits": {"files_in_flight": 2, "parse_workers": 1, "commit_every_files": 2},
            "model": {"enabled": False},
        },
        base_dir=tmp_path,
    )


@pytest.fixture
async def daemon(config, nursery):
    daemon = await nursery.start(run_daemon, config)
    yield daemon
    daemon.shutdown()


async def call(config, method: str, params: dict) -> tuple[list[dict], dict]:
    """One request over a fresh connection: the notifications sent meanwhile, then the reply."""
    notifications = []
    async with await trio.open_unix_socket(config.socket) as stream:
        await stream.send_all(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode() + b"\n")
        buffer = b""
        while True:
            while b"\n" not in buffer:
                data = await stream.receive_some()
                assert data, "the daemon closed the connection"
                buffer += data
            line, _, buffer = buffer.partition(b"\n")
            message = json.loads(line)
            if "id" in message:
                return notifications, message
            notifications.append(message)


def check_order(events: list[dict], job: str) -> None:
    """Stages in pipeline order, each one's done count never going back, the end event last;
    `queued` events (behind the daemon's first sync) only before the first stage."""
    assert all(e["job"] == job and e["repo"] == "proj" for e in events)
    waiting = next(i for i, e in enumerate(events) if e["stage"] != "queued")
    assert all(e["behind"] for e in events[:waiting])
    events = events[waiting:]
    stages = [e["stage"] for e in events]
    assert "queued" not in stages, stages
    assert stages[-1] == "end" and "end" not in stages[:-1], stages
    first_seen = list(dict.fromkeys(stages))
    assert first_seen[:2] == ["scan", "index"], stages
    # Once a stage is left it is not come back to.
    assert [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]] == first_seen, stages
    for stage in first_seen[:-1]:
        done = [e["done"] for e in events if e["stage"] == stage]
        assert done == sorted(done), (stage, done)


async def test_a_followed_full_sync_reports_scan_then_each_commit_then_its_end(daemon, config):
    notifications, reply = await call(config, "sync", {"repo": "proj", "full": True, "wait": True})
    (job,) = reply["result"]["jobs"]
    assert job["state"] == "completed"
    assert {n["method"] for n in notifications} == {"progress"}
    events = [n["params"] for n in notifications]
    check_order(events, job["id"])
    index = [e for e in events if e["stage"] == "index"]
    assert index[0]["done"] == 0 and index[-1]["done"] == index[-1]["total"] == len(FILES)
    assert events[-1]["state"] == "completed" and events[-1]["counts"]["indexed"] == len(FILES)


async def test_a_sync_with_nothing_to_do_still_reports_its_stages_and_ends(daemon, config):
    await call(config, "sync", {"repo": "proj", "wait": True})
    notifications, reply = await call(config, "sync", {"repo": "proj", "wait": True})
    events = [n["params"] for n in notifications]
    check_order(events, reply["result"]["jobs"][0]["id"])
    assert [e for e in events if e["stage"] == "index"][-1]["total"] == 0


async def codeweir(config, *argv: str) -> int:
    return await trio.to_thread.run_sync(cli.main, [*argv, "--socket", config.socket])


async def test_sync_wait_json_prints_each_event_in_order_then_the_result(daemon, config, capsys):
    assert await codeweir(config, "sync", "proj", "--full", "--wait", "--json") == cli.EXIT_OK
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["type"] for line in lines] == ["progress"] * (len(lines) - 1) + ["result"]
    (job,) = lines[-1]["data"]["jobs"]
    check_order([line["data"] for line in lines[:-1]], job["id"])


async def test_sync_without_wait_returns_the_queued_job_and_wait_returns_once_it_is_indexed(daemon, config, capsys):
    assert await codeweir(config, "sync", "proj", "--full", "--json") == cli.EXIT_OK
    (job,) = json.loads(capsys.readouterr().out)["jobs"]
    assert job["id"] and job["state"] in ("queued", "running")
    assert await codeweir(config, "wait", "proj", "--timeout", "60", "--json") == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"done": True, "waited_for": ["index"]}
    _, reply = await call(config, "jobs", {})
    assert next(j for j in reply["result"]["jobs"] if j["id"] == job["id"])["state"] == "completed"


async def test_sync_wait_for_people_draws_a_bar_per_stage_and_ends_with_a_summary_line(daemon, config, capsys):
    assert await codeweir(config, "sync", "proj", "--full", "--wait") == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "proj scanning" in out and "proj indexing files" in out and f"{len(FILES)}/{len(FILES)}" in out
    assert "proj end" not in out  # the end event is not a stage
    last = out.strip().splitlines()[-1]
    assert last.startswith("proj: job j") and " completed in " in last and f"{len(FILES)} indexed" in last, last
