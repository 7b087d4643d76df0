"""Running a real codeweir daemon as a subprocess for benchmarks: config, start, wait, stop."""

from __future__ import annotations

import atexit
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from codeweir.client import Client
from codeweir.errors import DaemonUnreachable


def rss_kib(pid: int, field: str = "VmHWM") -> int:
    """A process's peak (VmHWM) or current (VmRSS) resident memory, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(stat: Path) -> tuple[str, float]:
    """The name and user + system CPU seconds in a /proc `stat` file: a process's (all its
    threads) or, under /proc/PID/task, one thread's."""
    text = stat.read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return text[text.index("(") + 1 : text.rindex(")")], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class Daemon:
    """`codeweir daemon` on a temp state dir, indexing `repos` ({name: path})."""

    def __init__(self, repos: dict[str, Path], *, model: bool = False, extra: str = "", tmp: Path | None = None) -> None:
        # `tmp`: another daemon's, to start again on its state (its index, its vectors).
        self.tmp = tmp or Path(tempfile.mkdtemp(prefix="codeweir-bench-"))
        self.socket = self.tmp / "run" / "codeweir.sock"
        lines = [f'state_dir = "{self.tmp / "state"}"', f'socket = "{self.socket}"']
        for name, path in repos.items():
            lines += ["[[repository]]", f'name = "{name}"', f'path = "{path}"']
        lines += ["[model]", f"enabled = {'true' if model else 'false'}", extra]
        self.config = self.tmp / "config.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.peak_worker_kib = 0
        # Sampled peaks of VmHWM's two parts: anonymous memory (heap, arenas, stacks) and mapped
        # files (the libraries, and the pages of the index's segments that Tantivy has read).
        self.peak_anon_kib = 0
        self.peak_file_kib = 0

    def start(self) -> float:
        """Start it; returns seconds until the socket answers."""
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "codeweir.cli.main", "daemon", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "daemon.log", "w"),  # noqa: SIM115  (the child holds it)
        )
        # A bench that fails (a search's error, a closed pipe) must not leave its daemon running
        # beside the next bench, whose figures it would skew.
        atexit.register(self.stop_if_running)
        while True:
            try:
                Client(self.socket, timeout=5).call("status")
                return time.perf_counter() - started
            except DaemonUnreachable:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited: {(self.tmp / 'daemon.log').read_text()[-2000:]}") from None
                time.sleep(0.05)

    def client(self, timeout: float | None = 3600) -> Client:
        return Client(self.socket, timeout=timeout)

    def wait_indexed(
        self, poll: float = 0.2, *, until: Callable[[Client], bool] | None = None, since: float | None = None
    ) -> float | None:
        """Until no job is queued or running, sampling the workers' peak memory meanwhile. With
        `until`, asked each second until it holds: the seconds since `since` (perf_counter) when
        it first did, or None."""
        held: float | None = None
        asked = -math.inf
        since = time.perf_counter() if since is None else since
        with self.client() as c:
            while True:
                if until is not None and held is None and time.perf_counter() - asked >= 1.0:
                    asked = time.perf_counter()
                    if until(c):
                        held = asked - since
                for pid in children(self.proc.pid):
                    try:
                        self.peak_worker_kib = max(self.peak_worker_kib, rss_kib(pid))
                    except OSError:
                        pass
                self.peak_anon_kib = max(self.peak_anon_kib, rss_kib(self.proc.pid, "RssAnon"))
                self.peak_file_kib = max(self.peak_file_kib, rss_kib(self.proc.pid, "RssFile"))
                if indexed(c):
                    return held
                time.sleep(poll)

    def peak_kib(self) -> int:
        return rss_kib(self.proc.pid)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def stop_if_running(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.stop()

    def __exit__(self, *exc) -> None:
        self.stop_if_running()


def indexed(client: Client) -> bool:
    """Whether the daemon has run a job and has none queued or running."""
    jobs = client.call("jobs")["jobs"]
    return bool(jobs) and not any(j["state"] in ("queued", "running") for j in jobs)


def corpus(path: str) -> Path:
    repo = Path(path).expanduser().resolve()
    if not (repo / ".git").exists():
        sys.exit(f"{repo}: not a corpus repository; build it with ../shared/corpora/build.sh OUT_DIR NAME")
    return repo


def peers(*commands: str) -> None:
    """Exit with what to install when a peer command a bench compares with is not on PATH."""
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        sys.exit(
            f"{', '.join(missing)}: not found; this bench measures codeweir beside them"
            " (Debian and Ubuntu: apt-get install codesearch ripgrep)"
        )


def our_files(client, params: dict) -> set[str]:
    """Every file a search matches, its pages read with the cursor."""
    files, cursor = set(), None
    while True:
        page = client.call("search", {**params, "limit": 1000, **({"cursor": cursor} if cursor else {})})
        files |= {hit["path"] for hit in page["results"]}
        if not (cursor := page.get("next_cursor")):
            return files


def csearch_files(env: dict, clone: Path, args: list[str]) -> set[str]:
    found = subprocess.run(["csearch", "-l", *args], env=env, capture_output=True, text=True).stdout.split()
    return {str(Path(p).relative_to(clone)) for p in found}


def escape(literal: str) -> str:
    """`literal` as an RE2 pattern (csearch takes patterns only)."""
    return "".join("\\" + c if c in r"\.+*?()|[]{}^$" else c for c in literal)
