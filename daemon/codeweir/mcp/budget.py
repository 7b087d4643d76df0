"""Answers that fit a context window: the token estimate, fitting a list into a budget, and the
MCP tools' cursors.

Tokens are estimated, not counted with a model's tokenizer: ceil(UTF-8 bytes / 4), the usual
rule of thumb for English and code (OpenAI's and Anthropic's tokenizers give about 3 to 4.5 bytes
a token on source code, so a real count runs up to a third over the estimate on dense code).
Both forms of an answer are held to the budget: its text, and its structured content written
as compact JSON, the forms a client may put in front of a model.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

DEFAULT_BUDGET = 4000
MIN_BUDGET = 300
MAX_BUDGET = 100_000
MAX_CURSOR_CHARS = 6000
MAX_NOTE_CHARS = 300
MAX_NOTES = 4


class CursorError(ValueError):
    """A cursor that is not one this tool gave."""


def estimate_tokens(text: str) -> int:
    """The estimated tokens of `text`: its UTF-8 bytes / 4, rounded up."""
    return (len(text.encode("utf-8", "surrogatepass")) + 3) // 4


def compact_json(value: Any) -> str:
    """`value` as the compact JSON a transport sends (no spaces, non-ASCII as it is)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def fits(text: str, structured: Any, budget: int) -> bool:
    return estimate_tokens(text) <= budget and estimate_tokens(compact_json(structured)) <= budget


def most_that_fit(count: int, fit: Callable[[int], bool]) -> int:
    """The largest n in 0..count with fit(n); fit(n) is taken to fail for every n above the
    first that fails (sizes grow with n), except that n == count is tried first on its own (the
    whole list ends without a "more follow" note, which can make it shorter than count - 1)."""
    if count == 0 or fit(count):
        return count
    low, high = 0, count - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fit(middle):
            low = middle
        else:
            high = middle - 1
    return low


def brief_notes(notes: list[str] | tuple[str, ...]) -> list[str]:
    """At most MAX_NOTES notes of at most MAX_NOTE_CHARS each: a note never crowds out results."""
    out = []
    for note in list(notes)[:MAX_NOTES]:
        out.append(note if len(note) <= MAX_NOTE_CHARS else note[: MAX_NOTE_CHARS - 1] + "…")
    return out


def encode_cursor(tool: str, state: dict[str, Any]) -> str:
    body = compact_json({"t": tool, **state})
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, tool: str) -> dict[str, Any]:
    """The state in `cursor`; CursorError unless `tool` gave it."""
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CursorError("cursor: not a cursor codeweir gave; pass next_cursor exactly as it came") from None
    if not isinstance(state, dict) or state.get("t") != tool:
        raise CursorError(f"cursor: not a cursor of {tool}; pass the next_cursor {tool} gave, with the same arguments")
    return state


def skip_count(state: dict[str, Any], high: int) -> int:
    value = state.get("k", 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        raise CursorError("cursor: damaged; pass next_cursor exactly as it came")
    return value
