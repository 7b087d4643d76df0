"""The `codeweir read`, `codeweir refs` and `codeweir mcp` commands.

codeweir read shop:src/ledger.py:10-30     lines 10 to 30, numbered, as the file is now
codeweir read shop:src/ledger.py:10        line 10 to the end
codeweir refs compute_total --repo shop    where the identifier is used, grouped by file
codeweir mcp                               an MCP server on stdin and stdout
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codeweir.cli.output import Output
    from codeweir.client import Client

_RANGE = re.compile(r"(\d+)(?:-(\d*))?")


def parse_location(text: str) -> dict[str, Any]:
    """REPO:PATH[:START[-END]] as read params (argparse reports what is wrong as a usage error)."""
    repo, colon, rest = text.partition(":")
    if not colon or not repo or not rest:
        raise argparse.ArgumentTypeError(f"expected REPO:PATH[:START[-END]], got {text!r}")
    path, start, end = rest, 1, None
    head, colon, tail = rest.rpartition(":")
    if colon and head and (match := _RANGE.fullmatch(tail)):
        path, start = head, int(match.group(1))
        end = int(match.group(2)) if match.group(2) else None
    if start < 1 or (end is not None and end < start):
        raise argparse.ArgumentTypeError(f"lines {tail}: give START-END with 1 <= START <= END")
    return {"repo": repo, "path": path, "start": start, "end": end}


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1000, got {value}")
    return value


def cmd_read(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.call("read", args.location)
    if not out.for_people:
        out.result(result)
        return 0
    width = len(str(result["end_line"]))
    for number, line in enumerate(
        result["text"].split("\n") if result["end_line"] >= result["start_line"] else [], result["start_line"]
    ):
        print(f"{number:>{width}}  {line}")
    if result.get("more"):
        out.note(f"stopped at line {result['end_line']} of {result['total_lines']}: read on from {result['end_line'] + 1}")
    if result.get("stale"):
        out.note("the file differs from the version codeweir indexed (search results' lines may be off until it resyncs)")
    return 0


def cmd_refs(client: Client, args: argparse.Namespace, out: Output) -> int:
    params = {
        "symbol": args.symbol,
        "repo": args.repo,
        "path": args.path,
        "lang": args.lang,
        "ref": args.ref,
        "limit": args.limit,
    }
    params = {k: v for k, v in params.items() if v is not None}
    if args.ignore_case:
        params["case_sensitive"] = False
    result = client.call("refs", params)
    if not out.for_people:
        out.result(result)
        return 0
    for definition in result.get("definitions", []):
        print(
            f"defined at {definition['repo']}:{definition['path']}:{definition['line']}  {definition['symbol']} ({definition['kind']})"
        )
    for file in result.get("files", []):
        print(f"{file['repo']}:{file['path']}" + ("  (changed since indexed)" if file.get("stale") else ""))
        for ref in file["refs"]:
            print(f"  {ref['line']}:{ref['column']}  {ref['text'].strip()}")
    total = result.get("total", 0)
    out.say(
        f"{result.get('shown', 0)} of {total}{'' if result.get('complete', True) else '+'} references ({result.get('method', '')})"
    )
    if result.get("next_cursor"):
        out.note(f"more follow: raise --limit (now {args.limit})")
    for note in result.get("notes", []):
        out.note(note)
    return 0


def cmd_mcp(socket: Path) -> int:
    from codeweir.mcp.server import main as mcp_main  # the SDK's imports cost the other commands nothing

    return mcp_main(socket)


def add_commands(command: Any) -> None:
    """The commands, added with cli/main.py's `command(name, run, help)`."""
    read = command("read", cmd_read, "print lines of an indexed file: REPO:PATH[:START[-END]]")
    read.add_argument("location", metavar="REPO:PATH[:START[-END]]", type=parse_location)
    refs = command("refs", cmd_refs, "where an identifier is used (search-based), grouped by file")
    refs.add_argument("symbol", metavar="SYMBOL")
    refs.add_argument("--repo", "-r")
    refs.add_argument("--path", "-p", metavar="GLOB", help="only paths matching this glob")
    refs.add_argument("--lang", "-l")
    refs.add_argument("--ref", action="append", metavar="NAME", help="on this configured ref (repeat for any of several)")
    refs.add_argument("-n", "--limit", type=_limit, default=200, metavar="N", help="most references shown (default 200)")
    refs.add_argument("--ignore-case", "-i", action="store_true")
