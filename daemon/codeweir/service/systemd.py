"""systemd integration without libsystemd: sd_notify, socket activation, the watchdog.

The protocols are small and stable (see sd_notify(3), sd_listen_fds(3), sd_watchdog_enabled(3)):
state lines in one datagram to $NOTIFY_SOCKET; inherited sockets from fd 3 when $LISTEN_PID
names this process; a keep-alive due every $WATCHDOG_USEC. Outside systemd every function here
is a no-op, so the daemon runs the same way from a shell.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping

import trio

from codeweir.errors import ConfigError

log = logging.getLogger(__name__)

# The first inherited fd; 0-2 are stdio (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3

Env = MutableMapping[str, str]


def notify(*states: str, env: Env = os.environ) -> bool:
    """Send state lines ("READY=1", "STATUS=...", "STOPPING=1", "WATCHDOG=1") to systemd.

    Returns False, doing nothing, when $NOTIFY_SOCKET is unset (not run by systemd), and False
    with a logged warning when the datagram cannot be sent: a lost notification must not
    take the daemon down.
    """
    path = env.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = _notify_address(path)
    message = "\n".join(_state_line(state) for state in states).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        # Never block the event loop on a full receive queue; systemd drains it promptly.
        sock.setblocking(False)
        try:
            sock.sendto(message, address)
        except OSError as exc:
            log.warning("cannot notify systemd at NOTIFY_SOCKET=%s: %s", path, exc)
            return False
    return True


def _notify_address(path: str) -> str | bytes:
    if path.startswith("@"):  # abstract namespace: a leading NUL instead of "@"
        return b"\0" + path[1:].encode()
    if path.startswith("/"):
        return path
    raise ConfigError(f"NOTIFY_SOCKET: must be an absolute path or start with '@', got {path!r}")


def _state_line(state: str) -> str:
    key, sep, value = state.partition("=")
    if not sep or not key:
        raise ValueError(f"notify state must look like KEY=VALUE, got {state!r}")
    # A newline would start a new assignment (an error text in STATUS=, say): fold it.
    return f"{key}={' '.join(value.splitlines())}"


def listen_fds(env: Env = os.environ, *, unset: bool = True, name: str | None = None) -> list[socket.socket]:
    """The listening sockets systemd passed to this process (socket activation), in fd order.

    Empty when $LISTEN_PID is absent or names another process. With `name`, only the sockets
    whose $LISTEN_FDNAMES entry (FileDescriptorName=, by default the socket unit's name) is
    `name`; the others are closed, since nothing else in this process could claim them.
    With `unset`, the variables are removed so that child processes do not see them.
    """
    try:
        return _inherited_sockets(env, name)
    finally:
        if unset:
            for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
                env.pop(var, None)


def _inherited_sockets(env: Env, name: str | None) -> list[socket.socket]:
    pid = env.get("LISTEN_PID")
    if not pid:
        return []
    if _parse_int("LISTEN_PID", pid) != os.getpid():
        return []
    count = _parse_int("LISTEN_FDS", env.get("LISTEN_FDS", ""))
    if count < 0:
        raise ConfigError(f"LISTEN_FDS: must not be negative, got {count}")
    names = env.get("LISTEN_FDNAMES", "")
    fd_names = names.split(":") if names else ["unknown"] * count
    if len(fd_names) != count:
        raise ConfigError(f"LISTEN_FDNAMES: {len(fd_names)} names for LISTEN_FDS={count} descriptors: {names!r}")
    sockets = []
    for fd, fd_name in zip(range(LISTEN_FDS_START, LISTEN_FDS_START + count), fd_names):
        if name is not None and fd_name != name:
            os.close(fd)
            continue
        os.set_inheritable(fd, False)
        try:
            sockets.append(socket.socket(fileno=fd))
        except OSError as exc:
            raise ConfigError(f"LISTEN_FDS: fd {fd} ({fd_name}) is not a usable socket: {exc}") from None
    return sockets


def watchdog_interval(env: Env = os.environ) -> float | None:
    """Seconds between keep-alives: half of $WATCHDOG_USEC, or None when no watchdog is set.

    $WATCHDOG_PID, when present, must name this process (it is absent under old systemd).
    """
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and _parse_int("WATCHDOG_PID", pid) != os.getpid():
        return None
    value = _parse_int("WATCHDOG_USEC", usec)
    if value <= 0:
        raise ConfigError(f"WATCHDOG_USEC: must be greater than 0, got {value}")
    return value / 2 / 1_000_000


async def watchdog(interval: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Send WATCHDOG=1 every `interval` seconds until cancelled.

    The pings come from the event loop itself, so a loop that is stuck (blocking work where
    it must not be) stops them and systemd restarts the service.
    """
    if interval <= 0:
        raise ValueError(f"watchdog interval must be greater than 0, got {interval!r}")
    task_status.started()
    while True:
        await trio.sleep(interval)
        notify("WATCHDOG=1")


def _parse_int(var: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{var}: must be an integer, got {text!r}") from None
