"""Hostile input and faults against a real daemon: nothing may crash it, freeze it or lose data.

    .venv/bin/python bench/bench_faults.py [--files 300] [--fuzz 2000] [--connections 500] [--seed 1]

One `codeweir daemon` (lexical; no model) indexes a generated repository that is hostile itself:
names with ANSI escapes, newlines, invalid UTF-8, 255-byte and 60-deep paths, a FIFO, a symlink
out of the worktree; contents with escapes, NUL bytes, invalid UTF-8, a 900 KB line, 5,000
definitions in one file. A second repository ("victim") is a copy of it. Then, in turn:

- inputs: random protocol bytes, deep JSON (arrays, objects, params), an oversized line, hostile
  params of every method (wrong types, huge numbers, lone surrogates, catastrophic regexes,
  path traversal, unknown fields and methods): every line gets an answer, none an internal error;
- a flood: `--connections` connections held open, half silent, half trickling a byte a second
  (each one the daemon closes is opened again): a normal client's connect-to-answer time;
- faults: SIGKILL in the middle of a full sync, then a restart; the victim repository deleted in
  the middle of its sync, then restored; index files damaged at rest (a truncated .store, a
  deleted .term) and a garbled block found while serving (.idx), each followed by a restart; a
  vector segment garbled under a VectorStore (in this process: no model here).

It prints what was tried, the daemon's unexpected deaths (goal 0), the longest `status` answer
under each attack (a client polling every 50 ms) and whether the index after each recovery
equals a fresh daemon's index of the same repository: every file (path, blob, status, chunk
count), every chunk (path, lines, symbol, content hash) and the commit count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from daemon_run import Daemon

from codeweir.client import Client
from codeweir.errors import DaemonError, DaemonUnreachable
from codeweir.index.schema import query_all, stored_chunk
from codeweir.index.store import Store
from codeweir.index.vectors import VectorStore

# -- the hostile repository ---------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True, env=env).stdout.decode()


def write(root: Path, relative: bytes, content: bytes) -> None:
    path = os.path.join(os.fsencode(root), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(content)


HOSTILE_NAMES = [
    b"evil/\x1b]0;pwned\x07\x1b[2J.py",
    b"evil/new\nline.py",
    b"evil/bad\xff\xfename.py",
    b"evil/" + b"l" * 251 + b".py",
    b"evil/-rf --no-preserve-root.py",
    b"evil/\xe2\x80\xaeyp.exe.py",  # a right-to-left override
    b"/".join([b"d"] * 60) + b"/deep.py",
]
HOSTILE_CONTENTS = {
    b"evil/escapes.py": b'def ansi():\n    return "\x1b]0;pwned\x07\x1b[2J\x9b31m"\n',
    b"evil/nul.bin": b"\x00\x01binary\x00" * 100,
    b"evil/latin1.py": b"def caf\xe9():\n    return '\xe9'\n",
    b"evil/long_line.js": b"var x = [" + b"1," * 450_000 + b"];\n",
    b"evil/many.py": b"".join(b"def f%d():\n    pass\n" % i for i in range(5000)),
    b"evil/regex_bomb.txt": b"a" * 50_000 + b"!\n",
}


def make_repo(root: Path, files: int, rng: random.Random) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    for i in range(files):
        body = "".join(f"def handler_{i}_{j}(request, n={rng.randint(0, 99)}):\n    return request + n\n\n\n" for j in range(6))
        write(root, f"pkg{i // 50}/mod{i}.py".encode(), body.encode())
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "plain files")
    for name in HOSTILE_NAMES:
        write(root, name, b"def hostile_name():\n    pass\n")
    for name, content in HOSTILE_CONTENTS.items():
        write(root, name, content)
    os.symlink("/etc/passwd", root / "evil" / "passwd.py")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "hostile \x1b[2J names and contents")
    os.mkfifo(root / "evil" / "untracked.fifo")  # never ends a read: refused at once
    return root


# -- what an index holds ------------------------------------------------------------------------


def index_sets(state_dir: Path, repo: str) -> tuple[set, set, int]:
    """(path, blob, status, chunk count) of every file, (path, lines, symbol, content hash) of
    every chunk, and the commit count of `repo`, as a daemon left them (it must be stopped)."""
    store = Store(state_dir / "index")
    try:
        searcher = store.searcher()

        def documents(kind: str):
            query = query_all([("doc_kind", kind), ("repo", repo)])
            total = searcher.search(query, limit=1, count=True).count
            return [searcher.doc(address) for _, address in searcher.search(query, limit=max(total, 1)).hits] if total else []

        first = lambda doc, field: (doc.get_all(field) or [None])[0]  # noqa: E731
        files = {(first(d, "path"), first(d, "blob"), first(d, "status"), first(d, "chunk_count")) for d in documents("file")}
        chunks = {(c.path, c.start_line, c.end_line, c.symbol, c.content_hash) for c in map(stored_chunk, documents("chunk"))}
        return files, chunks, len(documents("commit"))
    finally:
        store.close()


def same_index(state_dir: Path, repo: str, fresh: tuple) -> str:
    files, chunks, commits = index_sets(state_dir, repo)
    if (files, chunks, commits) == fresh:
        return f"equal ({len(files)} files, {len(chunks)} chunks, {commits} commits)"
    return (
        f"DIFFERENT: files {len(files)} vs {len(fresh[0])} ({len(files ^ fresh[0])} differ), "
        f"chunks {len(chunks)} vs {len(fresh[1])} ({len(chunks ^ fresh[1])} differ), commits {commits} vs {fresh[2]}"
    )


# -- the daemon under attack --------------------------------------------------------------------


class Watch:
    """The daemon's unexpected deaths, and a client asking `status` every 50 ms: its longest wait."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.deaths = 0
        self.log = ""
        self.expected_exit = False
        self.down = False  # stopped, killed or starting on purpose: an unanswered status is no finding
        self.latencies: list[float] = []
        self.failures: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def keep_log(self) -> None:
        """The daemon's log so far (each start of a Daemon rewrites it)."""
        self.log += (self.daemon.tmp / "daemon.log").read_text(errors="replace")

    def check_alive(self, where: str) -> None:
        proc = self.daemon.proc
        if proc is not None and proc.poll() is not None and not self.expected_exit:
            self.deaths += 1
            print(f"  !! the daemon died ({where}): exit {proc.returncode}")
            log = self.daemon.tmp / "daemon.log"
            print("\n".join(log.read_text(errors="replace").splitlines()[-15:]))
            self.expected_exit = True  # counted once

    @contextmanager
    def status_polled(self):
        self.latencies, self.failures = [], Counter()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                with Client(self.daemon.socket, timeout=30) as client:
                    client.call("status")
                self.latencies.append(time.perf_counter() - started)
            except (DaemonError, DaemonUnreachable) as exc:
                if not self.down:
                    self.failures[str(exc)[:80]] += 1
            self._stop.wait(0.05)

    @contextmanager
    def restarting(self):
        self.down = self.expected_exit = True
        try:
            yield
        finally:
            self.down = self.expected_exit = False

    def summary(self) -> str:
        if not self.latencies:
            return f"no status answered; failures {dict(self.failures)}"
        line = f"status max {max(self.latencies) * 1000:.0f} ms, p50 {np.median(self.latencies) * 1000:.0f} ms over {len(self.latencies)}"
        if self.failures:
            line += f"; unanswered: {sum(self.failures.values())} ({', '.join(self.failures)})"
        return line


