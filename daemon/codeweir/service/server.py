"""The control socket: a trio unix-socket server that runs protocol requests through handlers.

Only the daemon's own user, root and members of `server.group` get in (SO_PEERCRED). Each
connection answers its requests in order, one at a time; requests are limited in size and time,
connections in number and idleness, so a slow, stuck or hostile client holds nothing for long:
a request line must arrive whole within `request_line_seconds` of its first byte, and when every
slot is taken a new client takes the slot of the connection idle the longest (one with no
request in flight: silent, or trickling a line), so idle and slow clients never lock others out.
Only when every connection has a request in flight is a new one refused ("busy").
"""

from __future__ import annotations

import contextlib
import grp
import logging
import math
import os
import pwd
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from codeweir import protocol
from codeweir.config import ServerConfig
from codeweir.errors import Busy, CodeweirError, ConfigError, RequestError

Notify = Callable[[str, Any], Awaitable[None]]
# A method's handler: called with its params already structured into the method's class of
# protocol_params.PARAMS (ServerConnection does it, once, as it parses the request), and a notify.
Handler = Callable[[Any, Notify], Awaitable[Any]]

log = logging.getLogger(__name__)

RECEIVE_BYTES = 65536
LISTEN_BACKLOG = 1024  # the kernel caps it at net.core.somaxconn; a flood waits here, not refused
# A refused or idle peer gets one error line; a peer that does not read it is not waited for.
PARTING_SEND_SECONDS = 1.0
# Connecting to a live listener is immediate; only a full backlog makes the probe wait.
STALE_PROBE_SECONDS = 1.0


@attrs.frozen
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: trio.socket.SocketType) -> PeerCredentials:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return PeerCredentials(*struct.unpack("3i", raw))


@attrs.frozen
class PeerPolicy:
    """Who may use the socket: the daemon's uid, root, and one group (by gid or membership)."""

    uid: int
    group_gid: int | None = None
    # Members whose primary group is another one: the peer's gid alone would miss them.
    member_uids: frozenset[int] = frozenset()

    def allows(self, uid: int, gid: int) -> bool:
        return uid in (self.uid, 0) or (self.group_gid is not None and gid == self.group_gid) or uid in self.member_uids


def peer_policy(group: str) -> PeerPolicy:
    """The policy for the running daemon; user and group lookups happen here, once, not per peer."""
    if not group:
        return PeerPolicy(os.getuid())
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        raise ConfigError(f"server.group: no such group {group!r}") from None
    member_uids = set()
    for name in entry.gr_mem:
        with contextlib.suppress(KeyError):
            member_uids.add(pwd.getpwnam(name).pw_uid)
    return PeerPolicy(os.getuid(), entry.gr_gid, frozenset(member_uids))


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def check_socket_directory(path: Path, mode: int, owner: int, uid: int) -> None:
    """Refuse a directory where another user could replace the socket under us."""
    if owner not in (uid, 0):
        raise CodeweirError(f"{path}: the socket's directory belongs to uid {owner}, not to this user; refusing to use it")
    if owner != uid and mode & stat.S_IWOTH:
        raise CodeweirError(f"{path}: the socket's directory is world-writable; use a private directory")


def _remove_stale_socket(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise CodeweirError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(STALE_PROBE_SECONDS)
    try:
        probe.connect(os.fsencode(path))
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left behind by a daemon that died
        return
    except OSError:
        pass  # a full backlog (timeout, EAGAIN) still means something listens
    finally:
        probe.close()
    raise CodeweirError(f"{path}: a codeweir daemon is already listening on this socket; stop it first")


def bind_unix_socket(path: Path) -> trio.socket.SocketType:
    """A listening socket at `path`, created 0600 in a private directory (made 0700 if missing)."""
    path = Path(path)
    # The umask, not a chmod after bind, sets the modes: no moment where others may connect.
    with _umask(0o077):
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(path.parent)
        except OSError as exc:
            raise CodeweirError(f"{path.parent}: cannot create the socket's directory: {exc.strerror}") from None
        check_socket_directory(path.parent, st.st_mode, st.st_uid, os.getuid())
        _remove_stale_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fsencode(path))
            sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            raise CodeweirError(f"{path}: cannot listen on the control socket: {exc.strerror or exc}") from None
    return trio.socket.from_stdlib_socket(sock)


