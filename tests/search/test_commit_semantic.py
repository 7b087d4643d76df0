"""Commit messages embedded with the active model, and `mode: commits` by meaning: a real git
history, a daemon in-process over its real socket, the real ONNX model."""

import shutil

import numpy as np
import pytest
import trio

import codeweir.search.commits
from codeweir.config import parse_config
from codeweir.embedded_text import content_hash
from codeweir.index.store import Store
from codeweir.index.vectors import VectorStore
from codeweir.records import CommitRecord
from codeweir.search.commits import CommitFilters, search_commits_by_meaning
from codeweir.service.daemon import run_daemon
from tests.gitrepo import make_repo
from tests.service.test_daemon import Conn

ALICE = "Alice Smith <alice@example.org>"
BOB = "Bob Jones <bob@example.org>"
MESSAGES = {
    "tokenizer": ("Make tokenizer faster by caching regexes", ALICE, "2024-02-01T00:00:00Z"),
    "config": ("Fix crash when the config file is missing", BOB, "2024-03-01T00:00:00Z"),
    "theme": ("Add dark mode to the settings page", ALICE, "2024-04-01T00:00:00Z"),
    "thumbnails": ("Generate image thumbnails in a worker pool to speed them up", BOB, "2024-05-01T00:00:00Z"),
    "downloads": ("Retry failed downloads with exponential backoff", ALICE, "2024-06-01T00:00:00Z"),
}


@pytest.fixture
def history(tmp_path):
    """A repository with a handful of commits of distinct messages, authors and dates; name -> sha."""
    repo = make_repo(tmp_path / "proj", {"README.md": "# proj\n"})
    shas = {}
    for i, (name, (message, author, date)) in enumerate(MESSAGES.items()):
        repo.write(f"src/{name}.py", f"VERSION = {i}\n")
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", message, f"--author={author}", f"--date={date}")
        shas[name] = repo.head()
    return repo, shas


def make_config(tmp_path, repo, **model):
    return parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "socket": str(tmp_path / "run" / "codeweir.sock"),
            "repositories": [{"name": "proj", "path": str(repo.root)}],
            "limits": {"files_in_flight": 2, "parse_workers": 1},
            "model": model,
        },
        base_dir=tmp_path,
    )


async def start_synced(nursery, config):
    """A daemon that has indexed the history and embedded everything it wrote."""
    daemon = await nursery.start(run_daemon, config)
    conn = Conn(await trio.open_unix_socket(config.socket))
    await conn.call("sync", {"repo": "proj", "wait": True})
    await daemon.embedding.wait_idle()
    return daemon, conn


async def commits(conn, query: str, limit: int = 10) -> dict:
    reply = await conn.call("search", {"query": query, "mode": "commits", "limit": limit})
    assert "result" in reply, reply
    return reply["result"]


async def test_a_query_by_meaning_finds_a_commit_that_shares_none_of_its_words(tmp_path, history, default_model_dir, nursery):
    repo, shas = history
    daemon, conn = await start_synced(nursery, make_config(tmp_path, repo, path=str(default_model_dir)))
    reply = await commits(conn, "speed up the parser")
    assert reply["results"][0]["sha"] == shas["tokenizer"], reply
    assert reply["notes"] == []
    # Words found lexically too: both halves agree on the top hit.
    assert (await commits(conn, "dark mode", limit=3))["results"][0]["sha"] == shas["theme"]
    daemon.shutdown()


async def test_author_and_date_filters_hold_in_both_halves(tmp_path, history, default_model_dir, nursery):
    repo, shas = history
    daemon, conn = await start_synced(nursery, make_config(tmp_path, repo, path=str(default_model_dir)))
    by_bob = (await commits(conn, "speed up the parser author:bob"))["results"]
    assert by_bob and {hit["author"] for hit in by_bob} == {BOB}
    assert by_bob[0]["sha"] == shas["thumbnails"]
    not_alice = (await commits(conn, "speed up the parser -author:alice"))["results"]
    assert not_alice and ALICE not in {hit["author"] for hit in not_alice}
    spring = (await commits(conn, "speed up the parser after:2024-03-15 before:2024-05-15"))["results"]
    assert {hit["sha"] for hit in spring} == {shas["theme"], shas["thumbnails"]}
    assert (await commits(conn, "speed up the parser after:2025-01-01"))["results"] == []
    daemon.shutdown()


