"""The daemon end to end, in-process: a real git repository, real Tantivy, a real unix socket."""

import json
import subprocess
from pathlib import Path

import pytest
import trio

from codeweir.config import parse_config
from codeweir.errors import StoreError
from codeweir.service.daemon import lock_state_dir, run_daemon

GO = """package timeutil

// ParseDuration parses a duration string such as "1h30m".
func ParseDuration(s string) (int, error) {
\treturn len(s), nil
}
"""

PY = '''import os


class Server:
    """Serves requests."""

    def handle(self, request):
        return request.upper()


def parse_duration(text):
    return int(text)
'''


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "time.go").write_text(GO)
    (repo / "server.py").write_text(PY)
    (repo / "logo.bin").write_bytes(b"\x89PNG\x00\x01\x02")
    (repo / ".gitignore").write_text("build/\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.py").write_text("def parse_duration_generated(): pass\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return repo


@pytest.fixture
def config(tmp_path, repo):
    return parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "socket": str(tmp_path / "run" / "codeweir.sock"),
            "repositories": [{"name": "proj", "path": str(repo)}],
            "limits": {"files_in_flight": 2, "parse_workers": 1},
            "model": {"enabled": False},
        },
        base_dir=tmp_path,
    )


class Conn:
    """A JSON-RPC client over the daemon's real socket."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.next_id = 0

    async def line(self) -> dict:
        while b"\n" not in self.buffer:
            data = await self.stream.receive_some()
            assert data, "daemon closed the connection"
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def call(self, method: str, params: dict | None = None, notifications: list | None = None) -> dict:
        self.next_id += 1
        request = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        await self.send_raw(json.dumps(request).encode() + b"\n")
        while True:
            message = await self.line()
            if "id" not in message:
                if notifications is not None:
                    notifications.append(message)
                continue
            assert message["id"] == self.next_id
            return message


@pytest.fixture
async def daemon(config, nursery):
    daemon = await nursery.start(run_daemon, config)
    yield daemon
    daemon.shutdown()


@pytest.fixture
async def conn(daemon, config):
    stream = await trio.open_unix_socket(config.socket)
    async with stream:
        yield Conn(stream)


async def test_sync_then_search_finds_code_by_its_words(conn):
    progress: list = []
    reply = await conn.call("sync", {"repo": "proj", "wait": True}, progress)
    assert reply["result"]["jobs"][0]["state"] == "completed", reply
    assert any(p["params"]["stage"] == "index" for p in progress)
    hits = (await conn.call("search", {"query": "parse duration", "mode": "lexical"}))["result"]["results"]
    found = {(h["path"], h["symbol"]) for h in hits}
    assert ("time.go", "ParseDuration") in found
    assert ("server.py", "parse_duration") in found
    # Ignored files are not indexed.
    assert all(h["path"] != "build/out.py" for h in hits)
    hit = next(h for h in hits if h["path"] == "time.go")
    assert set(hit) >= {"repo", "path", "start_line", "end_line", "symbol", "kind", "language", "score", "snippet", "blob"}
    assert hit["language"] == "go" and hit["start_line"] >= 1


async def test_resync_reindexes_changed_files_and_drops_deleted_ones(conn, repo):
    await conn.call("sync", {"repo": "proj", "wait": True})
    (repo / "server.py").write_text(PY.replace("parse_duration", "read_timeout"))
    (repo / "time.go").unlink()
    (repo / "new.rs").write_text("pub fn parse_duration(s: &str) -> u64 { 0 }\n")
    reply = await conn.call("sync", {"repo": "proj", "wait": True})
    counts = reply["result"]["jobs"][0]["counts"]
    assert counts["indexed"] == 2 and counts["deleted"] == 1, counts
    hits = (await conn.call("search", {"query": "parse duration", "mode": "lexical"}))["result"]["results"]
    assert {h["path"] for h in hits} == {"new.rs"}
    status = (await conn.call("status"))["result"]["repos"][0]
    assert status["files_indexed"] == 3  # server.py, new.rs, .gitignore
    assert status["files_skipped"].get("binary") == 1


async def test_a_noop_resync_reads_no_file(conn):
    await conn.call("sync", {"repo": "proj", "wait": True})
    counts = (await conn.call("sync", {"repo": "proj", "wait": True}))["result"]["jobs"][0]["counts"]
    assert counts["indexed"] == 0 and counts["unchanged"] == counts["files"]


async def test_bad_requests_get_errors_and_the_connection_lives_on(conn):
    await conn.send_raw(b"{not json\n")
    assert (await conn.line())["error"]["code"] == -32700
    assert (await conn.call("frobnicate"))["error"]["code"] == -32601
    error = (await conn.call("search", {"query": "x", "limit": "many"}))["error"]
    assert error["code"] == -32602 and "limit" in error["message"]
    error = (await conn.call("search", {"query": "x", "repo": "nope"}))["error"]
    assert "nope" in error["message"]
    assert "result" in await conn.call("status")


async def test_searches_are_answered_while_a_sync_runs(conn, config):
    await conn.call("sync", {"repo": "proj", "full": True})  # no wait: returns at once
    async with await trio.open_unix_socket(config.socket) as other:
        reply = await Conn(other).call("search", {"query": "handle", "mode": "lexical"})
        assert "result" in reply


async def test_a_second_daemon_on_the_same_state_dir_is_refused(daemon, config):
    with pytest.raises(StoreError, match="another codeweir daemon"):
        lock_state_dir(Path(config.state_dir))
