"""The control socket: a trio unix-socket server that runs protocol requests through handlers.

Only the daemon's own user, root and members of `server.group` get in (SO_PEERCRED). Each
connection answers its requests in order, one at a time; requests are limited in size and time,
connections in number and idleness, so a slow, stuck or hostile client holds nothing for long.
"""

from __future__ import annotations

import contextlib
import grp
import logging
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
# protocol.PARAMS (ServerConnection does it, once, as it parses the request), and a notify.
Handler = Callable[[Any, Notify], Awaitable[Any]]

log = logging.getLogger(__name__)

RECEIVE_BYTES = 65536
LISTEN_BACKLOG = 128
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
    open_connections: int = 0
    refusing: bool = False  # log a flood once, not once per refused connection

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
        if self.open_connections >= self.limits.max_connections:
            if not self.refusing:
                log.warning("refusing control connections: %d open (server.max_connections)", self.open_connections)
                self.refusing = True
            message = f"busy: too many connections ({self.limits.max_connections}); try again later"
            await _send_parting_line(stream, protocol.error(None, protocol.SERVER_ERROR, message))
            return
        self.refusing = False
        self.open_connections += 1
        try:
            await _Connection(stream, self.handlers, self.limits).run()
        finally:
            self.open_connections -= 1


async def _send_parting_line(stream: trio.SocketStream, data: bytes) -> None:
    with trio.move_on_after(PARTING_SEND_SECONDS), contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(data)


class _Connection:
    def __init__(self, stream: trio.SocketStream, handlers: Mapping[str, Handler], limits: ServerConfig) -> None:
        self.stream = stream
        self.handlers = handlers
        self.limits = limits
        self.protocol = protocol.ServerConnection(limits.max_request_bytes, handlers)
        self.send_lock = trio.Lock()

    async def run(self) -> None:
        while True:
            # A client must finish a request within the idle timeout, however slowly it trickles.
            with trio.move_on_after(self.limits.idle_timeout_seconds) as idle:
                event = await self._next_event()
            if idle.cancelled_caught:
                timeout = self.limits.idle_timeout_seconds
                message = f"idle timeout: no complete request in {timeout:g} s; closing the connection"
                await _send_parting_line(self.stream, protocol.error(None, protocol.TIMED_OUT, message))
                return
            if event is protocol.CLOSED:
                return
            if isinstance(event, protocol.ProtocolFailure):
                if event.reply:
                    await self._send(event.to_bytes())
                continue
            await self._dispatch(event)

    async def _next_event(self) -> protocol.Event:
        while (event := self.protocol.next_event()) is protocol.NEED_DATA:
            self.protocol.receive_data(await self.stream.receive_some(RECEIVE_BYTES))
        return event

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
            self.protocol.receive_data(data)  # a pipelined request: served after this one
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
