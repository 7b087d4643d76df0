"""Vectors kept after edits: the store beside the hashes the index refers to.

    PYTHONPATH=daemon:bench .venv/bin/python bench/bench_vector_gc.py /work/corpora/rxjs [--files 40]

Indexes a copy of the corpus with the model, edits N files (every `const ` becomes `let `, so
their chunks get new hashes), syncs, then restarts the daemon, whose reconciliation at start
forgets the vectors nothing refers to. Prints the vectors and the bytes on disk at each step
beside the chunk hashes the index refers to (the floor any store must keep; commit
messages have vectors too).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import trio
from daemon_run import corpus

from codeweir.client import Client
from codeweir.config import parse_config
from codeweir.service.daemon import run_daemon


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


async def step(config, label: str, edit=None) -> None:
    if edit:
        edit()
    async with trio.open_nursery() as nursery:
        started = time.perf_counter()
        daemon = await nursery.start(run_daemon, config)
        client = Client(config.socket, timeout=600)
        await trio.to_thread.run_sync(client.call, "sync", {"repo": "corpus", "wait": True})
        await daemon.embedding.wait_idle()
        seconds = time.perf_counter() - started
        counts = await trio.to_thread.run_sync(daemon.store.chunk_hash_counts)
        live = set().union(*counts.values())  # the chunks' distinct hashes
        vectors = daemon.embedding.vectors
        daemon.shutdown()  # saves the vectors: disk is measured after it
    print(
        f"{label:<26} vectors {len(vectors):>6}  chunk hashes in the index {len(live):>6}  "
        f"on disk {disk_bytes(vectors.directory) / 2**20:6.2f} MiB  ({seconds:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus")
    parser.add_argument("--files", type=int, default=40)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="codeweir-gc-"))
    repo = tmp / "repo"
    subprocess.run(["git", "clone", "-q", "--local", str(corpus(args.corpus)), str(repo)], check=True)
    config = parse_config(
        {
            "state_dir": str(tmp / "state"),
            "socket": str(tmp / "codeweir.sock"),
            "repositories": [{"name": "corpus", "path": str(repo)}],
        },
        base_dir=tmp,
    )
    edited = [p for p in sorted(repo.rglob("*.ts")) if "const " in p.read_text()][: args.files]

    def edit() -> None:
        for path in edited:
            path.write_text(path.read_text().replace("const ", "let "))

    try:
        trio.run(step, config, "full index")
        trio.run(step, config, f"after editing {len(edited)} files", edit)
        trio.run(step, config, "restart (reconciles)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
