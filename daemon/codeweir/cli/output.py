"""How a command prints: for people (rich, loaded on first use), as JSON lines, or quietly."""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from rich.console import Console


def print_json(value: Any) -> None:
    """One JSON document on one line, exactly as the daemon sent it (DEL and C1 as \\u escapes)."""
    from codeweir.cli.terminal import json_line

    print(json_line(value), flush=True)


@attrs.frozen
class Output:
    json: bool = False
    quiet: bool = False  # for cron: nothing on success, one line on stderr on failure

    @functools.cached_property
    def console(self) -> Console:
        """Made on first use: --json and --quiet never load rich."""
        from codeweir.cli.render import TerminalConsole
        from codeweir.cli.terminal import raw_stdout

        return TerminalConsole(highlight=False, file=raw_stdout())

    @property
    def for_people(self) -> bool:
        return not (self.json or self.quiet)

    def result(self, value: Any) -> None:
        if self.json and not self.quiet:
            print_json(value)
        elif self.for_people:
            from codeweir.cli.render import print_value

            print_value(self.console, value)

    def say(self, message: str) -> None:
        if self.for_people:
            self.console.print(message, markup=False, soft_wrap=True)

    def note(self, message: str) -> None:
        """Said beside the results; on stderr under --json, which keeps stdout for data."""
        if self.json and not self.quiet:
            print(f"note: {message}", file=sys.stderr, flush=True)
        elif self.for_people:
            self.console.print(f"note: {message}", style="yellow", markup=False, soft_wrap=True)

    @staticmethod
    def fail(message: str) -> None:
        print(f"codeweir: {message}", file=sys.stderr, flush=True)
