"""The tools that show code: search_code and find_symbol (the daemon's `search`), find_references
(`refs`) and read_code (`read`).

Each turns its checked arguments into one daemon request (find_symbol with include_body also
reads each definition's lines) and the result into an answer within `budget_tokens`, continued by
a cursor when cut. A cursor holds the daemon's own page cursor and how many of that page's items
were already shown.
"""

from __future__ import annotations

from typing import Any

from codeweir.mcp.answers import MAX_PAGE, Answer, cursor_for, fit_answer, paging_text, resumed_state, socket_page
from codeweir.mcp.arguments import ArgumentError
from codeweir.mcp.blocks import BODY_LINE_CHARS, Block, hit_block, present_hits
from codeweir.mcp.budget import CursorError, brief_notes
from codeweir.mcp.daemon_calls import Daemon, ToolFailed, call_daemon, quoted_term

REFS_PAGE = 500  # occurrences asked of the daemon per find_references call


SEARCH_IDENTITY = ("query", "mode", "repo", "ref", "path", "language", "kind", "case_sensitive")
MODES = {"auto": "hybrid", "literal": "lexical", "regex": "regex", "symbol": "symbol", "semantic": "semantic", "hybrid": "hybrid"}


async def search_code(daemon: Daemon, arguments: dict[str, Any]) -> Answer:
    skip, socket_cursor = socket_page(arguments, "search_code", SEARCH_IDENTITY)
    mode = arguments["mode"]
    query = quoted_term(arguments["query"]) if mode == "literal" else arguments["query"]
    params = {
        "query": query,
        "mode": MODES[mode],
        "repo": arguments.get("repo"),
        "ref": arguments.get("ref"),
        "path": arguments.get("path"),
        "lang": arguments.get("language"),
        "kind": arguments.get("kind"),
        "case_sensitive": arguments.get("case_sensitive"),
        "limit": min(MAX_PAGE, skip + arguments["limit"]),
        "context": arguments["context"],
        "cursor": socket_cursor,
    }
    result = await call_daemon(daemon, "search", params)

    async def blocks_of(hits: list[dict[str, Any]]) -> list[Block]:
        return [hit_block(hit) for hit in hits]

    def describe(n: int, total: int) -> str:
        if not total:
            return f"no hits for {arguments['query']!r} ({result.get('mode', '')})"
        return f"{n} of {total} hits on this page ({result.get('mode', '')}); '12:' marks a hit's line, '12-' a line around it"

    return await present_hits(arguments, "search_code", SEARCH_IDENTITY, result, skip, socket_cursor, blocks_of, describe)


SYMBOL_IDENTITY = ("name", "kind", "repo", "ref", "path", "language", "include_body")


async def find_symbol(daemon: Daemon, arguments: dict[str, Any]) -> Answer:
    skip, socket_cursor = socket_page(arguments, "find_symbol", SYMBOL_IDENTITY)
    with_body = arguments["include_body"]
    params = {
        "query": arguments["name"],
        "mode": "symbol",
        "repo": arguments.get("repo"),
        "ref": arguments.get("ref"),
        "path": arguments.get("path"),
        "lang": arguments.get("language"),
        "kind": arguments.get("kind"),
        "limit": min(MAX_PAGE, skip + arguments["limit"]),
        "context": 0 if with_body else arguments["context"],
        "cursor": socket_cursor,
    }
    result = await call_daemon(daemon, "search", params)
    budget = arguments["budget_tokens"]

    async def blocks_of(hits: list[dict[str, Any]]) -> list[Block]:
        if not with_body:
            return [hit_block(hit) for hit in hits]
        blocks: list[Block] = []
        size = 0
        for hit in hits:
            if blocks and size > 4 * budget:  # the rest could not fit: read no more bodies
                break
            try:
                body = await call_daemon(
                    daemon, "read", {"repo": hit["repo"], "path": hit["path"], "start": hit["start_line"], "end": hit["end_line"]}
                )
            except ToolFailed:  # the file cannot be read now: its snippet stands in
                body = None
            block = hit_block(hit, body)
            size += len(block.text()) // 4
            blocks.append(block)
        return blocks

    def describe(n: int, total: int) -> str:
        if not total:
            return f"no definition named {arguments['name']!r}"
        what = "with bodies" if with_body else "'12:' marks the definition's line"
        return f"{n} of {total} definitions of {arguments['name']!r} on this page, best first ({what})"

    return await present_hits(arguments, "find_symbol", SYMBOL_IDENTITY, result, skip, socket_cursor, blocks_of, describe)


REFS_IDENTITY = ("symbol", "repo", "path", "language", "case_sensitive")


