"""embed: codeweir's ONNX embeddings match sentence-transformers', batching never reorders."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeweir.config import ModelConfig
from codeweir.embed.model_build import ModelSpec, ensure_model
from codeweir.embed.session import CPU, Embedder, EmbedStopped, token_budget_batches
from codeweir.embedded_text import content_hash, document_text
from codeweir.errors import ModelError

# The model is built once per run (cached across runs under pytest's cache dir).
from tests.host.test_priority import background, niceness, started_since, thread_stats

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "reference_embeddings.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def embedder(default_spec: ModelSpec) -> Embedder:
    return Embedder(default_spec, provider="cpu", threads=2)


def min_cosine_to_reference(embedder: Embedder) -> float:
    ours = embedder.embed_documents(REFERENCE["texts"])
    reference = np.asarray(REFERENCE["embeddings"], dtype=np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    return float(np.min(np.sum(ours * reference, axis=1)))


def test_embeddings_match_sentence_transformers_reference(embedder: Embedder) -> None:
    """Every reference text (code, English, unicode, past truncation) within cosine 0.999."""
    assert min_cosine_to_reference(embedder) >= 0.999
    assert "torch" not in sys.modules


def test_int8_model_stays_close_to_the_reference(state_dir: Path) -> None:
    int8 = Embedder(ensure_model(ModelConfig(quantized=True), state_dir), provider="cpu", threads=2)
    assert min_cosine_to_reference(int8) >= 0.98


def test_vectors_are_unit_float32_rows_in_input_order(embedder: Embedder) -> None:
    texts = ["short", "a much longer text " * 30, "def f():\n    return 1", "short"]
    together = embedder.embed_documents(texts)
    assert together.shape == (4, 384) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    for text, row in zip(texts, together):
        np.testing.assert_allclose(embedder.embed_documents([text])[0], row, atol=1e-5)


def test_no_texts_give_an_empty_matrix(embedder: Embedder) -> None:
    assert embedder.embed_documents([]).shape == (0, 384)


def test_texts_past_max_tokens_are_truncated_not_rejected(embedder: Embedder) -> None:
    long = "word " * 5000
    np.testing.assert_allclose(embedder.embed_documents([long]), embedder.embed_documents([long + " tail"]), atol=1e-6)


def test_lone_surrogates_from_undecodable_bytes_are_embedded(embedder: Embedder) -> None:
    text = b"name = 'caf\xe9'".decode("utf-8", "surrogateescape")
    assert np.isfinite(embedder.embed_documents([text, "ok"])).all()


def test_prefixes_are_applied_to_queries_and_documents(default_spec: ModelSpec, embedder: Embedder) -> None:
    spec = attrs.evolve(default_spec, query_prefix="query: ", document_prefix="passage: ")
    prefixed = Embedder(spec, provider="cpu", threads=1)
    plain = embedder.embed_documents(["query: parse dates", "passage: x = 1"])
    np.testing.assert_allclose(prefixed.embed_query("parse dates"), plain[0], atol=1e-5)
    np.testing.assert_allclose(prefixed.embed_documents(["x = 1"])[0], plain[1], atol=1e-5)


def test_cuda_falls_back_to_cpu_with_a_logged_warning(default_spec: ModelSpec, caplog) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has onnxruntime-gpu; the fallback is for machines without")
    with caplog.at_level(logging.WARNING, logger="codeweir.embed.session"):
        embedder = Embedder(default_spec, provider="cuda", threads=1)
    assert embedder.provider == CPU
    assert "using the CPU" in caplog.text


def test_a_dimension_the_model_does_not_produce_is_a_model_error(default_spec: ModelSpec) -> None:
    with pytest.raises(ModelError, match="produces 384-dimensional vectors, expected 768"):
        Embedder(attrs.evolve(default_spec, dim=768), provider="cpu", threads=1)


def test_an_unreadable_tokenizer_is_a_model_error(tmp_path: Path, default_spec: ModelSpec) -> None:
    (tmp_path / "model.onnx").symlink_to(default_spec.directory / "model.onnx")
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelError, match="tokenizer.json: not a usable tokenizer"):
        Embedder(attrs.evolve(default_spec, directory=tmp_path), provider="cpu", threads=1)


def test_bad_provider_and_threads_are_model_errors(default_spec: ModelSpec) -> None:
    with pytest.raises(ModelError, match="provider must be auto, cpu or cuda"):
        Embedder(default_spec, provider="tpu")
    with pytest.raises(ModelError, match="threads must be 0"):
        Embedder(default_spec, threads=-1)


def test_the_threads_an_embedder_starts_run_niced_and_the_callers_priority_stays(default_spec: ModelSpec) -> None:
    """onnxruntime's intra-op threads, the thread that runs documents, and the tokenizer's pool
    when this process has none yet."""
    before = thread_stats()
    embedder = Embedder(default_spec, provider="cpu", threads=3)
    embedder.embed_documents(["def f():\n    return 1"] * 8)
    embedder.embed_query("a query")
    started = started_since(before)
    assert len(started) >= 3 and set(started.values()) == {background()}  # two intra-op threads and one of ours
    assert niceness() == before[threading.get_native_id()].nice


def cpu_ticks_by_niceness(work: Callable[[], object]) -> Counter[int]:
    """CPU time the threads of this process spent during `work()`, summed by their niceness."""
    before = thread_stats()
    work()
    spent: Counter[int] = Counter()
    for tid, stat in thread_stats().items():
        spent[stat.nice] += stat.cpu_ticks - (before[tid].cpu_ticks if tid in before else 0)
    return spent


def test_documents_are_embedded_by_niced_threads_and_queries_by_the_caller(default_spec: ModelSpec) -> None:
    embedder = Embedder(default_spec, provider="cpu", threads=1)  # one thread: the whole run in one place
    texts = [f"def handler_{i}(request):\n    return render(request, 'page_{i}.html', {{'n': {i}}})\n" * 3 for i in range(48)]
    documents = cpu_ticks_by_niceness(lambda: embedder.embed_documents(texts))
    assert documents[background()] > 4 * documents[niceness()], documents
    queries = cpu_ticks_by_niceness(lambda: [embedder.embed_query(text) for text in texts])
    assert queries[niceness()] > 4 * queries[background()], queries


@given(st.lists(st.integers(1, 600)), st.integers(1, 4096))
def test_token_budget_batches_cover_every_text_once_within_budget(lengths: list[int], budget: int) -> None:
    lengths.sort()
    batches = token_budget_batches(lengths, budget)
    assert [i for start, end in batches for i in range(start, end)] == list(range(len(lengths)))
    for start, end in batches:
        assert end - start == 1 or lengths[end - 1] * (end - start) <= budget


def test_document_text_gives_context_but_not_the_path() -> None:
    text = document_text(
        language="python",
        symbol_path="Repo.read_blob",
        kind="method",
        content="def read_blob(self): ...",
    )
    assert text == "python method Repo.read_blob\ndef read_blob(self): ..."
    assert document_text(language="", symbol_path="", kind="", content="x = 1") == "x = 1"


def test_content_hash_is_32_hex_digits_and_tells_texts_apart() -> None:
    assert content_hash("a") == content_hash("a")
    assert content_hash("a") != content_hash("b")
    assert len(content_hash("\udcff")) == 32 and int(content_hash("x"), 16) >= 0


def test_an_embedder_left_to_choose_runs_a_thread_per_core_the_daemon_may_use(default_spec: ModelSpec) -> None:
    """Niced, they take only what nothing else wants: an otherwise idle daemon embeds on every core."""
    assert Embedder(default_spec, provider="cpu").threads == len(os.sched_getaffinity(0))


def test_embedding_documents_stops_between_two_runs_of_the_model_when_told(embedder: Embedder) -> None:
    asked = 0

    def stop() -> bool:
        nonlocal asked
        asked += 1
        return asked > 1  # after the first run of the model

    texts = [f"def f{i}(x):\n    return x + {i}\n" * 20 for i in range(8)]  # several runs' worth of tokens
    with pytest.raises(EmbedStopped):
        embedder.embed_documents(texts, stop=stop)
    assert asked == 2
