"""vectors: a content-addressed, crash-safe vector cache with exact and ANN search."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from codeweir.errors import StoreError
from codeweir.index import vector_ann, vectors
from codeweir.index.digest_counts import digests64
from codeweir.index.vectors import VectorStore

DIM = 16


def key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()[:32]


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def live(keys: set[str]) -> np.ndarray:
    """The sorted digests `retain` keeps."""
    return np.unique(digests64(keys))


def segments(store: VectorStore) -> list[Path]:
    return sorted(store.directory.glob("seg-*.npy"))


RERANK = vectors.ANN_RERANK


@pytest.fixture(autouse=True)
def small_rerank(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ANN index serves stores of a few hundred rows: a search for k asks it for 4k (the
    daemon asks for ANN_RERANK k, which below ANN_EXACT_SHARE of the rows scores every row)."""
    monkeypatch.setattr(vectors, "ANN_RERANK", 4)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_added_vectors_are_found_by_hash(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    store.add([key(1), key(2)], unit(rng, 2))
    assert len(store) == 2 and key(1) in store and key(3) not in store
    assert store.missing([key(3), key(1), key(3), key(4)]) == [key(3), key(4)]


def test_a_known_hash_keeps_its_first_vector(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    first, second, third = unit(rng, 3)
    store.add([key(1), key(1)], np.stack([first, second]))
    store.add([key(1)], third[None])
    assert len(store) == 1
    assert store.search(first, 1) == [(key(1), pytest.approx(1.0, abs=1e-5))]


@pytest.mark.parametrize(
    ("hashes", "shape", "message"),
    [
        ([key(1)], (1, DIM + 1), r"shape \(1, 16\)"),
        ([key(1), key(2)], (1, DIM), r"shape \(2, 16\)"),
        (["XYZ"], (1, DIM), "32 lowercase hex digits, got 'XYZ'"),
        ([key(1).upper()], (1, DIM), "32 lowercase hex"),
    ],
)
def test_bad_input_to_add_is_a_value_error_naming_it(tmp_path: Path, hashes, shape, message: str) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    with pytest.raises(ValueError, match=message):
        store.add(hashes, np.zeros(shape, dtype=np.float32))
    assert len(store) == 0


def test_a_model_id_that_cannot_be_a_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot name a directory"):
        VectorStore(tmp_path, "../escape", DIM)


def test_saved_vectors_come_back_exactly_and_per_model(tmp_path: Path, rng: np.random.Generator) -> None:
    hashes = [key(1), "00" * 16, "ab" + "00" * 15]  # trailing zero bytes survive the file format
    vectors = unit(rng, 3)
    store = VectorStore(tmp_path, "model-a", DIM)
    store.add(hashes, vectors)
    store.save()
    again = VectorStore(tmp_path, "model-a", DIM)
    assert len(again) == 3
    for h, v in zip(hashes, vectors):
        assert again.search(v, 1, candidates=[h]) == [(h, pytest.approx(float(v @ v), abs=1e-6))]
    assert len(VectorStore(tmp_path, "model-b", DIM)) == 0


def test_many_small_saves_leave_few_segments(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    for i in range(200):
        store.add([key(i)], unit(rng, 1))
        store.save()
    assert len(segments(store)) <= 8
    assert len(VectorStore(tmp_path, "m", DIM)) == 200
    assert not list(store.directory.glob("*.tmp"))


def test_save_with_nothing_new_writes_nothing(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    store.add([key(1)], unit(rng, 1))
    store.save()
    before = [(p.name, p.stat().st_mtime_ns) for p in segments(store)]
    store.save()
    assert [(p.name, p.stat().st_mtime_ns) for p in segments(store)] == before


def test_a_corrupt_segment_is_dropped_with_a_warning_and_the_rest_kept(
    tmp_path: Path, rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    store.add([key(i) for i in range(8)], unit(rng, 8))
    store.save()
    store.add([key(8)], unit(rng, 1))
    store.save()  # 8 rows then 1: two segments, no merge
    big, small = segments(store)
    big.write_bytes(big.read_bytes()[:100])
    (store.directory / "seg-00000099.npy.tmp").write_bytes(b"half-written")
    with caplog.at_level(logging.WARNING, logger="codeweir.index.vectors"):
        again = VectorStore(tmp_path, "m", DIM)
    assert len(again) == 1 and key(8) in again
    assert "corrupt vector segment dropped" in caplog.text
    assert segments(again) == [small] and not list(again.directory.glob("*.tmp"))


def test_segments_left_overlapping_by_a_crash_mid_merge_are_compacted(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    store.add([key(i) for i in range(5)], unit(rng, 5))
    store.save()
    (only,) = segments(store)
    (store.directory / "seg-00000009.npy").write_bytes(only.read_bytes())  # merged copy, old not yet deleted
    again = VectorStore(tmp_path, "m", DIM)
    assert len(again) == 5
    again.save()
    assert len(segments(again)) == 1 and len(VectorStore(tmp_path, "m", DIM)) == 5


def test_exact_search_ranks_by_inner_product(tmp_path: Path, rng: np.random.Generator) -> None:
    vectors = unit(rng, 300)
    store = VectorStore(tmp_path, "m", DIM)
    store.add([key(i) for i in range(300)], vectors)
    query = unit(rng, 1)[0]
    scores = vectors @ query
    expected = [key(i) for i in np.argsort(-scores)[:10]]
    found = store.search(query, 10)
    assert [h for h, _ in found] == expected
    assert [s for _, s in found] == pytest.approx(sorted(scores, reverse=True)[:10], abs=1e-5)
    assert len(store.search(query, 1000)) == 300 and store.search(query, 0) == []


def test_candidates_give_every_match_even_the_far_ones(tmp_path: Path, rng: np.random.Generator) -> None:
    vectors = unit(rng, 500)
    store = VectorStore(tmp_path, "m", DIM, ann_threshold=100)
    store.add([key(i) for i in range(500)], vectors)
    store.refresh_index()
    query = vectors[0]
    far = [key(i) for i in np.argsort(vectors @ query)[:3]]  # the three worst matches
    found = store.search(query, 10, candidates=[*far, far[0], "f" * 32])  # a repeat, an unknown
    assert sorted(h for h, _ in found) == sorted(far)


def test_a_query_of_the_wrong_shape_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"query vector of shape \(16,\)"):
        VectorStore(tmp_path, "m", DIM).search(np.zeros(8, dtype=np.float32), 5)


def clustered(rng: np.random.Generator, n: int, dim: int = 32) -> np.ndarray:
    centres = unit(rng, 40, dim)
    x = centres[rng.integers(0, 40, n)] + 0.3 * unit(rng, n, dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ann_search_past_the_threshold_agrees_with_exact_and_sees_new_rows(
    tmp_path: Path, rng, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the daemon's own parameters: the index answers, and its best re-scored agree with exact."""
    import faiss

    monkeypatch.setattr(vectors, "ANN_RERANK", RERANK)
    searches: list[int] = []

    class Faiss:
        def __getattr__(self, name: str) -> object:
            return getattr(faiss, name)

        def IndexIVFPQ(self, *args: object) -> object:
            index = faiss.IndexIVFPQ(*args)
            search = index.search
            index.search = lambda *a, **kw: (searches.append(1), search(*a, **kw))[1]
            return index

    monkeypatch.setattr(vector_ann, "faiss_module", Faiss)
    data = clustered(rng, 10_000)
    store = VectorStore(tmp_path, "m", 32, ann_threshold=1000)
    store.add([key(i) for i in range(10_000)], data)
    assert store.refresh_index() is True
    queries = clustered(rng, 50)
    recall = np.mean(
        [len({h for h, _ in store.search(q, 10)} & {key(i) for i in np.argsort(-(data @ q))[:10]}) / 10 for q in queries]
    )
    assert recall >= 0.95 and len(searches) == 50
    store.add([key(10_000)], queries[:1])  # not in the index yet: scored exactly beside it
    assert store.search(queries[0], 1)[0][0] == key(10_000)


def ann_meta(store: VectorStore) -> dict:
    return json.loads((store.directory / "ann.json").read_text())


def test_refresh_index_builds_past_the_threshold_then_grows_the_graph(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", 32, ann_threshold=500)
    store.add([key(i) for i in range(400)], clustered(rng, 400))
    assert store.refresh_index() is False  # below the threshold
    store.add([key(i) for i in range(400, 1000)], clustered(rng, 600))
    assert store.refresh_index(build=False) is False  # no graph to add to
    assert store.refresh_index() is True and store.ann_builds == 1
    assert store.refresh_index() is False  # nothing new
    store.add([key(i) for i in range(1000, 1050)], clustered(rng, 50))
    assert store.refresh_index(build=False) is True and store.ann_builds == 1  # added to the graph
    assert ann_meta(store)["covered"] == 1000  # 5% more: not worth saving yet
    assert store.refresh_index(rebuild=True) is True and store.ann_builds == 2
    assert ann_meta(store)["covered"] == 1050


def test_rows_added_after_the_build_join_the_graph_without_a_rebuild(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", 32, ann_threshold=500)
    store.add([key(i) for i in range(600)], clustered(rng, 600))
    store.save()
    assert store.refresh_index() is True
    assert store.ann_builds == 1 and ann_meta(store)["covered"] == 600
    added = clustered(rng, 300)
    store.add([key(i) for i in range(600, 900)], added)
    store.save()
    assert store.refresh_index() is True
    assert store.ann_builds == 1  # the same graph, grown
    import faiss

    assert ann_meta(store)["covered"] == 900 == faiss.read_index(str(store.directory / "ann.faiss")).ntotal
    # The graph covers every row (nothing is scored beside it): it finds the new rows itself.
    for i in (0, 100, 250, 299):
        assert store.search(added[i], 3)[0] == (key(600 + i), pytest.approx(1.0, abs=1e-5))
    store.add([key(i) for i in range(900, 920)], clustered(rng, 20))
    store.save()
    assert store.refresh_index() is True and ann_meta(store)["covered"] == 900  # grown in memory only
    again = VectorStore(tmp_path, "m", 32, ann_threshold=500)  # loads the graph over the first 900 rows
    assert again.refresh_index() is True and again.ann_builds == 0  # and adds the other 20
    assert again.refresh_index() is False


class _WatchedGraph:
    """A faiss index that notes a search and an add running at once (faiss does not allow it)."""

    def __init__(self, index: object, overlaps: list[str]) -> None:
        self._index, self._overlaps = index, overlaps
        self._lock = threading.Lock()
        self._searching, self._adding = 0, False

    def __getattr__(self, name: str) -> object:
        return getattr(self._index, name)

    def _note(self, what: str, clash: bool) -> None:
        if clash:
            self._overlaps.append(what)

    def search(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with self._lock:
            self._searching += 1
            self._note("a search began during an add", self._adding)
        try:
            return self._index.search(*args, **kwargs)  # type: ignore[attr-defined]
        finally:
            with self._lock:
                self._searching -= 1
                self._note("an add ran during a search", self._adding)

    def add(self, rows: np.ndarray) -> None:
        with self._lock:
            self._adding = True
            self._note("an add began during a search", self._searching > 0)
        try:
            self._index.add(rows)  # type: ignore[attr-defined]
        finally:
            with self._lock:
                self._adding = False
                self._note("a search ran during an add", self._searching > 0)


def test_a_search_beside_a_graph_being_grown_sees_every_row_exactly(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Searches in two threads while a third adds rows to the real faiss graph one at a time: no
    add runs during a search, each answer is the query's own row first (old rows from the graph,
    new ones from it or beside it) with exact scores, and searches run between every two batches."""
    import faiss

    overlaps: list[str] = []

    class Faiss:
        def __getattr__(self, name: str) -> object:
            return getattr(faiss, name)

        def IndexIVFPQ(self, *args: object) -> _WatchedGraph:
            return _WatchedGraph(faiss.IndexIVFPQ(*args), overlaps)

    monkeypatch.setattr(vector_ann, "faiss_module", Faiss)
    monkeypatch.setattr(vectors, "ANN_HOLD_S", 0.0)  # batches of one row
    old, new = clustered(rng, 800), clustered(rng, 200)
    data = np.concatenate([old, new])
    store = VectorStore(tmp_path, "m", 32, ann_threshold=500)
    store.add([key(i) for i in range(800)], old)
    assert store.refresh_index() is True
    store.add([key(i) for i in range(800, 1000)], new)
    searched, done = threading.Event(), threading.Event()
    batches: list[int] = []
    wrong: list[object] = []

    def between_batches() -> bool:
        assert searched.wait(timeout=30), "no search between two batches"
        searched.clear()
        batches.append(1)
        return False

    def grow() -> None:
        try:
            assert store.refresh_index(stop=between_batches) is True
        except BaseException as exc:
            wrong.append(exc)
        finally:
            done.set()

    rows = {key(i): i for i in range(len(data))}

    def search(offset: int) -> None:
        i = offset
        while not done.is_set():
            i = (i + 37) % len(data)
            found = store.search(data[i], 5)
            exact = [float(data[rows[h]] @ data[i]) for h, _ in found]
            if found[0][0] != key(i) or len(dict(found)) != 5 or [s for _, s in found] != pytest.approx(exact, abs=1e-5):
                wrong.append((i, found))
            searched.set()

    threads = [threading.Thread(target=grow), *(threading.Thread(target=search, args=(n,)) for n in (0, 500))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong, wrong[:3]
    assert not overlaps, overlaps[:3]
    assert len(batches) >= 150 and store.ann_builds == 1  # 16 rows, then one at a time
    assert all(store.search(data[i], 1)[0][0] == key(i) for i in range(0, 1000, 50))


def test_a_refresh_told_to_stop_gives_up_between_slices_and_keeps_the_index_it_had(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vectors, "ANN_ADD_ROWS", 250)
    store = VectorStore(tmp_path, "m", 32, ann_threshold=500)
    store.add([key(i) for i in range(600)], clustered(rng, 600))
    assert store.refresh_index() is True
    added = clustered(rng, 600)
    store.add([key(i) for i in range(600, 1200)], added)
    looks = []
    assert store.refresh_index(rebuild=True, stop=lambda: looks.append(1) or len(looks) > 2) is False  # after two slices
    assert len(looks) == 3 and store.ann_builds == 1
    assert store.search(added[500], 1)[0][0] == key(1100)  # the old index, and the rows it lacks scored beside it
    looks.clear()
    assert store.refresh_index(stop=lambda: looks.append(1) or len(looks) > 2) is True  # two batches added
    assert store.search(added[500], 1)[0][0] == key(1100)
    assert store.refresh_index() is True and store.ann_builds == 1  # the rest
    assert store.refresh_index() is False


def test_the_ann_index_is_reloaded_only_over_the_same_rows(
    tmp_path: Path, rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    store = VectorStore(tmp_path, "m", 32, ann_threshold=500)
    store.add([key(i) for i in range(600)], clustered(rng, 600))
    store.save()
    store.refresh_index()
    assert VectorStore(tmp_path, "m", 32, ann_threshold=500).refresh_index() is False  # reloaded, fresh
    for path in segments(store):
        path.unlink()  # the vectors are gone: the index no longer describes the store
    with caplog.at_level(logging.WARNING, logger="codeweir.index.vectors"):
        emptied = VectorStore(tmp_path, "m", 32, ann_threshold=500)
    assert len(emptied) == 0 and "ANN index dropped" in caplog.text
    assert not (emptied.directory / "ann.faiss").exists() and not (emptied.directory / "ann.json").exists()


def test_ann_results_are_the_exact_inner_products_and_match_exact_search(tmp_path: Path, rng) -> None:
    data = clustered(rng, 1500)
    store = VectorStore(tmp_path, "m", 32, ann_threshold=1000)
    store.add([key(i) for i in range(1500)], data)
    exact = [store.search(q, 5) for q in data[:20]]  # below nothing: the index is not built yet
    assert store.refresh_index() is True
    rows = {key(i): i for i in range(1500)}
    for q, want in zip(data[:20], exact):
        found = store.search(q, 5)
        assert found[0] == (want[0][0], pytest.approx(1.0, abs=1e-5))  # a stored vector finds itself
        assert [h for h, _ in found] == [h for h, _ in want]  # an easy set: the same five, in order
        assert [s for _, s in found] == pytest.approx([float(data[rows[h]] @ q) for h, _ in found], abs=1e-5)
    assert len(store.search(data[0], 10_000)) == 1500  # more than the graph yields: every row, exactly


def test_the_ann_index_survives_a_reload_from_disk(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", 32, ann_threshold=500)
    store.add([key(i) for i in range(800)], clustered(rng, 800))
    store.save()
    assert store.refresh_index() is True
    queries = clustered(rng, 20)
    before = [store.search(q, 10) for q in queries]
    again = VectorStore(tmp_path, "m", 32, ann_threshold=500)
    assert again.refresh_index() is False  # loaded, not rebuilt
    assert [again.search(q, 10) for q in queries] == before


def _hnswlib_leftovers(directory: Path, data: np.ndarray) -> None:
    """What the hnswlib-based store wrote: ann.hnsw, and an ann.json naming no format."""
    (directory / "ann.faiss").unlink()
    (directory / "ann.hnsw").write_bytes(os.urandom(4096))
    digest = hashlib.sha256("".join(key(i) for i in range(len(data))).encode()).hexdigest()
    (directory / "ann.json").write_text(json.dumps({"covered": len(data), "keys_sha256": digest}))


def _damaged(directory: Path, data: np.ndarray) -> None:
    index = directory / "ann.faiss"
    content = bytearray(index.read_bytes())
    content[: len(content) // 2] = os.urandom(len(content) // 2)  # the same size, as ann.json says
    index.write_bytes(bytes(content))


def _another_kind(directory: Path, data: np.ndarray) -> None:
    """A readable faiss index over the same vectors, described as ann.json expects, but flat."""
    import faiss

    flat = faiss.IndexFlatIP(data.shape[1])
    flat.add(data)
    faiss.write_index(flat, str(directory / "ann.faiss"))
    meta = json.loads((directory / "ann.json").read_text())
    meta["bytes"] = (directory / "ann.faiss").stat().st_size
    (directory / "ann.json").write_text(json.dumps(meta))


def _flat_graph(directory: Path, data: np.ndarray) -> None:
    """What the store wrote before its graph navigated over 8-bit codes: a float copy of the rows."""
    import faiss

    graph = faiss.IndexHNSWFlat(data.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    graph.add(data)
    faiss.write_index(graph, str(directory / "ann.faiss"))
    meta = json.loads((directory / "ann.json").read_text())
    meta.update(format="faiss-hnsw-flat-ip/1", bytes=(directory / "ann.faiss").stat().st_size)
    (directory / "ann.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_hnswlib_leftovers, "'format'"),
        (_flat_graph, "format 'faiss-hnsw-flat-ip/1'"),
        (_damaged, "Error in"),
        (_another_kind, "IndexFlatIP"),
    ],
)
def test_a_stale_or_foreign_index_file_is_dropped_and_rebuilt(
    tmp_path: Path, rng: np.random.Generator, caplog: pytest.LogCaptureFixture, spoil, reason: str
) -> None:
    data = clustered(rng, 600)
    store = VectorStore(tmp_path, "m", 32, ann_threshold=500)
    store.add([key(i) for i in range(600)], data)
    store.save()
    assert store.refresh_index() is True
    spoil(store.directory, data)
    with caplog.at_level(logging.WARNING, logger="codeweir.index.vectors"):
        again = VectorStore(tmp_path, "m", 32, ann_threshold=500)
    assert "ANN index dropped" in caplog.text and re.search(reason, caplog.text), caplog.text
    assert len(again) == 600 and not (again.directory / "ann.hnsw").exists()
    assert again.search(data[7], 1)[0][0] == key(7)  # exact meanwhile
    assert again.refresh_index() is True  # rebuilt, and saved for the next load
    assert again.search(data[7], 1)[0][0] == key(7)
    assert VectorStore(tmp_path, "m", 32, ann_threshold=500).refresh_index() is False


def test_building_and_searching_in_a_thread_leave_the_gil_to_other_threads(tmp_path: Path, rng) -> None:
    """The build runs in a worker thread while the event loop goes on: a thread that keeps the GIL
    through a native call would stop this one from counting for the whole call."""
    n, dim = 10_000, 64
    store = VectorStore(tmp_path, "m", dim, ann_threshold=1000)
    store.add([key(i) for i in range(n)], unit(rng, n, dim))  # uniform: a slow graph to build
    queries = unit(rng, 200, dim)
    done = threading.Event()
    took: list[float] = []

    def work() -> None:
        start = time.perf_counter()
        assert store.refresh_index() is True
        for q in queries:
            store.search(q, 10)
        took.append(time.perf_counter() - start)
        done.set()

    thread = threading.Thread(target=work)
    counted, longest = 0, 0.0
    last = time.perf_counter()
    thread.start()
    while not done.is_set():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
        counted += 1
    thread.join()
    assert took and took[0] > 0.2  # a build long enough to tell
    # Held throughout, the longest pause would be the whole build; released, a few switch intervals.
    assert longest < took[0] / 4, (longest, took[0], counted)
    import faiss

    # faiss's Ctrl-C check takes the GIL every ~100 Mflop of a long call: the store turns it off.
    assert faiss.InterruptCallback.get_period_hint(1000) == 1 << 30


def test_retain_forgets_unlisted_vectors_in_memory_and_on_disk(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    vectors = unit(rng, 10)
    store.add([key(i) for i in range(6)], vectors[:6])
    store.save()
    store.add([key(i) for i in range(6, 10)], vectors[6:])
    store.save()
    referred = {key(i) for i in (1, 3, 7)} | {key(99)}  # a live key without a vector is no matter
    assert store.retain(live(referred)) == 7
    assert len(store) == 3 and all(key(i) in store for i in (1, 3, 7))
    assert store.missing([key(0), key(1), key(7)]) == [key(0)]
    assert [h for h, _ in store.search(vectors[7], 1)] == [key(7)]
    assert {h for h, _ in store.search(vectors[0], 10)} == {key(1), key(3), key(7)}
    assert len(segments(store)) == 1
    again = VectorStore(tmp_path, "m", DIM)
    assert len(again) == 3 and np.allclose(again.search(vectors[3], 1)[0][1], 1.0)


def test_retain_with_nothing_to_forget_writes_nothing(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    store.add([key(i) for i in range(4)], unit(rng, 4))
    store.save()
    before = [(p.name, p.stat().st_mtime_ns) for p in segments(store)]
    assert store.retain(live({key(i) for i in range(5)})) == 0
    assert [(p.name, p.stat().st_mtime_ns) for p in segments(store)] == before


def test_rows_added_after_retain_are_saved_and_come_back(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    store.add([key(i) for i in range(5)], unit(rng, 5))
    store.save()
    assert store.retain(live(set())) == 5 and len(store) == 0
    store.add([key(7), key(8)], unit(rng, 2))
    store.save()
    assert set(VectorStore(tmp_path, "m", DIM).missing([key(i) for i in range(10)])) == {key(i) for i in range(10)} - {
        key(7),
        key(8),
    }


def test_a_crash_at_any_step_of_retain_loads_the_old_set_or_the_new_one(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file system change retain makes is preceded by a copy of the store's directory: each
    copy is what a crash at that moment would leave, and each must load as one of the two sets."""
    store = VectorStore(tmp_path / "live", "m", DIM)
    for part in range(3):  # several segments
        store.add([key(i) for i in range(part * 4, part * 4 + 4)], unit(rng, 4))
        store.save()
    old = {key(i) for i in range(12)}
    new = {key(i) for i in range(0, 12, 3)}
    crashes: list[Path] = []

    def crash_here() -> None:
        copy = tmp_path / f"crash-{len(crashes)}"
        shutil.copytree(store.directory, copy / "m")
        crashes.append(copy)

    real_replace, real_unlink = os.replace, Path.unlink
    monkeypatch.setattr(os, "replace", lambda a, b: (crash_here(), real_replace(a, b))[1])
    monkeypatch.setattr(Path, "unlink", lambda self, **kw: (crash_here(), real_unlink(self, **kw))[1])
    assert store.retain(live(new)) == 8
    monkeypatch.undo()
    crash_here()
    loaded = []
    for copy in crashes:
        again = VectorStore(copy, "m", DIM)
        kept = {h for h in old if h in again}
        assert kept in (old, new), copy
        loaded.append(kept == new)
        again.save()  # and whatever a crash left is tidied up without losing the set
        assert {h for h in old if h in VectorStore(copy, "m", DIM)} == kept
    assert loaded[0] is False and loaded[-1] is True and len(crashes) >= 4


def test_retain_drops_the_ann_index_and_search_stays_right(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", 32, ann_threshold=500)
    vectors = clustered(rng, 1200)
    store.add([key(i) for i in range(1200)], vectors)
    store.save()
    assert store.refresh_index() is True
    assert store.retain(live({key(i) for i in range(0, 1200, 2)})) == 600
    assert not (store.directory / "ann.faiss").exists()
    for i in (1, 2, 501):  # a forgotten vector is never found, a kept one still is
        assert (key(i) in {h for h, _ in store.search(vectors[i], 5)}) == (i % 2 == 0)
    assert store.refresh_index() is True  # rebuilt over the kept rows
    assert store.search(vectors[502], 1)[0][0] == key(502)


def _garble_rows(segment: Path) -> None:
    """Random bytes over a segment's rows; its .npy header stays, so it loads as an array."""
    data = bytearray(segment.read_bytes())
    header = data.index(b"\n") + 1
    data[header:] = os.urandom(len(data) - header)
    segment.write_bytes(bytes(data))


def test_a_segment_with_random_bytes_over_its_rows_is_dropped_and_none_of_them_served(
    tmp_path: Path, rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    store.add([key(i) for i in range(64)], unit(rng, 64))
    store.save()
    store.add([key(i) for i in range(64, 70)], unit(rng, 6))
    store.save()  # two segments, no merge
    big, small = segments(store)
    _garble_rows(big)
    with caplog.at_level(logging.WARNING, logger="codeweir.index.vectors"):
        again = VectorStore(tmp_path, "m", DIM)
    assert "corrupt vector segment dropped" in caplog.text and "not" in caplog.text
    # Its rows are missing, so the backlog's reconciliation embeds their chunks again.
    assert again.missing([key(i) for i in range(70)]) == [key(i) for i in range(64)]
    scores = [score for _, score in again.search(unit(rng, 1)[0], 10)]
    assert len(scores) == 6 and all(np.isfinite(scores)) and max(scores) <= 1.0 + 1e-5
    assert segments(again) == [small]


def test_a_model_that_does_not_normalize_keeps_finite_vectors_of_any_length_but_not_nan_ones(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    store = VectorStore(tmp_path, "raw", DIM, unit_norm=False)
    store.add([key(i) for i in range(8)], 5 * unit(rng, 8))
    store.save()
    bad = 5 * unit(rng, 2)
    bad[1, 3] = np.nan
    store.add([key(8), key(9)], bad)
    store.save()  # two segments, no merge
    again = VectorStore(tmp_path, "raw", DIM, unit_norm=False)
    assert again.missing([key(i) for i in range(10)]) == [key(8), key(9)]
    assert len(VectorStore(tmp_path, "raw", DIM)) == 0  # read as a normalizing model's: none of length 1


def test_saved_rows_are_read_from_their_segment_files_and_only_newer_rows_are_in_memory(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    store = VectorStore(tmp_path, "m", DIM)
    vectors = unit(rng, 12)
    store.add([key(i) for i in range(8)], vectors[:8])
    store.save()
    store.add([key(i) for i in range(8, 12)], vectors[8:])
    rows = store._view.rows
    mapped = [b for b in rows.blocks if isinstance(b, np.memmap)]
    assert [Path(b.filename) for b in mapped] == segments(store) and sum(map(len, mapped)) == 8
    assert not isinstance(rows.blocks[-1], np.memmap) and rows.starts[-1] == 8
    assert [store.search(v, 1)[0][0] for v in vectors] == [key(i) for i in range(12)]
    store.save()  # merged with the first: one file, every row mapped
    assert len(segments(store)) == 1 and sum(len(b) for b in store._view.rows.blocks if isinstance(b, np.memmap)) == 12
    assert [store.search(v, 1)[0][0] for v in vectors] == [key(i) for i in range(12)]


def test_hashes_that_share_their_first_64_bits_are_told_apart_before_and_after_a_save(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    alike = ["0123456789abcdef" + f"{i:016x}" for i in range(3)]
    vectors = unit(rng, 3)
    store = VectorStore(tmp_path, "m", DIM)
    store.add(alike[:2], vectors[:2])
    store.save()
    assert alike[2] not in store and store.missing(alike) == [alike[2]]
    assert store.has([*alike, "not a hash", key(5)]).tolist() == [True, True, False, False, False]
    store.add(alike[2:], vectors[2:])
    store.save()
    again = VectorStore(tmp_path, "m", DIM)
    for s in (store, again):
        assert all(h in s for h in alike)
        assert [s.search(v, 1, candidates=alike)[0][0] for v in vectors] == alike


def _resident_kib(path: Path) -> int:
    """This process's resident KiB of `path`'s mappings, from /proc/self/smaps."""
    total, counting = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
            counting = line.endswith(" " + str(path))
        elif counting and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc")
def test_the_pages_a_search_read_leave_the_process_when_released(tmp_path: Path, rng: np.random.Generator) -> None:
    store = VectorStore(tmp_path, "m", 64)
    vectors = unit(rng, 4096, 64)
    store.add([key(i) for i in range(4096)], vectors)
    store.save()
    (segment,) = segments(store)
    store.release_pages()
    assert _resident_kib(segment) == 0
    assert store.search(vectors[9], 1)[0][0] == key(9)  # scores every row
    assert _resident_kib(segment) >= 4096 * 64 * 4 // 1024
    store.release_pages()
    assert _resident_kib(segment) == 0 and store.search(vectors[9], 1)[0][0] == key(9)
