"""`codeweir daemon` as a real subprocess: sd_notify, socket activation, signals, reload on
SIGHUP, cron-style syncs and git hooks, over real sockets.

Nothing here sleeps to wait: each step waits for a notification datagram (the daemon's
$NOTIFY_SOCKET is a socket the test reads) or for the process to exit, with a deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codeweir.client import Client
from codeweir.index.store import Store
from codeweir.index.vectors import VectorStore
from tests.gitrepo import GitRepo, make_repo
from tests.index_reading import chunks_of

DEADLINE = 60.0  # seconds; generous for a loaded CI machine, never reached when things work
FILES = 300
# A commit for every file or two: a sync of FILES outlasts a signal's way to the daemon by over a
# hundred commits, however fast the machine parses.
ONE_FILE_A_COMMIT = "commit_every_files = 1\nwrites_channel = 1"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose socket paths fit in sun_path's 108 bytes (pytest's tmp_path may not)."""
    with tempfile.TemporaryDirectory(prefix="cw-") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def big_repo(tmp_path_factory) -> GitRepo:
    """FILES small Python files: a sync long enough to be signalled in the middle of."""
    files = {
        f"pkg{i // 30}/mod{i}.py": "".join(f"def func_{i}_{j}(x):\n    return x + {j}\n\n\n" for j in range(20))
        for i in range(FILES)
    }
    return make_repo(tmp_path_factory.mktemp("big") / "repo", files)


class Notifications:
    """The daemon's $NOTIFY_SOCKET: a datagram socket this test reads."""

    def __init__(self, path: Path, alive: Callable[[], bool]) -> None:
        self.path = path
        self.alive = alive
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.lines: list[str] = []  # every state line received, in order

    def expect(self, prefix: str, *, where: Callable[[str], bool] = lambda line: True) -> str:
        """The next state line that starts with `prefix` (and satisfies `where`); earlier ones are passed over."""
        deadline = time.monotonic() + DEADLINE
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {prefix!r} notification within {DEADLINE} s; got {self.lines}")
            if not self.alive():
                raise AssertionError(f"the daemon exited before a {prefix!r} notification; got {self.lines}")
            # A bounded wait, so that a daemon that died is noticed.
            self.sock.settimeout(min(remaining, 1.0))
            try:
                datagram = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            for line in datagram.split("\n"):
                self.lines.append(line)
                if line.startswith(prefix) and where(line):
                    return line

    def close(self) -> None:
        self.sock.close()


