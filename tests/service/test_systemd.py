"""sd_notify, socket activation and the watchdog, against real sockets and a real subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from codeweir.errors import ConfigError
from codeweir.service.systemd import listen_fds, notify, watchdog, watchdog_interval


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose socket paths fit in sun_path's 108 bytes (pytest's tmp_path may not)."""
    with tempfile.TemporaryDirectory(prefix="cw-") as path:
        yield Path(path)


def datagram_socket(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    return sock


@pytest.fixture
def notify_socket(short_dir: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(short_dir / "notify.sock")
    with datagram_socket(path) as sock:
        yield path, sock


def received(sock: socket.socket) -> list[bytes]:
    datagrams = []
    while True:
        try:
            datagrams.append(sock.recv(4096))
        except BlockingIOError:
            return datagrams


def test_notify_without_notify_socket_does_nothing() -> None:
    assert notify("READY=1", env={}) is False


def test_notify_sends_all_states_in_one_datagram(notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    assert notify("READY=1", "STATUS=indexing 3 repositories", env={"NOTIFY_SOCKET": path}) is True
    assert received(sock) == [b"READY=1\nSTATUS=indexing 3 repositories"]


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"codeweir-test-{uuid.uuid4().hex}"
    with datagram_socket(b"\0" + name.encode()) as sock:
        assert notify("STOPPING=1", env={"NOTIFY_SOCKET": "@" + name}) is True
        assert received(sock) == [b"STOPPING=1"]


def test_notify_folds_newlines_in_a_value_so_they_cannot_start_an_assignment(
    notify_socket: tuple[str, socket.socket],
) -> None:
    path, sock = notify_socket
    notify("STATUS=sync failed:\nREADY=1", env={"NOTIFY_SOCKET": path})
    assert received(sock) == [b"STATUS=sync failed: READY=1"]


@given(values=st.lists(st.text(), min_size=1, max_size=4))
def test_notify_sends_exactly_one_line_per_state(values: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="cw-") as tmp:
        path = os.path.join(tmp, "n.sock")
        with datagram_socket(path) as sock:
            notify(*(f"STATUS={v}" for v in values), env={"NOTIFY_SOCKET": path})
            [datagram] = received(sock)
    lines = datagram.decode().split("\n")
    assert len(lines) == len(values)
    assert all(line.startswith("STATUS=") for line in lines)


def test_notify_rejects_a_state_without_a_key() -> None:
    with pytest.raises(ValueError, match="KEY=VALUE, got 'READY'"):
        notify("READY", env={"NOTIFY_SOCKET": "/run/systemd/notify"})


def test_notify_rejects_a_relative_notify_socket() -> None:
    with pytest.raises(ConfigError, match="NOTIFY_SOCKET: must be an absolute path"):
        notify("READY=1", env={"NOTIFY_SOCKET": "run/notify"})


def test_notify_to_a_missing_socket_reports_false_and_logs(short_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = str(short_dir / "gone.sock")
    assert notify("READY=1", env={"NOTIFY_SOCKET": path}) is False
    assert f"NOTIFY_SOCKET={path}" in caplog.text


def test_listen_fds_without_listen_pid_is_empty() -> None:
    assert listen_fds({}) == []


def test_listen_fds_for_another_process_is_empty_and_unsets_the_variables() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "codeweir.socket"}
    assert listen_fds(env) == []
    assert env == {}


def test_listen_fds_keeps_the_variables_when_asked() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    listen_fds(env, unset=False)
    assert env == {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LISTEN_PID": "me"}, "LISTEN_PID: must be an integer, got 'me'"),
        ({"LISTEN_FDS": "one"}, "LISTEN_FDS: must be an integer, got 'one'"),
        ({"LISTEN_FDS": "-1"}, "LISTEN_FDS: must not be negative"),
        ({"LISTEN_FDS": "1", "LISTEN_FDNAMES": "a:b"}, "LISTEN_FDNAMES: 2 names for LISTEN_FDS=1"),
    ],
)
def test_listen_fds_names_the_bad_variable(env: dict[str, str], message: str) -> None:
    env = {"LISTEN_PID": str(os.getpid()), **env}
    with pytest.raises(ConfigError, match=message):
        listen_fds(env)


# Run in the child, as the daemon would: take the socket systemd passed, report, serve once.
_ACTIVATED_CHILD = """
import json, os, socket, sys
from codeweir.service.systemd import listen_fds
sockets = listen_fds(name=sys.argv[1])
print(json.dumps({
    "count": len(sockets),
    "fds": [s.fileno() for s in sockets],
    "stream": [s.type == socket.SOCK_STREAM for s in sockets],
    "left": [v for v in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES") if v in os.environ],
}), flush=True)
if sockets:
    conn, _ = sockets[0].accept()
    conn.sendall(b"served by %d" % os.getpid())
    conn.close()
"""


def run_activated(listener: socket.socket, name: str) -> subprocess.Popen[str]:
    """Start a child the way systemd does: the socket on fd 3, LISTEN_PID naming the child."""

    def listener_to_fd_3() -> None:
        os.dup2(listener.fileno(), 3)
        os.set_inheritable(3, True)

    env = {**os.environ, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "codeweir.socket"}
    # The shell learns its own pid ($$) and keeps it across exec, as the child's LISTEN_PID.
    return subprocess.Popen(
        ["sh", "-c", 'LISTEN_PID=$$ exec "$0" -c "$1" "$2"', sys.executable, _ACTIVATED_CHILD, name],
        env=env,
        preexec_fn=listener_to_fd_3,
        close_fds=False,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_listen_fds_takes_over_a_listening_socket_passed_as_fd_3(short_dir: Path) -> None:
    path = str(short_dir / "codeweir.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen()
        child = run_activated(listener, "codeweir.socket")
    # Only the child holds the listener now: whoever answers this connection is the child.
    with child, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        report = json.loads(child.stdout.readline())
        client.connect(path)
        assert client.recv(100) == b"served by %d" % child.pid
        assert child.wait() == 0
    assert report == {"count": 1, "fds": [3], "stream": [True], "left": []}


def test_listen_fds_by_name_skips_sockets_with_other_names(short_dir: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(short_dir / "other.sock"))
        listener.listen()
        child = run_activated(listener, "other-name")
    with child:
        report = json.loads(child.stdout.readline())
        assert child.wait() == 0
    assert report == {"count": 0, "fds": [], "stream": [], "left": []}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "{pid}"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "{other}"}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process(env: dict[str, str], expected: float | None) -> None:
    env = {k: v.format(pid=os.getpid(), other=os.getpid() + 1) for k, v in env.items()}
    assert watchdog_interval(env) == expected


@pytest.mark.parametrize(
    ("usec", "message"),
    [("soon", "WATCHDOG_USEC: must be an integer, got 'soon'"), ("0", "WATCHDOG_USEC: must be greater than 0")],
)
def test_watchdog_interval_names_a_bad_watchdog_usec(usec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        watchdog_interval({"WATCHDOG_USEC": usec})


async def test_watchdog_pings_once_every_interval(
    notify_socket: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.abc.Clock
) -> None:
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    receiver = trio.socket.from_stdlib_socket(sock)
    pings: list[tuple[float, bytes]] = []

    async def record() -> None:
        while True:
            data = await receiver.recv(100)
            pings.append((trio.current_time(), data))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(record)
        await nursery.start(watchdog, 15.0)
        await trio.sleep(4 * 15.0 + 7.5)
        nursery.cancel_scope.cancel()
    assert [data for _, data in pings] == [b"WATCHDOG=1"] * 4
    assert [when - start for when, _ in pings] == pytest.approx([15.0, 30.0, 45.0, 60.0])


async def test_watchdog_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="watchdog interval must be greater than 0, got 0"):
        await watchdog(0)
