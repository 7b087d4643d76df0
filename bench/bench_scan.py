"""No-change worktree scan: codeweir's git.scan() beside `git status` on the same repository.

    .venv/bin/python bench/bench_scan.py [REPO] [--files N] [--runs R]

With no REPO, builds a repository of N small files (default 8,000, about go-std's size) in a
temporary directory. Prints the median and minimum wall time of each over R interleaved runs
and their ratio (goal: scan at most 2x git status).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from codeweir.config import RepoConfig
from codeweir.git import scan

_GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def build_repo(root: Path, count: int) -> None:
    """`count` small Go-like files spread over 40 packages of 7 directories each, committed."""
    # Files older than the index, as in a repository not edited in the last second: files as
    # new as the index are "racily clean", and git and libgit2 re-hash them on every status.
    written = time.time() - 60
    for i in range(count):
        directory = root / f"pkg{i % 40}" / f"sub{i % 7}"
        directory.mkdir(parents=True, exist_ok=True)
        body = f"package p{i % 40}\n\nfunc F{i}() int {{ return {i} }}\n" * (1 + i % 30)
        path = directory / f"file{i}.go"
        path.write_text(body)
        os.utime(path, (written, written))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "corpus"]):
        subprocess.run(["git", *args], cwd=root, env=_GIT_ENV, check=True)


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("repo", nargs="?", type=Path, help="an existing non-bare repository")
    parser.add_argument("--files", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="codeweir-bench-scan-") as scratch:
        root = args.repo
        if root is None:
            root = Path(scratch) / "repo"
            root.mkdir()
            build_repo(root, args.files)
        root = root.resolve()
        config = RepoConfig(name=root.name, path=str(root))
        git_status = ["git", "-C", str(root), "status", "--porcelain"]

        def run_git_status() -> None:
            subprocess.run(git_status, env=_GIT_ENV, check=True, capture_output=True)

        files = len(scan(config, 1_000_000).files)  # also warms the page cache for both
        status_times, scan_times = [], []
        for _ in range(args.runs):  # interleaved, so both see the same machine load
            status_times.append(timed(run_git_status))
            scan_times.append(timed(lambda: scan(config, 1_000_000)))
    print(f"repository: {root} ({files} files), {args.runs} runs each, interleaved")
    print(f"{'':24} {'median':>9} {'min':>9}")
    for label, times in (("git status --porcelain", status_times), ("codeweir git.scan()", scan_times)):
        print(f"{label:24} {statistics.median(times) * 1000:6.1f} ms {min(times) * 1000:6.1f} ms")
    ratio_median = statistics.median(scan_times) / statistics.median(status_times)
    ratio_min = min(scan_times) / min(status_times)
    print(f"{'ratio scan / git status':24} {ratio_median:9.2f} {ratio_min:9.2f}   (goal <= 2.00)")


if __name__ == "__main__":
    main()