async def find_references(daemon: Daemon, arguments: dict[str, Any]) -> Answer:
    skip, socket_cursor = socket_page(arguments, "find_references", REFS_IDENTITY)
    params = {
        "symbol": arguments["symbol"],
        "repo": arguments.get("repo"),
        "path": arguments.get("path"),
        "lang": arguments.get("language"),
        "case_sensitive": arguments.get("case_sensitive"),
        "limit": REFS_PAGE,
        "cursor": socket_cursor,
    }
    result = await call_daemon(daemon, "refs", params)
    budget = arguments["budget_tokens"]
    flat = [(f, ref) for f in result.get("files", []) for ref in f.get("refs", [])][skip:]
    notes = brief_notes(result.get("notes", []))
    definitions = result.get("definitions", [])
    next_page = result.get("next_cursor")
    before = result.get("offset", 0) + skip

    def cursor_after(n: int) -> str | None:
        if n < len(flat):
            return cursor_for(arguments, "find_references", REFS_IDENTITY, {"s": socket_cursor, "k": skip + n})
        return cursor_for(arguments, "find_references", REFS_IDENTITY, {"s": next_page, "k": 0}) if next_page else None

    def render(n: int) -> Answer:
        files: list[dict[str, Any]] = []
        for f, ref in flat[:n]:
            if not files or (files[-1]["repo"], files[-1]["path"]) != (f["repo"], f["path"]):
                files.append({"repo": f["repo"], "path": f["path"], "stale": f.get("stale", False), "refs": []})
            files[-1]["refs"].append(ref)
        cursor = cursor_after(n)
        cut = n < len(flat)
        total = result.get("total", 0)
        lines = [
            f"references to {result.get('symbol', arguments['symbol'])!r}: {before + 1 if n else before}-{before + n} of {total}"
            f"{'' if result.get('complete', True) else '+'} ({result.get('method', 'search-based')})"
        ]
        lines += [f"defined at {d['repo']}:{d['path']}:{d['line']} {d['symbol']} ({d['kind']})" for d in definitions]
        for f in files:
            lines.append(f"{f['repo']}:{f['path']}" + ("  [stale: changed since indexed]" if f["stale"] else ""))
            lines += _ref_lines(f["refs"])
        lines += [f"note: {note}" for note in notes]
        lines += paging_text(budget, cut, len(flat) - n, "references", cursor)
        structured = {
            "symbol": result.get("symbol", arguments["symbol"]),
            "method": result.get("method", ""),
            "definitions": definitions,
            "files": files,
            "shown": n,
            "total": total,
            "complete": bool(result.get("complete", True)),
            "cut": cut,
            "next_cursor": cursor,
            "notes": notes,
        }
        return Answer("\n".join(lines), structured)

    n, answer = fit_answer(render, len(flat), budget)
    if n == 0 and flat:  # not one reference fits beside the definitions and notes: fewer of them
        definitions, notes = definitions[:1], []
        flat = [(f, {**ref, "text": ref["text"][:BODY_LINE_CHARS]}) for f, ref in flat]
        n, answer = fit_answer(render, len(flat), budget)
    return answer


def _ref_lines(refs: list[dict[str, Any]]) -> list[str]:
    """One text line per source line: `  LINE:COL[,COL...]: text`."""
    out: list[str] = []
    last: dict[str, Any] | None = None
    columns: list[str] = []
    for ref in [*refs, None]:
        if last is not None and (ref is None or ref["line"] != last["line"]):
            out.append(f"  {last['line']}:{','.join(columns)}: {last['text']}")
            columns = []
        if ref is not None:
            columns.append(str(ref["column"]))
            last = ref
    return out


READ_IDENTITY = ("repo", "path", "start_line", "end_line")


async def read_code(daemon: Daemon, arguments: dict[str, Any]) -> Answer:
    state = resumed_state(arguments, "read_code", READ_IDENTITY)
    start = arguments["start_line"]
    if state:
        resume_at = state.get("line")
        if not isinstance(resume_at, int) or isinstance(resume_at, bool) or resume_at < start:
            raise CursorError("cursor: damaged; pass next_cursor exactly as it came")
        start = resume_at
    end = arguments.get("end_line")
    if end is not None and end < start:
        raise ArgumentError(f"invalid arguments for read_code: end_line: must not be before start_line ({start}), got {end}")
    result = await call_daemon(daemon, "read", {"repo": arguments["repo"], "path": arguments["path"], "start": start, "end": end})
    budget = arguments["budget_tokens"]
    lines = result["text"].split("\n") if result.get("end_line", 0) >= result.get("start_line", 1) else []
    total = result.get("total_lines", 0)
    notes = []
    if result.get("stale"):
        notes.append("the file differs from the version codeweir indexed: search hits' line numbers may be off until it resyncs")

    def render(n: int, width: int | None = None) -> Answer:
        shown = [line if width is None else line[:width] for line in lines[:n]]
        last = start + n - 1
        more = n < len(lines) or bool(result.get("more"))
        cursor = cursor_for(arguments, "read_code", READ_IDENTITY, {"line": last + 1}) if more else None
        header = (
            f"{result['repo']}:{result['path']}:{start}-{last} of {total} lines"
            if n
            else f"{result['repo']}:{result['path']}: {total} lines"
        )
        text = [header, *(f"{start + i}:{line}" for i, line in enumerate(shown)), *(f"note: {note}" for note in notes)]
        text += (
            paging_text(budget, n < len(lines), len(lines) - n, "lines", cursor)
            if n < len(lines)
            else paging_text(budget, False, 0, "lines", cursor)
        )
        structured = {
            "repo": result["repo"],
            "path": result["path"],
            "start_line": start,
            "end_line": last,
            "total_lines": total,
            "text": "\n".join(shown),
            "stale": bool(result.get("stale")),
            "cut": n < len(lines),
            "next_cursor": cursor,
            "notes": notes,
        }
        return Answer("\n".join(text), structured)

    n, answer = fit_answer(render, len(lines), budget)
    if n == 0 and lines:  # one line over the budget: its start
        notes = []
        answer = render(1, BODY_LINE_CHARS)
    return answer