def raw_exchange(path: Path, data: bytes, timeout: float = 10.0, expect: int | None = None) -> list[bytes]:
    """Send `data` on a new connection and read the lines answered: until the daemon closes
    (after a half-close), or until `expect` lines came (without one: a client that half-closes
    has left, and its long-running requests, `wait`, are cancelled unanswered)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    received = b""
    try:
        sock.connect(str(path))
        try:
            sock.sendall(data)
            if expect is None:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # closed on us (an oversized line): what it said is still there to read
        while (expect is None or received.count(b"\n") < expect) and (chunk := sock.recv(65536)):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    finally:
        sock.close()
    return [line for line in received.split(b"\n") if line]


def request(id_: object, method: object, params: object = None) -> bytes:
    message = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode() + b"\n"


def hostile_requests(rng: random.Random) -> list[bytes]:
    values = [
        None, True, -1, 0, 10**12, 10**400, 1e308, -1e-308, "", "x" * 100_000, "\x00", "\ud800", "../../etc/passwd",
        "/etc/passwd", [], [1, [2, [3]]], {}, {"a": {"b": {}}}, "(a+)+$", "((((((", "sym:", "re:(a|aa)*b",
        "\x1b]0;pwned\x07", "*" * 1000, "repo:nope", "path:**/*" * 50,
    ]  # fmt: skip
    fields = {
        "search": ["query", "mode", "limit", "repo", "path", "offset", "cursor", "context"],
        "sync": ["repo", "all", "full", "paths", "wait", "priority"],
        "wait": ["repo", "timeout"],
        "cancel": ["job", "repo"],
        "status": ["verbose"],
        "jobs": [],
        "repos": [],
        "reload": [],
    }
    lines = []
    for method, names in fields.items():
        for name in names:
            for value in values:
                params = {"query": "handler"} if method == "search" else {}
                params[name] = value
                if method == "sync":
                    params.setdefault("repo", "main")
                    params["wait"] = False
                if method == "wait" and name != "timeout":
                    params["timeout"] = 0.1
                lines.append(request(rng.randint(1, 10**9), method, params))
    for method in ("nope", "", None, 42, "status\x00", "__init__", "search" * 1000):
        lines.append(request(1, method))
    lines += [
        b'{"jsonrpc": "1.0", "id": 1, "method": "status"}\n',
        b'{"id": {"a": 1}, "method": "status"}\n',
        b'{"jsonrpc": "2.0", "id": 1, "method": "search", "params": {"query": NaN}}\n',
        b'{"jsonrpc": "2.0", "id": 1, "method": "search", "params": [1, 2]}\n',
        b'[{"jsonrpc": "2.0", "id": 1, "method": "status"}]\n',
        b'"just a string"\n',
        b'{"jsonrpc": "2.0", "id": 1, "method": "search", "params": {"query": "\\ud800\\udfff\\udc00"}}\n',
    ]
    return lines


def fuzz(daemon: Daemon, watch: Watch, count: int, rng: random.Random) -> str:
    tried: Counter[str] = Counter()
    answers: dict[str, Counter[str]] = {}

    def exchange(kind: str, data: bytes, lines_sent: int, expect: int | None = None) -> None:
        tried[kind] += lines_sent
        counts = answers.setdefault(kind, Counter())
        for line in raw_exchange(daemon.socket, data, expect=expect):
            try:
                message = json.loads(line)
            except ValueError:
                counts["not JSON (!)"] += 1
                continue
            code = (message.get("error") or {}).get("code") if isinstance(message, dict) else None
            counts["internal error (!)" if code == -32603 else "error" if code is not None else "result"] += 1

    for _ in range(count // 2):  # random bytes, a few lines per connection (a blank line gets no answer)
        lines = [os.urandom(rng.randint(1, 512)).replace(b"\n", b"") for _ in range(rng.randint(1, 4))]
        exchange("random protocol bytes (lines)", b"\n".join(lines) + b"\n", len(lines))
    depth = 200_000
    exchange("deep JSON", b"[" * depth + b"]" * depth + b"\n", 1)
    exchange("deep JSON", b'{"a":' * depth + b"1" + b"}" * depth + b"\n", 1)
    nested = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "search", "params": {"query": "x", "repo": '
        + b"[" * 50_000
        + b"]" * 50_000
        + b"}}\n"
    )
    exchange("deep JSON", nested, 1)
    exchange("oversized line (2 MiB)", b"x" * (2 << 20) + b"\n" + request(1, "status"), 2)
    hostile = hostile_requests(rng)
    for start in range(0, len(hostile), 8):  # pipelined, 8 to a connection
        pack = hostile[start : start + 8]
        exchange("hostile params and methods", b"".join(pack), len(pack), expect=len(pack))
        watch.check_alive("hostile params")
    watch.check_alive("fuzz")
    return "; ".join(
        f"{kind}: {n} lines, answered {', '.join(f'{c} {what}' for what, c in sorted(answers.get(kind, {}).items()))}"
        for kind, n in tried.items()
    )


class Flood:
    """`n` connections held open against the daemon: half silent, half trickling a byte a second;
    each one the daemon closes is opened again."""

    def __init__(self, path: Path, n: int) -> None:
        self.path, self.n = path, n
        self.socks: list[socket.socket | None] = [None] * n
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, i: int) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(str(self.path))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            sock.close()
            return
        self.socks[i] = sock

    def _run(self) -> None:
        request_bytes = b'{"jsonrpc": "2.0", "id": 1, "method": "status"}'
        tick = 0
        while not self._stop.is_set():
            for i in range(self.n):
                sock = self.socks[i]
                if sock is None:
                    self._open(i)
                    self.reopened += 1
                    continue
                try:
                    if sock.recv(65536, socket.MSG_DONTWAIT) == b"":  # closed by the daemon
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    sock.close()
                    self.socks[i] = None
                    continue
                if i % 2:  # trickling: the next byte of a request that never ends
                    try:
                        sock.send(request_bytes[tick % len(request_bytes) : tick % len(request_bytes) + 1])
                    except OSError:
                        sock.close()
                        self.socks[i] = None
            tick += 1
            self._stop.wait(1.0)

    def __enter__(self) -> Flood:
        for i in range(self.n):
            self._open(i)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.socks:
            if sock is not None:
                sock.close()


def good_client_times(path: Path, tries: int) -> list[float]:
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        try:
            with Client(path, timeout=30) as client:
                client.call("status")
            times.append(time.perf_counter() - started)
        except (DaemonError, DaemonUnreachable) as exc:
            times.append(float("inf"))
            print(f"  good client refused: {exc}")
        time.sleep(0.2)
    return times


def wait_healed(daemon: Daemon, timeout: float = 300) -> float:
    """Until the daemon reports no damage, no rebuild and no sync to run; seconds it took."""
    started = time.perf_counter()
    with daemon.client(timeout=60) as client:
        while time.perf_counter() - started < timeout:
            index = client.call("status")["index"]
            busy = any(j["state"] in ("queued", "running") for j in client.call("jobs")["jobs"])
            if index.get("damage") is None and not index.get("rebuilding") and not busy:
                return time.perf_counter() - started
            time.sleep(0.1)
    raise RuntimeError("the index did not heal in time")


def index_file(state: Path, extension: str) -> Path:
    return max((state / "index").glob(f"*{extension}"), key=lambda p: p.stat().st_size)


def vector_damage(tmp: Path, rng: np.random.Generator) -> str:
    store = VectorStore(tmp / "vectors", "bench", 384)
    rows = rng.standard_normal((2200, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    keys = [f"{i:032x}" for i in range(2200)]
    store.add(keys[:2000], rows[:2000])
    store.save()
    store.add(keys[2000:], rows[2000:])
    store.save()  # two segments
    big = max(store.directory.glob("seg-*.npy"), key=lambda p: p.stat().st_size)
    data = bytearray(big.read_bytes())
    header = data.index(b"\n") + 1
    data[header:] = os.urandom(len(data) - header)  # the rows garbled, the .npy header intact
    big.write_bytes(bytes(data))
    again = VectorStore(tmp / "vectors", "bench", 384)
    scores = np.array([s for q in rows[:50] for _, s in again.search(q, 10)])
    return (
        f"{len(keys) - len(again)} of {len(keys)} rows dropped with their segment (to be embedded again); "
        f"non-finite scores served: {int(np.count_nonzero(~np.isfinite(scores)))}, top score {scores.max():.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=300, help="plain files in the generated repository")
    parser.add_argument("--fuzz", type=int, default=2000, help="random-bytes connections (about)")
    parser.add_argument("--connections", type=int, default=500, help="idle and trickling connections held open")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.connections + 256)), hard))
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="codeweir-faults-"))
    repo = make_repo(work / "repo", args.files, rng)
    victim = work / "victim"
    shutil.copytree(repo, victim, symlinks=True, ignore=shutil.ignore_patterns("*.fifo"))
    print(
        f"repository: {args.files} plain files, {len(HOSTILE_NAMES)} hostile names, {len(HOSTILE_CONTENTS)} hostile contents, a FIFO, a symlink out"
    )

    fresh_daemon = Daemon({"main": repo})
    fresh_daemon.start()
    fresh_daemon.wait_indexed()
    fresh_daemon.stop()
    fresh = index_sets(fresh_daemon.tmp / "state", "main")
    print(f"fresh index: {len(fresh[0])} files, {len(fresh[1])} chunks, {fresh[2]} commits")

    limits = "[limits]\ncommit_every_files = 1\nwrites_channel = 1"  # many commits: a kill lands mid-sync
    daemon = Daemon({"main": repo, "victim": victim}, extra=limits)
    state = daemon.tmp / "state"
    watch = Watch(daemon)
    rows = []

    daemon.start()
    with watch.status_polled():
        daemon.wait_indexed()
    watch.check_alive("first sync")
    rows.append(("first sync of the hostile repositories", watch.summary(), ""))

    with watch.status_polled():
        outcome = fuzz(daemon, watch, args.fuzz, rng)
    rows.append(("fuzz: " + outcome, watch.summary(), ""))

    with watch.status_polled():
        with Flood(daemon.socket, args.connections) as flood:
            time.sleep(3)  # the flood fills every slot and keeps trickling
            times = good_client_times(daemon.socket, 20)
            reopened = flood.reopened
    watch.check_alive("flood")
    rows.append(
        (
            f"flood: {args.connections} idle/trickling connections held open ({reopened} reopened after the daemon closed them); "
            f"a good client connects and is answered in max {max(times) * 1000:.0f} ms, p50 {np.median(times) * 1000:.0f} ms",
            watch.summary(),
            "",
        )
    )

    # SIGKILL in the middle of a full sync, then a restart.
    with watch.status_polled():
        with daemon.client() as client:
            client.call("sync", {"repo": "main", "full": True})
            while not any(j["state"] == "running" and j["repo"] == "main" for j in client.call("jobs")["jobs"]):
                time.sleep(0.01)
            time.sleep(0.5)
        with watch.restarting():
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait()
            watch.keep_log()
            daemon.start()
        daemon.wait_indexed()
    watch.check_alive("after SIGKILL")
    daemon.stop()
    watch.keep_log()
    rows.append(("SIGKILL mid-sync, restart", watch.summary(), same_index(state, "main", fresh)))

    # The victim repository deleted while it syncs, then restored.
    daemon.start()
    with watch.status_polled():
        with daemon.client() as client:
            [job] = client.call("sync", {"repo": "victim", "full": True})["jobs"]
            while client.call("status")["repos"][1]["files_indexed"] == 0 or not any(
                j["id"] == job["id"] and j["state"] == "running" for j in client.call("jobs")["jobs"]
            ):
                time.sleep(0.01)
            moved = work / "victim-moved"
            shutil.move(victim, moved)
            client.call("wait", {"repo": "victim", "timeout": 120}, timeout=300)
            ended = next(j for j in client.call("jobs")["jobs"] if j["id"] == job["id"])
            error = client.call("status")["repos"][1]["error"]
            shutil.move(moved, victim)  # restored: the next sync (its retry after the backoff) completes
            again = client.call("sync", {"repo": "victim", "wait": True}, timeout=300)["jobs"][0]
    watch.check_alive("victim deleted")
    daemon.stop()
    watch.keep_log()
    victim_sets = index_sets(state, "victim")
    same = "equal" if victim_sets == fresh else "DIFFERENT"
    rows.append(
        (
            f"victim deleted mid-sync: job {ended['state']} ({(error or '')[:60]}...); restored: job {again['state']}",
            watch.summary(),
            f"victim {same} to main's fresh index",
        )
    )

    # Index files damaged at rest, then a restart; a garbled block found while serving.
    for name, damage in (
        ("truncated .store", lambda: (p := index_file(state, ".store")).write_bytes(p.read_bytes()[: p.stat().st_size // 2])),
        ("deleted .term", lambda: index_file(state, ".term").unlink()),
        ("garbled .idx block (opens; found by the checksum scan)", lambda: _garble(index_file(state, ".idx"))),
    ):
        damage()
        daemon.start()
        with watch.status_polled():
            took = wait_healed(daemon)
        watch.check_alive(name)
        daemon.stop()
        watch.keep_log()
        rows.append((f"index damage: {name}; healed in {took:.1f} s", watch.summary(), same_index(state, "main", fresh)))

    rows.append(("vector segment damage: " + vector_damage(work, np.random.default_rng(args.seed)), "", ""))
    log = watch.log
    print()
    for what, latency, index in rows:
        print(f"- {what}")
        if latency:
            print(f"    {latency}")
        if index:
            print(f"    index after recovery: {index}")
    print()
    print(f"daemon deaths: {watch.deaths} (goal 0)")
    print(f"internal errors logged: {log.count('internal error')}, tracebacks logged: {log.count('Traceback')}")
    shutil.rmtree(work, ignore_errors=True)


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 256] = os.urandom(len(data[middle : middle + 256]))
    path.write_bytes(bytes(data))


if __name__ == "__main__":
    main()
