"""Text -> vectors: tokenizer, token-budget batches, one ONNX Runtime session, pooling.

Calls block; the daemon runs them in a thread under a limiter of its own. onnxruntime's run
and the tokenizer's batch encode release the GIL, so the event loop keeps running meanwhile.

Embedding documents is background work, like parsing: the session's intra-op threads, the
tokenizer's thread pool and the thread that runs the model for documents are niced, so on a
small machine a search takes the CPU from them. Queries run at the caller's priority. Niced,
the session may have a thread per core the daemon may use: whatever else runs (a sync's parse
workers, searches) takes the CPU first, and an otherwise idle daemon embeds on every core.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from codeweir.embed.model_dir import MODEL_FILE, TOKENIZER_FILE
from codeweir.errors import ModelError
from codeweir.host.priority import BackgroundThread

if TYPE_CHECKING:
    from codeweir.embed.model_build import ModelSpec

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# Tokens per batch (rows x padded length). On CPU small batches win: the attention scores of a
# big batch fall out of cache (bench/bench_embed.py: 512 beat 1024-16384 on 2 threads).
# A GPU wants enough rows to fill it.
CPU_TOKEN_BUDGET = 512
CUDA_TOKEN_BUDGET = 32768


def default_threads() -> int:
    """Every core this process may use (its threads are niced: other work comes first)."""
    # macOS has no sched_getaffinity: every core there.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores)


class EmbedStopped(Exception):
    """`embed_documents` was told to stop between two runs of the model: its texts have no vectors."""


def token_budget_batches(lengths: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Cut texts sorted by length into [start, end) runs whose padded size fits `budget`.

    Padded size is rows x the longest row; a single text longer than the budget gets a
    batch of its own.
    """
    batches = []
    start = 0
    for i, length in enumerate(lengths):
        # Sorted ascending, so the row just added is the longest of its batch.
        if i > start and length * (i - start + 1) > budget:
            batches.append((start, i))
            start = i
    if start < len(lengths):
        batches.append((start, len(lengths)))
    return batches


