"""Answers, and how each is made to fit its budget and continued by a cursor.

Every tool answers with an Answer: compact text (what most clients show a model) and structured
content matching the tool's output schema, both held to `budget_tokens` by the estimate in
mcp/budget.py. An answer cut by its budget says so in its text and carries `next_cursor`. A tool's
cursor is bound to the arguments that name its list (its identity): called again with the same
ones and that cursor, the tool continues with the first item the cut answer left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import attrs

from codeweir.mcp.budget import (
    CursorError,
    compact_json,
    decode_cursor,
    encode_cursor,
    fits,
    most_that_fit,
    skip_count,
)

MAX_PAGE = 1000  # the daemon's deepest page (protocol: search limit)


@attrs.frozen
class Answer:
    """A tool's answer: its text, its structured content (None for a tool error), and whether it is one."""

    text: str
    structured: dict[str, Any] | None = None
    is_error: bool = False


def fit_answer(render: Callable[[int], Answer], count: int, budget: int) -> tuple[int, Answer]:
    """The answer with the most items (0..count) that fits the budget."""
    n = most_that_fit(count, lambda n: answer_fits(render(n), budget))
    return n, render(n)


def answer_fits(answer: Answer, budget: int) -> bool:
    return fits(answer.text, answer.structured, budget)


def _fingerprint(arguments: dict[str, Any], *names: str) -> str:
    text = compact_json([arguments.get(name) for name in names])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def resumed_state(arguments: dict[str, Any], tool: str, identity: tuple[str, ...]) -> dict[str, Any]:
    """The state of the tool's cursor argument ({} without one); CursorError when it belongs to
    other arguments."""
    cursor = arguments.get("cursor")
    if not cursor:
        return {}
    state = decode_cursor(cursor, tool)
    if state.get("f") != _fingerprint(arguments, *identity):
        raise CursorError(f"cursor: it continues a {tool} call with other arguments; pass the same ones with it")
    return state


def cursor_for(arguments: dict[str, Any], tool: str, identity: tuple[str, ...], state: dict[str, Any]) -> str:
    """A cursor that continues this call of `tool` at `state`, good only with the same identity arguments."""
    return encode_cursor(tool, {"f": _fingerprint(arguments, *identity), **state})


def paging_text(budget: int, cut: bool, left: int, what: str, cursor: str | None) -> list[str]:
    """The line that says an answer was cut or continues, and how to go on ([] at the end)."""
    if cut:
        return [f'[cut at the {budget}-token budget; {left} more {what} on this page: call again with cursor="{cursor}"]']
    if cursor:
        return [f'[more {what} follow: call again with cursor="{cursor}"]']
    return []


def socket_page(arguments: dict[str, Any], tool: str, identity: tuple[str, ...]) -> tuple[int, str | None]:
    """Where a tool paging through the daemon's pages resumes: how many of the page's items to
    skip, and the daemon's cursor for that page (None for its first)."""
    state = resumed_state(arguments, tool, identity)
    skip = skip_count(state, MAX_PAGE - 1) if state else 0
    socket_cursor = state.get("s") if state else None
    if socket_cursor is not None and not isinstance(socket_cursor, str):
        raise CursorError("cursor: damaged; pass next_cursor exactly as it came")
    return skip, socket_cursor
