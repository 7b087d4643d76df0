"""A full index of django, lexical and vectors, through a real daemon, beside the raw ONNX session.

    .venv/bin/python bench/bench_django_index.py [/work/corpora/django] [--quantized]
        [--model-cache /tmp/codeweir-bench-models] [--peer-chunks N]

The daemon indexes the corpus with the model enabled (built once into --model-cache and
named by `[model] path`, so no run pays for the conversion). Printed: wall time from the
daemon's start until lexical search covers every file and until every distinct text in the
index (chunks and commit messages, counted by reading the index beside the daemon) has a vector;
the embedding rate (vectors over the time from the first vector to the last, and over the
time after lexical indexing finished, when the model has the CPU to itself); peak RSS
(VmHWM) of the daemon, its sampled anonymous memory, and its largest parse worker.

Peer, in the same run, after the daemon has stopped: the raw ONNX session alone (no
tokenizing, no store) running the same model with the daemon's thread count on as many of
the corpus's chunks, in the Embedder's own batches (bench_embed.session_feeds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import attrs
import tantivy
from bench_embed import corpus_texts, session_feeds, timed
from daemon_run import Daemon, children, corpus, cpu_seconds, indexed, rss_kib

from codeweir.config import ModelConfig
from codeweir.embed.backlog import EMBED_CALL_TEXTS
from codeweir.embed.index_scan import EMBEDDED_KINDS
from codeweir.embed.model_build import ensure_model
from codeweir.embed.session import Embedder, default_threads
from codeweir.index.schema import SCHEMA

DEFAULT_MODEL_CACHE = Path("/tmp/codeweir-bench-models")
# A daemon whose vector count stands still this long, texts still unembedded, has stalled.
STALL_S = 180.0


@attrs.frozen
class IndexRun:
    lexical_s: float  # from the daemon's start until no sync is queued or running
    embedded_s: float  # from the daemon's start until every chunk has a vector
    first_vector_s: float  # from the daemon's start until the first vector was stored
    vectors_at_lexical: int
    vectors: int
    cpu_s: float  # the daemon process's CPU time (all its threads; not its parse workers) at the end
    chunks: int
    files: int
    model: dict

    @property
    def embed_rate(self) -> float:
        """Vectors per second from the first vector to the last."""
        return self.vectors / max(self.embedded_s - self.first_vector_s, 1e-9)

    @property
    def cpu_ms_per_vector(self) -> float:
        return 1000 * self.cpu_s / max(self.vectors, 1)

    @property
    def rate_after_lexical(self) -> float:
        """Vectors per second once parsing was done (the model alone on the CPU)."""
        return (self.vectors - self.vectors_at_lexical) / max(self.embedded_s - self.lexical_s, 1e-9)


def config_extra(model_dir: Path, *, quantized: bool) -> str:
    """`[model]` lines naming a prebuilt fp32 model; int8 is the daemon's own quantized copy of it."""
    return f'path = "{model_dir}"\nquantized = {"true" if quantized else "false"}'


def prebuilt_model(cache: Path) -> Path:
    return ensure_model(ModelConfig(), cache).directory


def texts_to_embed(index_dir: Path) -> int:
    """Distinct embedded texts (chunks and commit messages) in the daemon's committed index, read
    beside it. The daemon's own coverage counts leave out what waits in its backlog channel or
    was dropped there for a later reconciliation, so they can claim completion too early."""
    searcher = tantivy.Index.open(str(index_dir)).searcher()
    query = tantivy.Query.term_set_query(SCHEMA, "doc_kind", list(EMBEDDED_KINDS))
    total = searcher.search(query, limit=1, count=True).count
    hits = searcher.search(query, limit=max(total, 1), count=False).hits
    return len({searcher.doc(address).get_first("content_hash") for _, address in hits})