async def test_new_commits_are_embedded_as_they_are_written(tmp_path, history, default_model_dir, nursery):
    repo, _ = history
    daemon, conn = await start_synced(nursery, make_config(tmp_path, repo, path=str(default_model_dir)))
    repo.write("src/auth.py", "TOKEN = 1\n")
    sha = repo.commit("Let users sign in with a password")
    await conn.call("sync", {"repo": "proj", "wait": True})
    await daemon.embedding.wait_idle()
    assert content_hash("Let users sign in with a password") in daemon.embedding.vectors
    assert (await commits(conn, "login authentication"))["results"][0]["sha"] == sha
    daemon.shutdown()


async def test_commits_without_a_vector_are_found_and_embedded_at_start(tmp_path, history, default_model_dir):
    """The reconciliation pass covers commit documents: with the vectors lost, a restart that
    writes no new commit embeds every message again."""
    repo, shas = history
    config = make_config(tmp_path, repo, path=str(default_model_dir))
    async with trio.open_nursery() as nursery:
        daemon, _ = await start_synced(nursery, config)
        daemon.shutdown()
    shutil.rmtree(tmp_path / "state" / "vectors")
    async with trio.open_nursery() as nursery:
        daemon, conn = await start_synced(nursery, config)
        assert all(content_hash(message) in daemon.embedding.vectors for message, _, _ in MESSAGES.values())
        assert (await commits(conn, "speed up the parser"))["results"][0]["sha"] == shas["tokenizer"]
        daemon.shutdown()


async def test_without_a_model_commits_are_searched_by_words_with_a_note(tmp_path, history, nursery):
    repo, shas = history
    daemon, conn = await start_synced(nursery, make_config(tmp_path, repo, enabled=False))
    reply = await commits(conn, "tokenizer")
    assert [hit["sha"] for hit in reply["results"]] == [shas["tokenizer"]]
    assert any("disabled" in note and "lexical" in note for note in reply["notes"])
    # No words: newest first, nothing to say about meaning.
    reply = await commits(conn, "author:alice", limit=2)
    assert [hit["sha"] for hit in reply["results"]] == [shas["downloads"], shas["theme"]]
    assert reply["notes"] == []
    daemon.shutdown()


def test_semantic_commit_search_pages_through_long_histories(tmp_path, monkeypatch):
    """Scored a page at a time, the best commits of every page win; commits sharing a message
    share a vector and are each a hit."""
    monkeypatch.setattr(codeweir.search.commits, "EXACT_CANDIDATES", 3)
    store = Store(tmp_path / "index")
    vectors = VectorStore(tmp_path / "vectors", "test-model", 2)
    records = []
    for i in range(10):
        message = "Merge branch 'main'" if i in (2, 7) else f"Change number {i}"
        sha = f"{i:040x}"
        records.append(CommitRecord(sha, ALICE if i % 2 else BOB, 1_700_000_000 + i, message, (), content_hash(message)))
    store.write_commits("proj", records)
    store.commit()
    # Unit vectors at angle i / 10 from the query's direction: commit 0 is nearest.
    angles = {r.content_hash: (0.1 * int(r.message.split()[-1]) if r.message[0] == "C" else 0.25) for r in records}
    vectors.add(list(angles), np.array([[np.cos(a), np.sin(a)] for a in angles.values()], dtype=np.float32))
    query = np.array([1.0, 0.0], dtype=np.float32)
    hits = search_commits_by_meaning(store, vectors, query, CommitFilters(), 5)
    assert [h.sha for h in hits] == [f"{i:040x}" for i in (0, 1, 2, 7, 3)]
    hits = search_commits_by_meaning(store, vectors, query, CommitFilters(authors=("alice",)), 3)
    assert [h.sha for h in hits] == [f"{i:040x}" for i in (1, 7, 3)]
    assert search_commits_by_meaning(store, vectors, query, CommitFilters(repo="other"), 3) == []
