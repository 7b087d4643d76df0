"""Semantic and hybrid search through a real daemon with the real ONNX model."""

import sys
import threading
from pathlib import Path

import pytest
import trio

from codeweir.config import load_config, parse_config
from codeweir.embed import queue as embed_queue
from codeweir.embed.backlog import EmbeddingService, written_texts
from codeweir.embed.model_build import PACKAGE_MODULE, default_model_source
from codeweir.embed.model_install import install_model_source
from codeweir.embed.queue import EmbedItem, EmbedQueue
from codeweir.embedded_text import content_hash
from codeweir.facets import classify
from codeweir.index.store import Store
from codeweir.index.vectors import VectorStore
from codeweir.index.writes import SyncTracker, WriteFile, ignore
from codeweir.records import Chunk, FileRecord
from codeweir.search.filters import Filters
from codeweir.search.semantic import search_semantic
from codeweir.service.daemon import run_daemon
from tests.host.test_priority import background, niceness, started_since, thread_stats
from tests.index_reading import content_hashes
from tests.service.test_daemon import Conn, git

FILES = {
    "textutil.py": '''def shout(text):
    """Return the text in upper case letters."""
    return text.upper()
''',
    "net.go": """package net

// Dial opens a TCP connection to the given network address.
func Dial(address string) (Conn, error) {
\treturn connect(address)
}
""",
    "mathx.rs": """/// Greatest common divisor of two numbers, by Euclid's algorithm.
pub fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}
""",
}


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for name, text in FILES.items():
        (repo / name).write_text(text)
    return repo


def make_config(tmp_path, repo, limits=None, **model):
    return parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "socket": str(tmp_path / "run" / "codeweir.sock"),
            "repositories": [{"name": "proj", "path": str(repo)}],
            "limits": {"files_in_flight": 2, "parse_workers": 1, **(limits or {})},
            "model": model,
        },
        base_dir=tmp_path,
    )


async def start(nursery, config):
    daemon = await nursery.start(run_daemon, config)
    stream = await trio.open_unix_socket(config.socket)
    return daemon, Conn(stream)


def standalone_service(config):
    """An embedding service on its own store, outside a daemon: tests drive its steps."""
    store = Store(Path(config.state_dir) / "index")
    send, receive = trio.open_memory_channel(1)
    limiters = {"model_limiter": trio.CapacityLimiter(1), "query_limiter": trio.CapacityLimiter(1)}
    return store, send, EmbeddingService(config.model, Path(config.state_dir), store, receive, **limiters)


async def synced(daemon, conn):
    await conn.call("sync", {"repo": "proj", "wait": True})
    await daemon.embedding.wait_idle()


async def test_semantic_search_finds_code_by_meaning(tmp_path, repo, default_model_dir, nursery):
    daemon, conn = await start(nursery, make_config(tmp_path, repo, path=str(default_model_dir)))
    await synced(daemon, conn)
    status = (await conn.call("status"))["result"]
    assert status["model"]["state"] == "ready" and status["model"]["provider"] == "CPUExecutionProvider"
    (proj,) = status["repos"]
    assert proj["chunks"] > 0 and proj["chunks_embedded"] == proj["chunks"]
    for query, path in [
        ("convert a string to capitals", "textutil.py"),
        ("open a network connection", "net.go"),
        ("largest number dividing both", "mathx.rs"),
    ]:
        reply = await conn.call("search", {"query": query, "mode": "semantic", "limit": 1})
        assert reply["result"]["results"][0]["path"] == path, (query, reply)
    daemon.shutdown()


async def test_hybrid_search_fuses_lexical_and_semantic(tmp_path, repo, default_model_dir, nursery):
    daemon, conn = await start(nursery, make_config(tmp_path, repo, path=str(default_model_dir)))
    await synced(daemon, conn)
    reply = (await conn.call("search", {"query": "gcd of two numbers", "limit": 3}))["result"]
    assert reply["mode"] == "hybrid"
    assert reply["results"][0]["path"] == "mathx.rs"
    # Filters apply to both halves.
    reply = (await conn.call("search", {"query": "connection", "lang": "go", "mode": "semantic"}))["result"]
    assert {h["language"] for h in reply["results"]} == {"go"}
    daemon.shutdown()