class DaemonProcess:
    """One `codeweir daemon` subprocess with its notifications and log."""

    def __init__(self, home: Path, config: Path, *, argv: list[str] | None = None, **popen) -> None:
        self.config = config
        self.log = home / f"daemon-{time.monotonic_ns()}.log"
        self.notifications = Notifications(home / f"notify-{time.monotonic_ns() % 10**6}.sock", lambda: self.proc.poll() is None)
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notifications.path)}
        command = argv or [sys.executable, "-m", "codeweir.cli.main", "daemon", "--config", str(config)]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, **popen)

    def expect(self, prefix: str, **kwargs) -> str:
        try:
            return self.notifications.expect(prefix, **kwargs)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ndaemon log:\n{self.log_text()[-3000:]}") from None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def exit_code(self) -> int:
        try:
            return self.proc.wait(timeout=DEADLINE)
        finally:
            self.notifications.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start(short_dir) -> Iterator[Callable[..., DaemonProcess]]:
    """Starts daemons; any still running at the end of the test is killed."""
    started: list[DaemonProcess] = []

    def start(config: Path, **kwargs) -> DaemonProcess:
        daemon = DaemonProcess(short_dir, config, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        daemon.notifications.close()


def write_config(
    path: Path, home: Path, repos: dict[str, str], *, extra: str = "", limits: str = "commit_every_files = 20"
) -> Path:
    """A daemon config: state in `home`, socket `home/cw.sock`, `repos` as {name: TOML fields}."""
    lines = [f'state_dir = "{home / "state"}"', f'socket = "{home / "cw.sock"}"']
    for name, fields in repos.items():
        lines += ["[[repository]]", f'name = "{name}"', fields]
    lines += ["[limits]", limits, "[model]", "enabled = false", extra]
    path.write_text("\n".join(lines) + "\n")
    return path


def committed_files(state_dir: Path, repo: str) -> dict[str, int]:
    """path -> chunk count of every file document in the index, each checked against its chunk
    documents: a file and its chunks are committed together or not at all."""
    store = Store(state_dir / "index")
    try:
        searcher = store.searcher()
        query = store.term("doc_kind", "file")
        total = searcher.search(query, limit=1, count=True).count
        files = {}
        for _, address in searcher.search(query, limit=max(total, 1)).hits:
            doc = searcher.doc(address)
            path, count = doc.get_first("path"), doc.get_first("chunk_count")
            assert doc.get_first("status") == "indexed", path
            assert count > 0 and len(chunks_of(store, repo, path)) == count, path
            files[path] = count
        return files
    finally:
        store.close()


def syncing_with_progress(line: str) -> bool:
    """STATUS=syncing REPO: DONE/TOTAL files, with some files already committed."""
    return not line.split(": ")[-1].startswith("0/")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_sync_stops_cleanly_and_a_restart_resumes(signum, big_repo, short_dir, start):
    config = write_config(short_dir / "config.toml", short_dir, {"proj": f'path = "{big_repo.root}"'}, limits=ONE_FILE_A_COMMIT)
    daemon = start(config)
    daemon.expect("READY=1")
    # READY=1 promises a listening socket: the first connection is answered.
    assert Client(short_dir / "cw.sock").call("status")["repos"][0]["name"] == "proj"
    daemon.expect("STATUS=syncing proj: ", where=syncing_with_progress)
    daemon.signal(signum)
    daemon.expect("STOPPING=1")
    assert daemon.exit_code() == 0, daemon.log_text()

    committed = committed_files(short_dir / "state", "proj")
    assert 0 < len(committed) < FILES, "the signal came in the middle of the sync"

    again = start(config)
    again.expect("READY=1")
    summary = again.expect("STATUS=idle")
    assert f"proj completed: {FILES - len(committed)} indexed, 0 deleted, {len(committed)} unchanged" in summary
    [job] = Client(short_dir / "cw.sock").call("jobs")["jobs"]
    assert job["counts"]["unchanged"] == len(committed)
    again.signal(signal.SIGTERM)
    assert again.exit_code() == 0
    assert len(committed_files(short_dir / "state", "proj")) == FILES


def test_a_second_signal_exits_at_once(big_repo, short_dir, start):
    config = write_config(short_dir / "config.toml", short_dir, {"proj": f'path = "{big_repo.root}"'}, limits=ONE_FILE_A_COMMIT)
    daemon = start(config)
    daemon.expect("STATUS=syncing proj: ")
    daemon.signal(signal.SIGTERM)
    daemon.expect("STOPPING=1")
    daemon.signal(signal.SIGINT)
    assert daemon.exit_code() != 0
    assert "second signal: exiting at once" in daemon.log_text()
    committed_files(short_dir / "state", "proj")  # what was committed is whole


def test_a_socket_passed_by_systemd_is_served_and_the_path_is_not_bound(tmp_path, short_dir, start):
    repo = make_repo(tmp_path / "repo", {"main.py": "def main():\n    pass\n"})
    config = write_config(short_dir / "config.toml", short_dir, {"proj": f'path = "{repo.root}"'})
    activated = short_dir / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(activated))
    listener.listen()
    # As systemd does: the socket as fd 3, and LISTEN_PID naming the process that execs the daemon.
    exec_daemon = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3);"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1');"
        "os.execv(sys.executable, [sys.executable, '-m', 'codeweir.cli.main', 'daemon', '--config', sys.argv[2]])"
    )
    argv = [sys.executable, "-c", exec_daemon, str(listener.fileno()), str(config)]
    daemon = start(config, argv=argv, pass_fds=(listener.fileno(),))
    listener.close()
    daemon.expect("READY=1")
    assert Client(activated).call("status")["repos"][0]["name"] == "proj"
    assert not (short_dir / "cw.sock").exists()
    daemon.signal(signal.SIGTERM)
    assert daemon.exit_code() == 0, daemon.log_text()
    assert activated.exists()  # the socket belongs to systemd: it stays for the next activation


def test_sighup_reloads_the_config_and_a_broken_one_is_rejected(tmp_path, short_dir, start):
    first = make_repo(tmp_path / "first", {"a.py": "def alpha():\n    pass\n"})
    second = make_repo(tmp_path / "second", {"b.py": "def beta():\n    pass\n", "c.py": "GAMMA = 1\n"})
    config = short_dir / "config.toml"
    write_config(config, short_dir, {"first": f'path = "{first.root}"'})
    daemon = start(config)
    daemon.expect("READY=1")
    client = Client(short_dir / "cw.sock")

    write_config(config, short_dir, {"first": f'path = "{first.root}"', "second": f'path = "{second.root}"'})
    daemon.signal(signal.SIGHUP)
    daemon.expect("RELOADING=1")
    daemon.expect("READY=1")
    assert [r["name"] for r in client.call("repos")["repos"]] == ["first", "second"]
    assert client.call("wait", {"repo": "second", "timeout": DEADLINE})["done"]
    second_status = next(r for r in client.call("status")["repos"] if r["name"] == "second")
    assert second_status["files_indexed"] == 2

    config.write_text(config.read_text().replace("commit_every_files = 20", "commit_every_files = 'often'"))
    daemon.signal(signal.SIGHUP)
    rejected = daemon.expect("STATUS=reload rejected")
    assert "limits.commit_every_files" in rejected
    assert [r["name"] for r in client.call("repos")["repos"]] == ["first", "second"]
    daemon.signal(signal.SIGTERM)
    assert daemon.exit_code() == 0
    assert "reload rejected" in daemon.log_text() and "limits.commit_every_files" in daemon.log_text()


