"""No-change worktree scan: codeweir's git.scan() beside `git status` on the same repository.

    .venv/bin/python bench/bench_scan.py [REPO] [--files N] [--runs R]

With no REPO, builds a repository of N small files (default 8,000, about go-std's size) in a
temporary directory. Prints the median and minimum wall time of each over R interleaved runs
and their ratio (goal: scan at most 2x git status).

With --touched, also: every tracked file's mtime changed (content not, as after a checkout of
the same tree or a `touch`), then the first and the second run of each after that. Both hash
every file on the first run and write the fresh stat data back to the index, so the second
is as fast as before. It changes the mtimes of REPO's files.
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
from codeweir.git.scan import scan

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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", nargs="?", type=Path, help="an existing non-bare repository")
    parser.add_argument("--files", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--touched", action="store_true", help="also time the runs after every file is touched")
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
        after_touch = {}
        if args.touched:
            for label, run in (
                ("git status --porcelain", run_git_status),
                ("codeweir git.scan()", lambda: scan(config, 1_000_000)),
            ):
                touch_tracked(root, time.time() - 30)
                after_touch[label] = (timed(run), timed(run))
    print(f"repository: {root} ({files} files), {args.runs} runs each, interleaved")
    print(f"{'':24} {'median':>9} {'min':>9}")
    for label, times in (("git status --porcelain", status_times), ("codeweir git.scan()", scan_times)):
        print(f"{label:24} {statistics.median(times) * 1000:6.1f} ms {min(times) * 1000:6.1f} ms")
    ratio_median = statistics.median(scan_times) / statistics.median(status_times)
    ratio_min = min(scan_times) / min(status_times)
    print(f"{'ratio scan / git status':24} {ratio_median:9.2f} {ratio_min:9.2f}   (goal <= 2.00)")
    if after_touch:
        print(f"\nafter touching every file {'first':>9} {'second':>9}")
        for label, (first, second) in after_touch.items():
            print(f"{label:24} {first * 1000:6.1f} ms {second * 1000:6.1f} ms")


def touch_tracked(root: Path, mtime: float) -> None:
    """Give every tracked file a new mtime, older than the index will be (not racily clean)."""
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in listed.split(b"\0"):
        if name and (path := root / os.fsdecode(name)).is_file():
            os.utime(path, (mtime, mtime))


if __name__ == "__main__":
    main()