async def test_identical_chunks_are_embedded_once(tmp_path, repo, default_model_dir, nursery):
    daemon, conn = await start(nursery, make_config(tmp_path, repo, path=str(default_model_dir)))
    await synced(daemon, conn)
    vectors = len(daemon.embedding.vectors)
    (repo / "vendor").mkdir()
    (repo / "vendor" / "textutil_copy.py").write_text(FILES["textutil.py"])
    (repo / "renamed.go").write_text(FILES["net.go"])
    (repo / "net.go").unlink()
    await synced(daemon, conn)
    assert len(daemon.embedding.vectors) == vectors
    status = (await conn.call("status"))["result"]["repos"][0]
    assert status["chunks_embedded"] == status["chunks"]
    daemon.shutdown()


async def test_vectors_survive_a_restart_and_only_missing_ones_are_embedded(tmp_path, repo, default_model_dir):
    config = make_config(tmp_path, repo, path=str(default_model_dir))
    async with trio.open_nursery() as nursery:
        daemon, conn = await start(nursery, config)
        await synced(daemon, conn)
        first = daemon.embedding.embedded_total
        daemon.shutdown()
    assert first > 0
    async with trio.open_nursery() as nursery:
        daemon, conn = await start(nursery, config)
        await synced(daemon, conn)
        assert daemon.embedding.embedded_total == 0
        daemon.shutdown()


async def test_without_a_model_semantic_says_why_and_hybrid_falls_back(tmp_path, repo, nursery):
    daemon, conn = await start(nursery, make_config(tmp_path, repo, enabled=False))
    await synced(daemon, conn)
    error = (await conn.call("search", {"query": "connection", "mode": "semantic"}))["error"]
    assert "disabled" in error["message"]
    reply = (await conn.call("search", {"query": "connection"}))["result"]
    assert reply["results"][0]["path"] == "net.go"
    assert any("lexical" in note for note in reply["notes"])
    daemon.shutdown()


async def test_a_broken_model_is_reported_and_lexical_search_goes_on(tmp_path, repo, nursery):
    (tmp_path / "badmodel").mkdir()
    daemon, conn = await start(nursery, make_config(tmp_path, repo, path=str(tmp_path / "badmodel")))
    await synced(daemon, conn)
    model = (await conn.call("status"))["result"]["model"]
    assert model["state"] == "failed" and "model.onnx" in model["error"]
    reply = (await conn.call("search", {"query": "Dial", "mode": "lexical"}))["result"]
    assert reply["results"][0]["path"] == "net.go"
    daemon.shutdown()


async def test_a_model_switch_keeps_semantic_search_on_the_old_model_until_the_new_one_covers(tmp_path, repo, default_model_dir):
    old = make_config(tmp_path, repo, path=str(default_model_dir))
    async with trio.open_nursery() as nursery:
        daemon, conn = await start(nursery, old)
        await synced(daemon, conn)
        old_id = daemon.embedding.model.embedder.model_id
        daemon.shutdown()
    # Another model: the same weights with other pooling give other vectors, hence another id.
    new = make_config(tmp_path, repo, path=str(default_model_dir), pooling="cls")
    store, send, service = standalone_service(new)
    model = await service._load()
    assert model.embedder.model_id != old_id
    assert service.state == "filling" and service.serving.embedder.model_id == old_id
    query = await service.embed_query("open a network connection")
    assert search_semantic(store, service.serving_vectors, query, Filters(), 1)[0].path == "net.go"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service._consume, model)
        await service.wait_idle()
        assert service.state == "ready" and service.serving is model
        nursery.cancel_scope.cancel()
    # The old model's vectors are no longer read: they are gone, and only the new model's remain.
    vectors_dir = Path(new.state_dir) / "vectors"
    assert sorted(p.name for p in vectors_dir.iterdir()) == sorted([model.embedder.model_id, "serving-model.json"])


