"""What the CLI prints is shown on the terminal, never obeyed by it.

Text from the daemon (paths, snippets, symbols, messages, errors) is whatever repositories hold,
control characters included: ESC starts the sequences that set a window's title ("\\x1b]0;...\\x07"),
clear the screen ("\\x1b[2J") or remap keys, and the C1 codes U+0080-U+009F do the same on some
terminals. Printed, each of them but tab and newline is shown as a `\\xHH` escape instead (the
daemon's own way of naming a byte in a path), so an ESC sequence reaches the terminal as plain
text. This module loads nothing: the CLI imports it before it knows whether rich is needed.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

# C0 but tab and newline, DEL, C1.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What json.dumps(..., ensure_ascii=False) leaves raw: DEL and C1 (it escapes C0 itself).
_JSON_RAW = re.compile("[\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every control character but tab and newline shown as a `\\xHH` escape."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text) if _CONTROL.search(text) else text


def json_line(value: Any) -> str:
    """`value` as one line of JSON that holds no control character: the same JSON value, with
    DEL and C1 written as `\\u` escapes."""
    text = json.dumps(value, ensure_ascii=False)
    return _JSON_RAW.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


class PrintableStream:
    """A text stream that writes what it is given through `printable`."""

    def __init__(self, stream: TextIO) -> None:
        self.raw = stream

    def write(self, text: str) -> int:
        self.raw.write(printable(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


@contextlib.contextmanager
def printable_output() -> Iterator[None]:
    """While in it, what is printed to stdout and stderr (print, argparse, tracebacks of ours)
    shows control characters rather than sending them. A rich console writes to the streams
    underneath (`raw_stdout`): it escapes the text it shows itself and sends its own styles."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PrintableStream(sys.stdout), PrintableStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def raw_stdout() -> TextIO:
    """The stream under stdout's PrintableStream, if it has one."""
    stream = sys.stdout
    return stream.raw if isinstance(stream, PrintableStream) else stream
