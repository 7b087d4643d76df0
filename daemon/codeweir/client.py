"""A small synchronous client for the daemon's control socket, for the CLI and scripts.

Plain blocking sockets, no trio: a git hook or a cron job pays only for the import of this
module and the protocol's encoder.
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from codeweir import protocol
from codeweir.errors import DaemonError, DaemonUnreachable

HOW_TO_START = "start it with `codeweir daemon` or `./dev run`, or `systemctl --user start codeweir`"
RECEIVE_BYTES = 65536
_DEFAULT = object()  # "the client's own timeout", where None means "wait as long as it takes"


@attrs.frozen
class Notification:
    method: str
    params: Any


@attrs.frozen
class Response:
    """The final answer to a streamed request."""

    result: Any


# How long a connection is tried again while the daemon's accept queue is full (EAGAIN).
CONNECT_PATIENCE_S = 5.0


class Client:
    """One connection, opened on first use and reopened after a failure."""

    def __init__(self, path: Path | str, timeout: float | None = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._next_id = 1

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._buffer = b""

    def call(self, method: str, params: Any = None, *, timeout: Any = _DEFAULT) -> Any:
        """The result of one request; notifications sent meanwhile are dropped."""
        for item in self.stream(method, params, timeout=timeout):
            if isinstance(item, Response):
                return item.result
        raise AssertionError("stream ended without a response")  # stream always ends with one

    def stream(self, method: str, params: Any = None, *, timeout: Any = _DEFAULT) -> Iterator[Notification | Response]:
        """The notifications the daemon sends while it works on the request, then its `Response`.

        `timeout` bounds each wait for a message, not the whole request.
        """
        request_id = self._next_id
        self._next_id += 1
        sock = self._connect()
        sock.settimeout(self.timeout if timeout is _DEFAULT else timeout)
        try:
            self._send(sock, protocol.request(request_id, method, params))
            while True:
                message = self._receive(sock)
                if "id" not in message and isinstance(message.get("method"), str):
                    yield Notification(message["method"], message.get("params"))
                elif message.get("id") in (request_id, None):  # None: a refusal before any request
                    if "error" in message:
                        raise _daemon_error(message["error"])
                    break
        except BaseException:
            # After a failure or a stream abandoned midway the connection's state is unknown.
            self.close()
            raise
        yield Response(message.get("result"))

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            if not _closed_by_daemon(self._sock):
                return self._sock
            self.close()  # closed while idle (to free its slot for another client): connect again
        # A full accept queue (a flood of connections the daemon is shedding) refuses at once
        # with EAGAIN: a moment later there is room again.
        patience = time.monotonic() + min(self.timeout or CONNECT_PATIENCE_S, CONNECT_PATIENCE_S)
        pause = 0.002
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                self._open(sock)
            except BlockingIOError:
                sock.close()
                if time.monotonic() >= patience:
                    raise DaemonUnreachable(f"cannot connect to {self.path}: its connection queue stays full") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
                continue
            self._sock = sock
            return sock

    def _open(self, sock: socket.socket) -> None:
        """Connect `sock`; BlockingIOError when the daemon's accept queue is full, else the
        failure in a person's words (the socket closed)."""
        try:
            sock.connect(os.fsencode(self.path))
        except BlockingIOError:
            raise
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise DaemonUnreachable(
                f"the codeweir daemon is not running (nothing listens on {self.path}); {HOW_TO_START}"
            ) from None
        except PermissionError:
            sock.close()
            raise DaemonUnreachable(
                f"cannot connect to {self.path}: permission denied "
                "(the daemon lets in its own user, root and the group in server.group)"
            ) from None
        except OSError as exc:
            sock.close()
            raise DaemonUnreachable(f"cannot connect to {self.path}: {exc.strerror or exc}") from None

    def _send(self, sock: socket.socket, data: bytes) -> None:
        try:
            sock.sendall(data)
        except TimeoutError:
            raise DaemonUnreachable(f"the daemon at {self.path} does not read its socket") from None
        except OSError as exc:
            # A daemon that refuses a connection (busy) says why in a line, then closes: the
            # request may be sent after the close.
            try:
                message = self._receive(sock)
            except (DaemonUnreachable, DaemonError):
                message = {}
            if isinstance(message.get("error"), dict):
                raise _daemon_error(message["error"]) from None
            raise DaemonUnreachable(f"the daemon closed the connection ({exc.strerror or exc})") from None

    def _receive(self, sock: socket.socket) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            try:
                data = sock.recv(RECEIVE_BYTES)
            except TimeoutError:
                raise DaemonUnreachable(f"the daemon at {self.path} did not answer within {sock.gettimeout():g} s") from None
            except OSError as exc:
                raise DaemonUnreachable(f"the daemon closed the connection ({exc.strerror or exc})") from None
            if not data:
                raise DaemonUnreachable("the daemon closed the connection before it answered")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            raise DaemonError(protocol.PARSE_ERROR, "the daemon sent a line that is not JSON") from None
        if not isinstance(message, dict):
            raise DaemonError(protocol.INVALID_REQUEST, "the daemon sent a message that is not an object")
        return message


def _closed_by_daemon(sock: socket.socket) -> bool:
    """Whether the daemon has closed a connection kept between requests: it sends nothing
    unasked but the line that says why it closes one."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)  # a line or the end of the stream


def _daemon_error(body: Any) -> DaemonError:
    if isinstance(body, dict):
        return DaemonError(body.get("code", protocol.INTERNAL_ERROR), str(body.get("message", "")), body.get("data"))
    return DaemonError(protocol.INTERNAL_ERROR, f"malformed error from the daemon: {body!r}")