def index_with_vectors(daemon: Daemon, poll: float = 0.5, stall_s: float = STALL_S) -> IndexRun:
    """Start `daemon`, wait until lexical search covers everything, then until every distinct
    text in the index has a vector; exits if the vector count stands still for `stall_s` before."""
    started = time.perf_counter()
    daemon.start()
    first_vector = None
    lexical = None  # (seconds, vectors, texts to embed) once no sync is queued or running
    progress = (0, 0.0)  # (vectors, when that count was first seen)
    with daemon.client() as client:
        while True:
            status = client.call("status")
            now = time.perf_counter() - started
            vectors = status["model"]["vectors"]
            if status["model"]["state"] == "failed":
                sys.exit(f"the model failed to load: {status['model']['error']}")
            if vectors and first_vector is None:
                first_vector = now
            for pid in children(daemon.proc.pid):
                try:
                    daemon.peak_worker_kib = max(daemon.peak_worker_kib, rss_kib(pid))
                except OSError:
                    pass  # a worker that has just exited
            daemon.peak_anon_kib = max(daemon.peak_anon_kib, rss_kib(daemon.proc.pid, "RssAnon"))
            if lexical is None and indexed(client):
                lexical = (now, vectors, texts_to_embed(daemon.tmp / "state" / "index"))
            if lexical is not None and vectors >= lexical[2]:
                repos = status["repos"]
                return IndexRun(
                    lexical_s=lexical[0],
                    embedded_s=now,
                    first_vector_s=first_vector or now,
                    vectors_at_lexical=lexical[1],
                    vectors=vectors,
                    cpu_s=cpu_seconds(Path(f"/proc/{daemon.proc.pid}/stat"))[1],
                    chunks=sum(r["chunks"] for r in repos),
                    files=sum(r["files_indexed"] for r in repos),
                    model=status["model"],
                )
            if vectors != progress[0]:
                progress = (vectors, now)
            elif now - progress[1] > stall_s:
                sys.exit(f"embedding stalled: {vectors} vectors for {stall_s:.0f} s; status: {status}")
            time.sleep(poll)


def raw_session_rate(model_dir: Path, texts: list[str], *, quantized: bool, threads: int, cache: Path) -> float:
    """Chunks per second of session.run alone on `texts`, in calls of the daemon's size."""
    spec = ensure_model(ModelConfig(path=str(model_dir), quantized=quantized), cache)
    embedder = Embedder(spec, provider="cpu", threads=threads)
    session = embedder._session  # the bench times the session itself, as bench_embed does
    session_warm = session_feeds(embedder, texts[:64])
    for feed in session_warm:
        session.run(None, feed)
    seconds = 0.0
    for start in range(0, len(texts), EMBED_CALL_TEXTS):
        feeds = session_feeds(embedder, texts[start : start + EMBED_CALL_TEXTS])
        seconds += timed(lambda: [session.run(None, feed) for feed in feeds])[0]
    return len(texts) / seconds


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", default="/work/corpora/django")
    parser.add_argument("--quantized", action="store_true", help="the int8 model")
    parser.add_argument("--model-cache", type=Path, default=DEFAULT_MODEL_CACHE)
    parser.add_argument("--peer-chunks", type=int, default=0, help="chunks for the raw session (default: as many as the daemon)")
    args = parser.parse_args()

    repo = corpus(args.corpus)
    model_dir = prebuilt_model(args.model_cache)
    threads = default_threads()
    variant = "int8" if args.quantized else "fp32"
    daemon = Daemon({repo.name: repo}, model=True, extra=config_extra(model_dir, quantized=args.quantized))
    try:
        run = index_with_vectors(daemon)
        peak_daemon = daemon.peak_kib()
    finally:
        daemon.stop()
    print(
        f"{repo.name}: {run.files} files, {run.chunks} chunks, {run.vectors} distinct texts embedded (chunks, commits), "
        f"model {run.model['model']} on {run.model['provider']}, {threads} embedding thread(s)"
    )
    print(f"lexical complete        {run.lexical_s:8.1f} s")
    print(f"every chunk embedded    {run.embedded_s:8.1f} s  (first vector at {run.first_vector_s:.1f} s)")
    print(f"daemon CPU              {run.cpu_s:8.1f} s  ({run.cpu_ms_per_vector:.1f} ms per vector)")
    print(
        f"peak RSS: daemon {mib(peak_daemon)} (anonymous, sampled: {mib(daemon.peak_anon_kib)}), "
        f"largest worker {mib(daemon.peak_worker_kib)}"
    )

    texts = corpus_texts(repo, args.peer_chunks or run.vectors)
    peer = raw_session_rate(model_dir, texts, quantized=args.quantized, threads=threads, cache=args.model_cache)
    print(f"\n{'embedding, ' + variant:34} {'chunks/s':>9} {'vs raw':>7}")
    print(f"{f'raw ONNX session ({len(texts)} chunks)':34} {peer:9.1f}")
    print(f"{'daemon, first to last vector':34} {run.embed_rate:9.1f} {run.embed_rate / peer:6.2f}x")
    print(f"{'daemon, after lexical was done':34} {run.rate_after_lexical:9.1f} {run.rate_after_lexical / peer:6.2f}x")


if __name__ == "__main__":
    main()