def cron_sync(short_dir: Path) -> subprocess.CompletedProcess:
    """What a crontab line runs."""
    command = [sys.executable, "-m", "codeweir.cli.main", "sync", "--all", "--quiet", "--socket", str(short_dir / "cw.sock")]
    return subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE)


def test_sync_all_quiet_is_silent_on_success_one_line_on_failure_and_3_without_a_daemon(tmp_path, short_dir, start):
    app = make_repo(tmp_path / "app", {"app.py": "def run():\n    pass\n"})
    lib = make_repo(tmp_path / "lib", {"lib.py": "def helper():\n    pass\n"})
    # lib indexes its branch (polled, not watched): moving it away is seen only by a sync.
    repos = {"app": f'path = "{app.root}"', "lib": f'path = "{lib.root}"\nref = "main"'}
    daemon = start(write_config(short_dir / "config.toml", short_dir, repos))
    daemon.expect("READY=1")

    ok = cron_sync(short_dir)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")

    shutil.move(lib.root, tmp_path / "lib-moved")
    failed = cron_sync(short_dir)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.count("\n") == 1 and "sync of lib failed" in failed.stderr, failed.stderr

    daemon.signal(signal.SIGTERM)
    assert daemon.exit_code() == 0
    unreachable = cron_sync(short_dir)
    assert unreachable.returncode == 3 and unreachable.stdout == "" and unreachable.stderr.count("\n") == 1


def test_hooks_installed_by_the_cli_make_a_commit_reach_the_index(tmp_path, short_dir, start):
    repo = make_repo(tmp_path / "repo", {"a.py": "def first():\n    pass\n"})
    # The branch is polled every 30 s, so the hook is what brings the commit in this soon.
    config = write_config(short_dir / "config.toml", short_dir, {"proj": f'path = "{repo.root}"\nref = "main"'})
    daemon = start(config)
    daemon.expect("READY=1")
    daemon.expect("STATUS=idle")
    installed = subprocess.run(
        [sys.executable, "-m", "codeweir.cli.main", "hooks", "install", "proj", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert installed.returncode == 0, installed.stderr
    assert (repo.root / ".git" / "hooks" / "post-commit").exists()

    repo.write("b.py", "def hooked_function():\n    pass\n")
    repo.commit("add b")
    daemon.expect("STATUS=idle", where=lambda line: "proj completed: 1 indexed" in line)
    hits = Client(short_dir / "cw.sock").call("search", {"query": "hooked_function", "mode": "lexical"})["results"]
    assert [h["path"] for h in hits] == ["b.py"]


def test_a_bad_config_exits_2_naming_the_field(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[limits]\nfiles_in_flight = 0\n')
    result = subprocess.run(
        [sys.executable, "-m", "codeweir.cli.main", "daemon", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 2
    assert "limits.files_in_flight: must be greater than 0" in result.stderr


def test_sigterm_while_the_backlog_is_embedded_stops_cleanly_with_the_vectors_saved(
    big_repo, short_dir, start, default_model_dir
):
    """The model stops between two of its runs: no wait for the backlog (bench/bench_first_hour.py
    measures how long a stop takes on django)."""
    config = short_dir / "config.toml"
    config.write_text(
        "\n".join(
            [
                f'state_dir = "{short_dir / "state"}"',
                f'socket = "{short_dir / "cw.sock"}"',
                "[[repository]]",
                'name = "proj"',
                f'path = "{big_repo.root}"',
                "[limits]",
                ONE_FILE_A_COMMIT,  # a sync that outlasts the model's load by far
                "[model]",
                f'path = "{default_model_dir}"',
            ]
        )
        + "\n"
    )
    daemon = start(config)
    daemon.expect("READY=1")
    daemon.expect("STATUS=idle", where=lambda line: "proj completed: 300 indexed" in line)  # the lexical index
    model = Client(short_dir / "cw.sock").call("status")["model"]
    # 6,000 chunks take a CPU a minute and more: the backlog is still being embedded.
    assert model["state"] == "filling" and model["waiting"] > 0, model
    daemon.signal(signal.SIGTERM)
    daemon.expect("STOPPING=1")
    assert daemon.exit_code() == 0, daemon.log_text()
    log = daemon.log_text()
    assert "embedding stopped" in log and "sync of proj (job j1) completed: 300 indexed" in log

    assert len(committed_files(short_dir / "state", "proj")) == FILES
    saved = VectorStore(short_dir / "state" / "vectors", model["model"], 384)
    # What it had (none, on a slow machine, when the status came before its first batch), and at
    # most what it embedded since.
    assert model["vectors"] <= len(saved) <= model["vectors"] + 1000