async def test_every_thread_the_embedding_service_starts_runs_niced_while_the_event_loop_keeps_its_priority(
    tmp_path, repo, default_model_dir
):
    """So searches keep their latency while the backlog is embedded: onnxruntime's intra-op
    threads and the thread that runs the model start niced, the event loop's thread does not."""
    config = make_config(tmp_path, repo, path=str(default_model_dir), threads=2)
    store, send, service = standalone_service(config)
    texts = [f"def square_{i}(x):\n    return x * x + {i}\n" for i in range(20)]
    send.send_nowait([EmbedItem("proj", "chunk", content_hash(text), text) for text in texts])
    await trio.to_thread.run_sync(store.searcher)  # trio's worker thread, which the service reuses, and the reader
    before = thread_stats()
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await service.wait_idle()
        started = started_since(before)
        nursery.cancel_scope.cancel()
    assert service.embedded_total == len(texts) and service.state == "ready"
    assert len(started) >= 2 and set(started.values()) == {background()}  # one intra-op thread and one of ours
    assert thread_stats()[threading.get_native_id()].nice == niceness()


async def test_a_reconciliation_forgets_the_vectors_of_edited_chunks_and_search_still_answers(tmp_path, repo, default_model_dir):
    config = make_config(tmp_path, repo, path=str(default_model_dir))
    async with trio.open_nursery() as nursery:
        daemon, conn = await start(nursery, config)
        await synced(daemon, conn)
        before = content_hashes(daemon.store)
        (repo / "textutil.py").write_text(FILES["textutil.py"].replace("upper case letters", "capital letters"))
        await synced(daemon, conn)
        after = content_hashes(daemon.store)
        (old,), (new,) = before - after, after - before
        assert old in daemon.embedding.vectors and new in daemon.embedding.vectors  # the edit only adds
        daemon.shutdown()
    async with trio.open_nursery() as nursery:
        daemon, conn = await start(nursery, config)  # reconciles at start
        await synced(daemon, conn)
        vectors = daemon.embedding.vectors
        assert old not in vectors and set(vectors.added_since(0)) == after
        reply = await conn.call("search", {"query": "convert a string to capitals", "mode": "semantic", "limit": 1})
        assert reply["result"]["results"][0]["path"] == "textutil.py"
        model_id, dim = vectors.model_id, vectors.dim
        daemon.shutdown()
    on_disk = VectorStore(Path(config.state_dir) / "vectors", model_id, dim)
    assert set(on_disk.added_since(0)) == after


async def test_a_reconciliation_keeps_vectors_of_writes_not_yet_committed_and_forgets_them_later(
    tmp_path, repo, default_model_dir
):
    """The writer offers a batch before it commits it: a vector whose chunk the scan cannot see
    yet survives the reconciliation after it was embedded, and goes at the next one."""
    config = make_config(tmp_path, repo, path=str(default_model_dir))
    store, send, service = standalone_service(config)
    model = await service._load()
    texts = [f"def cube_{i}(x):\n    return x * x * x + {i}\n" for i in range(12)]
    items = [EmbedItem("proj", "chunk", content_hash(text), text) for text in texts]
    await service._embed(model, {item.content_hash: item.text for item in items})
    await service._reconcile(model)
    assert all(item.content_hash in model.vectors for item in items)
    await service._reconcile(model)  # still in no committed chunk: dead
    assert len(model.vectors) == 0


async def result(conn, method, params=None):
    reply = await conn.call(method, params)
    assert "result" in reply, reply
    return reply["result"]


async def proj_status(conn) -> dict:
    (proj,) = (await result(conn, "status"))["repos"]
    return proj