class Embedder:
    """One model, one session. Blocking calls; a query may be embedded in one thread while
    documents are in another (ORT sessions and tokenizers take concurrent calls).

    The session runs documents in a thread of its own at background priority: onnxruntime
    computes a share of every run in the calling thread (all of it with one intra-op thread).
    """

    def __init__(self, spec: ModelSpec, *, provider: str = "auto", threads: int = 0) -> None:
        if provider not in ("auto", "cpu", "cuda"):
            raise ModelError(f"provider must be auto, cpu or cuda, not {provider!r}")
        if threads < 0:
            raise ModelError(f"threads must be 0 (automatic) or more, not {threads}")
        self.spec = spec
        self.model_id = spec.model_id
        self.dim = spec.dim
        self.threads = threads or default_threads()
        self._tokenizer = _load_tokenizer(spec.directory / TOKENIZER_FILE, spec.max_tokens)
        # Where documents run; other background work of the embed backlog may take its turn here.
        self.background = BackgroundThread("codeweir-embed")
        # Threads start with their creator's priority: onnxruntime starts its intra-op threads
        # when the session opens, and tokenizers its process-wide pool at the first batch encode.
        self._session = self.background.call(_open_session, spec.directory / MODEL_FILE, provider, self.threads)
        self.background.call(self._encode_batch, ["codeweir"])
        self.provider = self._session.get_providers()[0]
        self._token_budget = CUDA_TOKEN_BUDGET if self.provider == CUDA else CPU_TOKEN_BUDGET
        # ensure_model checked the inputs and outputs; this one is optional.
        self._wants_token_types = "token_type_ids" in {i.name for i in self._session.get_inputs()}
        self._output_name = self._session.get_outputs()[0].name
        probe = np.array([self._encode("codeweir").ids], dtype=np.int64)
        width = self._run(probe, np.ones_like(probe), background=True).shape[1]
        if width != spec.dim:
            raise ModelError(f"{spec.directory / MODEL_FILE}: produces {width}-dimensional vectors, expected {spec.dim}")
        log.info("embedding model %s on %s (%d threads)", self.model_id, self.provider, self.threads)

    def embed_documents(self, texts: Sequence[str], *, stop: Callable[[], bool] | None = None) -> np.ndarray:
        """(len(texts), dim) float32, in the order given; the document prefix applied.

        At background priority: the tokenizer's pool and the model's threads do the work; the
        calling thread pads batches and pools, at its own priority, so no niced thread holds
        the GIL for long. Raises EmbedStopped as soon as `stop()` is true between two runs of
        the model (a few tens of milliseconds each on a CPU), so a daemon stops at once.
        """
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        prefix = self.spec.document_prefix
        encodings = self._encode_batch([prefix + t for t in texts] if prefix else list(texts))
        return self._embed(encodings, background=True, stop=stop)

    def embed_query(self, text: str) -> np.ndarray:
        """(dim,) float32 for a search query; the query prefix applied. Encoded and run in the
        calling thread at its priority: a query never waits behind documents."""
        return self._embed([self._encode(self.spec.query_prefix + text)], background=False)[0]

    def _embed(self, encodings: list, *, background: bool, stop: Callable[[], bool] | None = None) -> np.ndarray:
        out = np.empty((len(encodings), self.dim), dtype=np.float32)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        for start, end in token_budget_batches(lengths[order].tolist(), self._token_budget):
            if stop is not None and stop():
                raise EmbedStopped
            rows = order[start:end]
            width = int(lengths[rows[-1]])
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, i in enumerate(rows):
                ids[j, : lengths[i]] = encodings[i].ids
                mask[j, : lengths[i]] = 1
            out[rows] = self._run(ids, mask, background=background)
        if self.spec.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _encode_batch(self, texts: list[str]) -> list:
        """In the tokenizer's thread pool."""
        try:
            return self._tokenizer.encode_batch(texts, add_special_tokens=True)
        except TypeError:
            return self._tokenizer.encode_batch([_without_surrogates(t) for t in texts], add_special_tokens=True)

    def _encode(self, text: str):
        """In the calling thread."""
        try:
            return self._tokenizer.encode(text, add_special_tokens=True)
        except TypeError:
            return self._tokenizer.encode(_without_surrogates(text), add_special_tokens=True)

    def _run(self, ids: np.ndarray, mask: np.ndarray, *, background: bool) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if self._wants_token_types:
            feed["token_type_ids"] = np.zeros_like(ids)
        run = functools.partial(self._session.run, [self._output_name], feed)
        try:
            (hidden,) = self.background.call(run) if background else run()
        except Exception as exc:  # onnxruntime's errors have no common public base
            raise ModelError(f"{self.model_id}: inference failed: {exc}") from None
        if hidden.ndim == 2:  # the model pools itself
            return hidden
        if self.spec.pooling == "cls":
            return hidden[:, 0]
        weights = mask[:, :, None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def _without_surrogates(text: str) -> str:
    """Lone surrogates (from undecodable bytes) cannot cross into Rust; replace them."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _load_tokenizer(path: Path, max_tokens: int) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises bare Exception on bad files
        raise ModelError(f"{path}: not a usable tokenizer: {exc}") from None
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.no_padding()  # padding is per batch, to the batch's longest text
    return tokenizer


def _open_session(path: Path, provider: str, threads: int) -> ort.InferenceSession:
    ort.set_default_logger_severity(3)  # the process-wide logger's warnings too: errors only
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # ORT's warnings go to stderr, not our log
    # Idle intra-op threads spinning for work would take CPU from the parse workers; on the
    # shared 2-core machine this was measured faster, not slower, with spinning off.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if provider != "cpu":
        if CUDA in ort.get_available_providers():
            try:
                session = ort.InferenceSession(str(path), options, providers=[CUDA, CPU])
            except Exception as exc:  # a broken CUDA install fails here, not at import
                log.warning("CUDA execution provider failed (%s); using the CPU", exc)
            else:
                if session.get_providers()[0] == CUDA:
                    return session
                log.warning("CUDA execution provider unavailable (no GPU?); using the CPU")
        elif provider == "cuda":
            log.warning("provider 'cuda' asked for but onnxruntime-gpu is not installed; using the CPU")
    try:
        return ort.InferenceSession(str(path), options, providers=[CPU])
    except Exception as exc:
        raise ModelError(f"{path}: onnxruntime cannot load the model: {exc}") from None
