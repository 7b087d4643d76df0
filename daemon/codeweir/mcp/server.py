"""`codeweir mcp`: a stdio MCP server in front of the daemon's socket, on the official `mcp` SDK.

A thin process: each tool call is one or two requests on the daemon's socket through
codeweir.client (a blocking client, run in a thread that a cancelled call abandons); the tools
are listed and called through mcp/tools.py, whose answers fit their budgets. The SDK's low-level
`Server` speaks the protocol; it is anyio code, and runs here on trio.

The stdio transport is codeweir's own, on trio's non-blocking file descriptor streams rather than
the SDK's reads in a worker thread: a read blocked in a thread would keep the process alive
after SIGTERM until the client wrote again. While it serves, fd 0 is /dev/null and fd 1 is
stderr, so nothing printed by accident corrupts the protocol. A line longer than
MAX_MESSAGE_BYTES is dropped unread and answered with an error naming its id when it has one.

The process ends at once and cleanly (exit status 0, no traceback) when stdin closes, on
SIGTERM and SIGHUP, and on Ctrl-C (SIGINT, exit status 130).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import signal
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import trio
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from codeweir.client import Client
from codeweir.mcp.arguments import ArgumentError
from codeweir.mcp.tools import TOOLS, call_tool

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1 << 20  # one JSON-RPC line from the client
RECEIVE_BYTES = 65536
CALL_TIMEOUT = 30.0  # seconds a daemon request may take before the tool says it did not answer
INSTRUCTIONS = (
    "codeweir searches the local git repositories it indexes. Find code with search_code (words, literals, "
    "regexes, meaning), definitions with find_symbol, uses with find_references, then read exact lines with "
    "read_code. search_history searches commits. Every answer fits budget_tokens; a cut one gives next_cursor."
)
_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.){0,200}")')


class SocketDaemon:
    """The daemon as tools call it: one connection per request, in a thread."""

    def __init__(self, socket: Path, timeout: float = CALL_TIMEOUT) -> None:
        self.socket = socket
        self.timeout = timeout

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        def blocking() -> Any:
            with Client(self.socket, timeout=self.timeout) as client:
                return client.call(method, params)

        return await trio.to_thread.run_sync(blocking, abandon_on_cancel=True)


def make_server(daemon: SocketDaemon) -> Server:
    tools = [
        types.Tool(
            name=tool.name,
            title=tool.title,
            description=tool.description,
            input_schema=tool.input_schema,
            output_schema=tool.output_schema,
            annotations=types.ToolAnnotations(
                read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
            ),
        )
        for tool in TOOLS
    ]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            answer = await call_tool(daemon, params.name, params.arguments)
        except ArgumentError as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        content: list[types.ContentBlock] = [types.TextContent(text=answer.text)]
        if answer.is_error:
            return types.CallToolResult(content=content, is_error=True)
        return types.CallToolResult(content=content, structured_content=answer.structured)

    return Server(
        "codeweir",
        version=version("codeweir"),
        title="codeweir code search",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=on_call_tool,
    )


async def serve(socket: Path, stdin_fd: int = 0, stdout_fd: int = 1) -> str:
    """Serve MCP on `stdin_fd` and `stdout_fd` until stdin closes or a signal comes; returns why
    it ended ("eof", or the signal's name)."""
    server = make_server(SocketDaemon(socket))
    ended = "eof"
    with _claimed(stdin_fd, stdout_fd) as (reading, writing):
        stdin, stdout = trio.lowlevel.FdStream(reading), trio.lowlevel.FdStream(writing)
        to_server, from_client = anyio.create_memory_object_stream[SessionMessage | Exception](16)
        to_client, from_server = anyio.create_memory_object_stream[SessionMessage](16)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    nonlocal ended
                    async for signum in signals:
                        ended = signal.Signals(signum).name
                        nursery.cancel_scope.cancel()
                        return

                async def run_server() -> None:
                    try:
                        await server.run(from_client, to_client, server.create_initialization_options())
                    finally:
                        nursery.cancel_scope.cancel()

                nursery.start_soon(stop_on_signal)
                nursery.start_soon(_read_messages, stdin, to_server, to_client.clone())
                nursery.start_soon(_write_messages, from_server, stdout)
                nursery.start_soon(run_server)
        with contextlib.suppress(OSError):
            await stdin.aclose()
            await stdout.aclose()
    return ended


@contextlib.contextmanager
def _claimed(stdin_fd: int, stdout_fd: int):
    """Private duplicates of the protocol's descriptors; fd 0 reads /dev/null and fd 1 writes to
    stderr meanwhile. The descriptors' flags (FdStream makes them non-blocking) are restored."""
    reading, writing = os.dup(stdin_fd), os.dup(stdout_fd)
    flags = {fd: fcntl.fcntl(fd, fcntl.F_GETFL) for fd in (reading, writing)}
    saved = (os.dup(0), os.dup(1)) if (stdin_fd, stdout_fd) == (0, 1) else None
    if saved is not None:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(2, 1)
    try:
        yield reading, writing
    finally:
        for fd, flag in flags.items():
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, flag)
        if saved is not None:
            os.dup2(saved[0], 0)
            os.dup2(saved[1], 1)
            for fd in saved:
                os.close(fd)


