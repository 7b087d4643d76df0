"""A damaged index heals: `codeweir daemon` as a real process over an index whose real files were
truncated, garbled or deleted. It comes up, says so in its log, indexes every repository again
and answers searches; the index it ends with is whole (every file with its chunks, every commit).

Damage Tantivy's open notices (a truncated or missing file, a truncated meta.json) is moved
aside at start; damage it does not (a garbled block) is found by the checksum scan after start
and rebuilt while the daemon serves. Nothing here sleeps: each step waits for a notification.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from codeweir.client import Client
from codeweir.errors import DaemonError
from codeweir.index.store import Store
from tests.gitrepo import GitRepo, make_repo
from tests.index_reading import commits_of
from tests.service import test_daemon_process
from tests.service.test_daemon_process import committed_files, write_config

FILES = {
    f"pkg/mod{i}.py": "".join(f"def handler_{i}_{j}(request):\n    return request + {j}\n\n\n" for j in range(8))
    for i in range(40)
}
COMMITS = 4  # the initial one and three more

short_dir = test_daemon_process.short_dir  # fixtures of the daemon's process tests
start = test_daemon_process.start


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> GitRepo:
    repo = make_repo(tmp_path_factory.mktemp("healing") / "repo", FILES)
    for i in range(1, COMMITS):
        repo.write(f"pkg/mod{i}.py", FILES[f"pkg/mod{i}.py"] + f"\n\ndef added_{i}():\n    pass\n")
        repo.commit(f"add added_{i}")
    return repo


def indexed(line: str) -> bool:
    """The STATUS= line of a sync that indexed every file."""
    return f"completed: {len(FILES)} indexed" in line


@pytest.fixture
def healthy(repo, short_dir, start) -> Path:
    """A config whose state dir holds a whole index of `repo`, written by a daemon now stopped."""
    config = write_config(short_dir / "config.toml", short_dir, {"proj": f'path = "{repo.root}"'})
    daemon = start(config)
    daemon.expect("STATUS=idle", where=indexed)
    daemon.signal(signal.SIGTERM)
    assert daemon.exit_code() == 0, daemon.log_text()
    return config


def segment_file(index: Path, extension: str) -> Path:
    """The largest file of the index with this extension: a real segment file."""
    return max((p for p in index.iterdir() if p.name.endswith(extension)), key=lambda p: p.stat().st_size)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path: Path) -> None:
    """Random bytes over a block in the middle: the file's footer and length stay as they were."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 256] = os.urandom(len(data[middle : middle + 256]))
    path.write_bytes(bytes(data))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated meta.json": lambda index: truncate(index / "meta.json"),
    "truncated .store": lambda index: truncate(segment_file(index, ".store")),
    "garbled .store": lambda index: garble(segment_file(index, ".store")),
    "truncated .idx": lambda index: truncate(segment_file(index, ".idx")),
    "truncated .fieldnorm": lambda index: truncate(segment_file(index, ".fieldnorm")),
    "deleted .term": lambda index: segment_file(index, ".term").unlink(),
    "deleted .fast": lambda index: segment_file(index, ".fast").unlink(),
}


def assert_whole(state_dir: Path, repo: GitRepo) -> None:
    """The index holds what a fresh one would: every file with its chunks, every commit."""
    assert set(committed_files(state_dir, "proj")) == set(FILES)
    store = Store(state_dir / "index")
    try:
        assert len(commits_of(store, "proj")) == COMMITS
        assert store.damage is None and not store.rebuilding
    finally:
        store.close()


def found(socket: Path, query: str) -> set[str]:
    hits = Client(socket).call("search", {"query": query, "mode": "lexical"})["results"]
    return {hit["path"] for hit in hits}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_an_index_damaged_at_rest_is_set_aside_at_start_and_every_repository_indexed_again(
    damage, repo, healthy, short_dir, start
):
    state = short_dir / "state"
    damage(state / "index")
    daemon = start(healthy)
    daemon.expect("READY=1")
    daemon.expect("STATUS=idle", where=indexed)  # everything read again, into a new index
    assert "pkg/mod7.py" in found(short_dir / "cw.sock", "handler_7_3")
    status = Client(short_dir / "cw.sock").call("status")
    assert status["index"]["damage"] is None  # every repository is indexed again
    log = daemon.log_text()
    assert "is damaged" in log and "moved to" in log and "Traceback" not in log
    [kept] = state.glob("index.damaged-*")  # kept for inspection
    daemon.signal(signal.SIGTERM)
    assert daemon.exit_code() == 0, daemon.log_text()
    assert_whole(state, repo)


def test_a_garbled_block_that_opens_is_found_by_the_checksum_scan_and_rebuilt_while_serving(repo, healthy, short_dir, start):
    state = short_dir / "state"
    garble(segment_file(state / "index", ".idx"))  # Tantivy opens it; reads of some terms would fail
    daemon = start(healthy)
    daemon.expect("READY=1")
    daemon.expect("STATUS=idle", where=indexed)  # the rebuild's sync read everything again
    with Client(short_dir / "cw.sock") as client:
        assert client.call("wait")["done"]  # the rebuild, complete, has replaced the damaged index
        assert "pkg/mod7.py" in found(short_dir / "cw.sock", "handler_7_3")
        assert client.call("status")["index"]["rebuilding"] is False
    log = daemon.log_text()
    assert "checksum scan found" in log and "rebuilding it from the repositories" in log, log
    assert "index rebuilt after damage" in log and "Traceback" not in log, log
    daemon.signal(signal.SIGTERM)
    assert daemon.exit_code() == 0, daemon.log_text()
    assert_whole(state, repo)
    assert not list(state.glob("index.*"))  # the damaged index is gone with the swap


def test_a_repeated_start_on_an_index_damaged_again_heals_each_time(repo, healthy, short_dir, start):
    state = short_dir / "state"
    for damage in (DAMAGE["deleted .term"], DAMAGE["truncated meta.json"]):
        damage(state / "index")
        daemon = start(healthy)
        daemon.expect("STATUS=idle", where=indexed)
        daemon.signal(signal.SIGTERM)
        assert daemon.exit_code() == 0, daemon.log_text()
    assert len(list(state.glob("index.damaged-*"))) == 1  # only the latest damaged index is kept
    assert_whole(state, repo)
    shutil.rmtree(state)


def test_a_search_that_finds_the_index_damaged_says_why_and_the_index_is_rebuilt_while_serving(repo, healthy, short_dir, start):
    state = short_dir / "state"
    daemon = start(healthy)
    daemon.expect("STATUS=idle")  # the index was whole at start: nothing to index
    for path in (state / "index").glob("*.idx"):  # the postings, in place: under Tantivy's map
        with open(path, "r+b") as postings:
            postings.write(b"\xff" * (os.fstat(postings.fileno()).st_size - 200))  # no valid number in it
    with Client(short_dir / "cw.sock") as client:
        with pytest.raises(DaemonError, match="the index is damaged .*being rebuilt"):
            client.call("search", {"query": "handler_7_3", "mode": "lexical"})
        daemon.expect("STATUS=idle", where=indexed)  # every file read again, into the rebuild
        assert client.call("wait")["done"]
        assert "pkg/mod7.py" in found(short_dir / "cw.sock", "handler_7_3")
        assert client.call("status")["index"]["damage"] is None
    assert "rebuilding it from the repositories" in daemon.log_text()
    daemon.signal(signal.SIGTERM)
    assert daemon.exit_code() == 0, daemon.log_text()
    assert_whole(state, repo)