async def serve_unix(
    listener: Path | str | socket.socket | trio.socket.SocketType,
    handlers: Mapping[str, Handler],
    limits: ServerConfig,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled. `listener` is a path to bind (and remove at exit) or a listening
    socket (systemd socket activation passes one; it is left in place)."""
    server = _Server(handlers, limits, peer_policy(limits.group))
    bound: tuple[Path, int] | None = None
    if isinstance(listener, (str, os.PathLike)):
        sock = bind_unix_socket(Path(listener))
        bound = (Path(listener), os.stat(listener).st_ino)
    elif isinstance(listener, socket.socket):
        sock = trio.socket.from_stdlib_socket(listener)
    else:
        sock = listener
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, server.handle, [trio.SocketListener(sock)])
            task_status.started()
    finally:
        sock.close()
        if bound is not None:
            _unlink_if_ours(*bound)


def _unlink_if_ours(path: Path, inode: int) -> None:
    """Remove the socket file unless another daemon has bound the path since."""
    with contextlib.suppress(FileNotFoundError):
        if os.lstat(path).st_ino == inode:
            os.unlink(path)


@attrs.define
class _Server:
    handlers: Mapping[str, Handler]
    limits: ServerConfig
    policy: PeerPolicy
    # The connections holding a slot, in the order they were admitted.
    connections: dict[_Connection, None] = attrs.Factory(dict)
    full: bool = False  # log a flood once, not once per refused or evicted connection

    def __attrs_post_init__(self) -> None:
        protocol.ServerConnection(self.limits.max_request_bytes, self.handlers)  # checks the method names

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                await self._admit(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.debug("control connection ended: %s", exc)
        except Exception:
            log.exception("control connection failed")

    async def _admit(self, stream: trio.SocketStream) -> None:
        peer = peer_credentials(stream.socket)
        if not self.policy.allows(peer.uid, peer.gid):
            log.warning(
                "refused a control connection from pid %d uid %d gid %d: not allowed",
                peer.pid,
                peer.uid,
                peer.gid,
            )
            message = f"permission denied: uid {peer.uid} may not use this socket (see server.group)"
            await _send_parting_line(stream, protocol.error(None, protocol.PERMISSION_DENIED, message))
            return
        if len(self.connections) >= self.limits.max_connections:
            if not self.full:
                log.warning(
                    "control connections: all %d slots taken (server.max_connections): closing idle ones for new clients",
                    len(self.connections),
                )
                self.full = True
            if not self._evict_one():
                message = (
                    f"busy: too many connections ({self.limits.max_connections}), each with a request in flight; try again later"
                )
                await _send_parting_line(stream, protocol.error(None, protocol.SERVER_ERROR, message))
                return
        else:
            self.full = False
        connection = _Connection(stream, self.handlers, self.limits)
        self.connections[connection] = None
        try:
            await connection.run()
        finally:
            self.connections.pop(connection, None)

    def _evict_one(self) -> bool:
        """Free a slot: the connection idle the longest (no request in flight) is closed. False
        when every connection has a request in flight."""
        idle = [connection for connection in self.connections if connection.evictable]
        if not idle:
            return False
        victim = min(idle, key=lambda connection: connection.idle_since)
        del self.connections[victim]  # its slot is the new client's now; it closes on its own
        victim.evict()
        return True


async def _send_parting_line(stream: trio.SocketStream, data: bytes) -> None:
    with trio.move_on_after(PARTING_SEND_SECONDS), contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(data)


@attrs.frozen
class _TimedOut:
    message: str


class _Connection:
    def __init__(self, stream: trio.SocketStream, handlers: Mapping[str, Handler], limits: ServerConfig) -> None:
        self.stream = stream
        self.handlers = handlers
        self.limits = limits
        self.protocol = protocol.ServerConnection(limits.max_request_bytes, handlers)
        self.send_lock = trio.Lock()
        # Since when the connection has had nothing to do: opened, or its last answer sent.
        self.idle_since = trio.current_time()
        # When the first byte of a request line not yet complete arrived; None between lines.
        self._line_since: float | None = None
        # While it waits for a request (with none in flight), the scope that evict() cancels.
        self._reading: trio.CancelScope | None = None
        self._evicted = False

    @property
    def evictable(self) -> bool:
        return self._reading is not None

    def evict(self) -> None:
        """Close the connection to free its slot; only while it waits for a request."""
        assert self._reading is not None
        self._evicted = True
        self._reading.cancel()

    async def run(self) -> None:
        while True:
            with trio.CancelScope() as self._reading:
                event = await self._next_event()
            self._reading = None
            if self._evicted:
                slots = self.limits.max_connections
                message = f"closed: all {slots} connection slots were taken and this connection was idle the longest"
                await _send_parting_line(self.stream, protocol.error(None, protocol.SERVER_ERROR, message))
                return
            if isinstance(event, _TimedOut):
                await _send_parting_line(self.stream, protocol.error(None, protocol.TIMED_OUT, event.message))
                return
            if event is protocol.CLOSED:
                return
            if isinstance(event, protocol.ProtocolFailure):
                if event.reply:
                    await self._send(event.to_bytes())
                continue
            assert isinstance(event, protocol.Request)  # next_event gave neither a failure nor a Status
            await self._dispatch(event)
            self.idle_since = trio.current_time()

    async def _next_event(self) -> protocol.Event | _TimedOut:
        """The next request; a _TimedOut when none begins within the idle timeout, or a line
        begun does not end within request_line_seconds of its first byte (however it trickles)."""
        limits = self.limits
        while (event := self.protocol.next_event()) is protocol.NEED_DATA:
            idle_deadline = self.idle_since + limits.idle_timeout_seconds
            line_deadline = math.inf if self._line_since is None else self._line_since + limits.request_line_seconds
            with trio.move_on_at(min(idle_deadline, line_deadline)):
                self._receive(await self.stream.receive_some(RECEIVE_BYTES))
                continue
            if line_deadline <= idle_deadline:
                return _TimedOut(
                    f"request timeout: a request line must arrive within {limits.request_line_seconds:g} s of its "
                    "first byte (server.request_line_seconds); closing the connection"
                )
            return _TimedOut(f"idle timeout: no complete request in {limits.idle_timeout_seconds:g} s; closing the connection")
        return event

    def _receive(self, data: bytes) -> None:
        """Hand received bytes to the protocol, noting when an unfinished line began."""
        newline = data.rfind(b"\n")
        if newline >= 0:
            self._line_since = trio.current_time() if newline < len(data) - 1 else None
        elif data and self._line_since is None:
            self._line_since = trio.current_time()
        self.protocol.receive_data(data)

    async def _send(self, data: bytes) -> None:
        """Send, or fail with BrokenResourceError when the peer is gone or does not read."""
        async with self.send_lock:
            with trio.move_on_after(self.limits.request_timeout_seconds):
                await self.stream.send_all(data)
                return
        raise trio.BrokenResourceError("the client stopped reading")

    async def _dispatch(self, request: protocol.Request) -> None:
        with trio.CancelScope() as hangup:

            async def notify(method: str, params: Any) -> None:
                try:
                    await self._send(protocol.notification(method, params))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    hangup.cancel()
                    await trio.lowlevel.checkpoint()  # raises Cancelled into the handler

            async with trio.open_nursery() as nursery:
                if request.long_running:
                    nursery.start_soon(self._watch_hangup, hangup)
                answer = await self._call(request, notify)
                nursery.cancel_scope.cancel()
        if hangup.cancelled_caught:
            raise trio.BrokenResourceError(f"the client left during {request.method}")
        if request.notification:
            return
        await self._send(answer)

    async def _watch_hangup(self, hangup: trio.CancelScope) -> None:
        """Cancel a long-running request when its client closes the connection.

        Only long-running requests are watched: a client that half-closes after sending
        (`nc -N`, socat) must still get the answer to a short one.
        """
        try:
            data = await self.stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            self._receive(data)  # a pipelined request: served after this one
        else:
            hangup.cancel()

    async def _call(self, request: protocol.Request, notify: Notify) -> bytes:
        handler = self.handlers[request.method]
        timeout = self.limits.request_timeout_seconds
        try:
            if request.long_running:
                result = await handler(request.params, notify)
            else:
                with trio.move_on_after(timeout) as deadline:
                    result = await handler(request.params, notify)
                if deadline.cancelled_caught:
                    message = f"request timed out after {timeout:g} s (server.request_timeout_seconds)"
                    return protocol.error(request.id, protocol.TIMED_OUT, message)
            return protocol.response(request.id, result)
        except Exception as exc:
            return _error_answer(request, exc)
        except BaseException as exc:
            # A Rust panic in a library (pyo3's PanicException) ends this request, not the daemon.
            if type(exc).__name__ != "PanicException":
                raise
            return _error_answer(request, RuntimeError(f"a library panicked: {exc}"))


def _error_answer(request: protocol.Request, exc: Exception) -> bytes:
    # A handler's nursery wraps what it raises in a group; one error reads better alone.
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, RequestError):
        code, message = exc.code, str(exc)
    elif isinstance(exc, Busy):
        code, message = protocol.SERVER_ERROR, f"busy: {exc}"
    elif isinstance(exc, CodeweirError):
        code, message = protocol.SERVER_ERROR, str(exc)
    else:
        log.error("internal error in %s", request.method, exc_info=exc)
        code, message = protocol.INTERNAL_ERROR, "internal error"
    if request.notification:
        log.warning("%s (sent as a notification) failed: %s", request.method, message)
    return protocol.error(request.id, code, message)