async def _read_messages(
    stdin: trio.lowlevel.FdStream,
    to_server: anyio.abc.ObjectSendStream[SessionMessage | Exception],
    to_client: anyio.abc.ObjectSendStream[SessionMessage],
) -> None:
    """Lines from the client, parsed, to the server; at end of input the server's stream closes."""
    buffer = bytearray()
    discarding = False
    async with to_server, to_client:
        while True:
            try:
                data = await stdin.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                if buffer.strip() and not discarding:
                    await _deliver(bytes(buffer), to_server)
                return
            start = 0
            while (newline := data.find(b"\n", start)) >= 0:
                piece = data[start:newline]
                start = newline + 1
                if discarding:
                    discarding = False
                    continue
                buffer += piece
                line, buffer = bytes(buffer), bytearray()
                if len(line) > MAX_MESSAGE_BYTES:
                    await _refuse(line, to_client)
                elif line.strip():
                    await _deliver(line, to_server)
            if not discarding:
                buffer += data[start:]
                if len(buffer) > MAX_MESSAGE_BYTES:
                    await _refuse(bytes(buffer[:4096]), to_client)
                    buffer.clear()
                    discarding = True


async def _deliver(line: bytes, to_server: anyio.abc.ObjectSendStream[SessionMessage | Exception]) -> None:
    try:
        message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except Exception as exc:  # pydantic's ValidationError: the SDK answers it
        await to_server.send(exc)
        return
    await to_server.send(SessionMessage(message))


async def _refuse(head: bytes, to_client: anyio.abc.ObjectSendStream[SessionMessage]) -> None:
    """Answer a message too large to read with an error for its id (null when it has none in view)."""
    match = _ID.search(head[:4096])
    request_id: Any = None
    if match:
        raw = match.group(1)
        request_id = int(raw) if raw[:1] != b'"' else raw[1:-1].decode("utf-8", "replace")
    log.warning("refused a message of over %d bytes", MAX_MESSAGE_BYTES)
    error = types.JSONRPCError(
        jsonrpc="2.0",
        id=request_id,
        error=types.ErrorData(
            code=types.INVALID_REQUEST, message=f"message too large: the limit is {MAX_MESSAGE_BYTES} bytes a line"
        ),
    )
    await to_client.send(SessionMessage(error))


async def _write_messages(from_server: anyio.abc.ObjectReceiveStream[SessionMessage], stdout: trio.lowlevel.FdStream) -> None:
    async with from_server:
        async for message in from_server:
            data = message.message.model_dump_json(by_alias=True, exclude_unset=True).encode("utf-8", "replace") + b"\n"
            try:
                await stdout.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return  # the client is gone; the end of stdin ends the rest


def main(socket: Path) -> int:
    """Serve until stdin closes (0), SIGTERM or SIGHUP (0), or Ctrl-C (130)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="codeweir mcp: %(message)s")
    ended = trio.run(serve, socket)
    return 130 if ended == "SIGINT" else 0