async def test_semantic_search_answers_from_the_vectors_there_are_and_says_how_much_of_the_index_they_cover(
    tmp_path, repo, default_model_dir, nursery
):
    daemon, conn = await start(nursery, make_config(tmp_path, repo, path=str(default_model_dir)))
    await synced(daemon, conn)
    before = await proj_status(conn)
    assert before["chunks_embedded"] == before["chunks"] == before["texts"] == before["texts_embedded"]
    # The embedder cannot run while the test holds the model: what the status and searches say
    # now is what the vectors on hand cover, not what was offered.
    async with daemon.embedding.model_limiter:
        (repo / "geometry.py").write_text("def circle_area(r):\n    return 3.14159 * r * r\n")
        (repo / "textutil.py").write_text(FILES["textutil.py"].replace("upper case letters", "capital letters"))
        await result(conn, "sync", {"repo": "proj", "wait": True})
        now = await proj_status(conn)
        assert now["chunks"] == before["chunks"] + 1
        assert now["chunks_embedded"] == before["chunks_embedded"] - 1  # the edited chunk's new text has none
        assert (now["texts"], now["texts_embedded"]) == (before["texts"] + 1, before["texts_embedded"] - 1)
        reply = await result(conn, "search", {"query": "open a network connection", "mode": "semantic", "limit": 1})
        assert reply["results"][0]["path"] == "net.go"
        share = f"{now['chunks_embedded']} of {now['chunks']} chunks ({now['chunks_embedded'] * 100 // now['chunks']}%)"
        assert f"semantic results cover {share}" in " ".join(reply["notes"])
        hybrid = await result(conn, "search", {"query": "network connection", "limit": 3})
        assert any("semantic results cover" in note for note in hybrid["notes"])
        model = (await result(conn, "status"))["model"]
        assert model["state"] == "filling" and model["waiting"] == 2
        waited = await result(conn, "wait", {"vectors": True, "timeout": 0})
        assert waited["done"] is False and waited["waited_for"] == ["index", "vectors"]
        assert waited["vectors"] == {"chunks": now["chunks"], "chunks_embedded": now["chunks_embedded"]}
    waited = await result(conn, "wait", {"vectors": True})
    assert waited["done"] is True and waited["vectors"]["chunks_embedded"] == waited["vectors"]["chunks"] == now["chunks"]
    after = await proj_status(conn)
    assert after["chunks_embedded"] == after["chunks"] and after["texts_embedded"] == after["texts"]
    reply = await result(conn, "search", {"query": "area of a circle", "mode": "semantic", "limit": 1})
    assert reply["results"][0]["path"] == "geometry.py" and reply["notes"] == []
    daemon.shutdown()


def many_files(repo: Path, n: int) -> None:
    for i in range(n):
        (repo / f"mod{i}.py").write_text(f"def compute_{i}(x):\n    return x * {i} + {i * i}\n")


async def test_a_daemon_without_the_model_names_the_install_command_and_embeds_every_chunk_once_it_is_installed(
    tmp_path, repo, nursery, monkeypatch
):
    """Chunks written while the model is missing (through a channel of one batch, a commit a
    file) are all embedded once `codeweir model install` put it in place and reloaded the daemon."""
    checkpoint = default_model_source()
    # The package is not installed, here nor in the process that builds the model (it gets this sys.path).
    hidden = tmp_path / "hidden" / PACKAGE_MODULE
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('not installed')\n")
    monkeypatch.syspath_prepend(str(hidden.parent))
    monkeypatch.delitem(sys.modules, PACKAGE_MODULE, raising=False)
    many_files(repo, 60)
    path = tmp_path / "config.toml"  # the reload re-reads it
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\nsocket = "{tmp_path / "run" / "codeweir.sock"}"\n'
        f'[[repository]]\nname = "proj"\npath = "{repo}"\n'
        "[limits]\nfiles_in_flight = 2\nparse_workers = 1\nembed_channel = 1\ncommit_every_files = 1\n"
        "[model]\nquantized = false\n"
    )
    config = load_config(path)
    daemon = await nursery.start(run_daemon, config, path)
    conn = Conn(await trio.open_unix_socket(config.socket))
    assert (await result(conn, "wait"))["done"]
    waited = await result(conn, "wait", {"vectors": True})  # until the model is found missing
    assert waited["done"] is False and "codeweir model install" in waited["error"]
    model = (await result(conn, "status"))["model"]
    assert model["state"] == "missing" and "codeweir model install" in model["error"]
    error = (await conn.call("search", {"query": "compute", "mode": "semantic"}))["error"]
    assert "codeweir model install" in error["message"]
    hybrid = await result(conn, "search", {"query": "compute_7"})
    assert hybrid["results"][0]["path"] == "mod7.py" and any("lexical" in note for note in hybrid["notes"])

    await trio.to_thread.run_sync(install_model_source, checkpoint, Path(config.state_dir))
    await result(conn, "reload")  # what `codeweir model install` does next
    waited = await result(conn, "wait", {"vectors": True})
    chunks = (await proj_status(conn))["chunks"]
    assert waited == {"done": True, "waited_for": ["index", "vectors"], "vectors": {"chunks": chunks, "chunks_embedded": chunks}}
    assert (await result(conn, "status"))["model"]["state"] == "ready"
    reply = await result(conn, "search", {"query": "open a network connection", "mode": "semantic", "limit": 1})
    assert reply["results"][0]["path"] == "net.go"
    daemon.shutdown()


