"""How the tools call the daemon: its requests through codeweir.client, and what a refusal becomes.

What the daemon refuses (a repository not configured, a path outside one) and an unreachable
daemon are ToolFailed, which the tool answers as a tool error (`is_error`) in the daemon's words.
"""

from __future__ import annotations

from typing import Any, Protocol

from codeweir.errors import DaemonError, DaemonUnreachable


class Daemon(Protocol):
    """The daemon as the tools call it (mcp/server.py's SocketDaemon; a fake in tests)."""

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any: ...


class ToolFailed(Exception):
    """The daemon refused the request, or cannot be reached: the tool answers with is_error."""


async def call_daemon(daemon: Daemon, method: str, params: dict[str, Any]) -> Any:
    """The daemon's result for `method`, parameters that are None left out; ToolFailed."""
    try:
        return await daemon.call(method, {k: v for k, v in params.items() if v is not None})
    except DaemonUnreachable as exc:
        raise ToolFailed(f"codeweir: {exc}") from None
    except DaemonError as exc:
        raise ToolFailed(f"codeweir: {exc.message}") from None


def quoted_term(text: str) -> str:
    """`text` as one quoted term of the daemon's query language."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