async def test_chunks_written_through_a_channel_of_one_batch_while_the_model_loads_all_get_a_vector(
    tmp_path, repo, default_model_dir, nursery
):
    """Today's stall: what the writer offered while the model loaded overflowed the channel, and
    the reconciliation at start ran before it was committed; semantic search waited for good."""
    many_files(repo, 200)
    config = make_config(tmp_path, repo, {"embed_channel": 1, "commit_every_files": 1}, path=str(default_model_dir))
    daemon, conn = await start(nursery, config)
    waited = await result(conn, "wait", {"vectors": True})
    chunks = (await proj_status(conn))["chunks"]
    assert chunks > 200 and waited["vectors"] == {"chunks": chunks, "chunks_embedded": chunks}
    assert len(daemon.embedding.vectors) >= len(content_hashes(daemon.store))
    daemon.shutdown()


async def test_a_queue_bounded_to_a_few_hashes_still_gets_every_chunk_a_vector(
    tmp_path, repo, default_model_dir, nursery, monkeypatch
):
    """The queue keeps 4 texts and 8 hashes of the 200 files' chunks a full sync offers: the
    rest are found by scans of the index, each once the queue has run dry."""
    monkeypatch.setattr(embed_queue, "QUEUED_TEXTS", 4)
    monkeypatch.setattr(embed_queue, "QUEUED_HASHES", 8)
    many_files(repo, 200)
    daemon, conn = await start(nursery, make_config(tmp_path, repo, path=str(default_model_dir)))
    waited = await result(conn, "wait", {"vectors": True})
    chunks = (await proj_status(conn))["chunks"]
    assert chunks > 200 and waited["vectors"] == {"chunks": chunks, "chunks_embedded": chunks}
    assert daemon.embedding.queue.max_hashes == 8 and daemon.embedding.queue.left_out_until is None
    daemon.shutdown()


def written(path: str, text: str, *, interactive: bool = False) -> WriteFile:
    """A file of one chunk as the writer applies it: facets from its path, its sync's priority."""
    chunk = Chunk(1, 1, 0, len(text), "", "function", "", text)
    record = FileRecord("proj", path, "blob", "python", (chunk,), (content_hash(text),), facets=classify(path, text))
    return WriteFile(SyncTracker("proj", 1, ignore, interactive=interactive), record)


def test_the_backlog_embeds_a_watchers_changes_first_then_source_then_tests_then_vendored_and_generated_files():
    writes = [
        written("vendor/left_pad.py", "def left_pad(): pass"),
        written("tests/test_app.py", "def test_app(): pass"),
        written("app_pb2.py", "def generated(): pass"),
        written("app.py", "def app(): pass"),
        written("tests/test_saved.py", "def test_saved(): pass", interactive=True),
        written("saved.py", "def saved(): pass", interactive=True),
        written("cli.py", "def cli(): pass"),
    ]
    queue = EmbedQueue()
    paths = {}
    for write in writes:
        for item in written_texts(write):
            paths[item.content_hash] = write.record.path
            queue.push(item.content_hash, item.kind, item.text, rank=item.rank, interactive=item.interactive)
    taken = queue.take(100, commits=0, done=lambda h: False)
    assert [paths[h] for h, _ in taken] == [
        "saved.py",  # a watcher's or hook's changes, source before tests there too
        "tests/test_saved.py",
        "app.py",
        "cli.py",
        "tests/test_app.py",
        "vendor/left_pad.py",  # vendored and generated rank alike: in the order written
        "app_pb2.py",
    ]
