"""Blocks of lines: how search_code and find_symbol show hits.

A hit is shown with its file's lines around it (or its definition's body), numbered: '12:' for
a hit's own line, '12-' for a line around it. Hits next to each other in one file (their lines
overlap or touch) are shown as one block, in the place of the first; a block too long for the
budget keeps its lines from its first hit line on. present_hits makes a page of hits into an
answer within its budget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from codeweir.mcp.answers import Answer, answer_fits, cursor_for, fit_answer, paging_text
from codeweir.mcp.budget import brief_notes, most_that_fit

BODY_LINE_CHARS = 240  # a line of a block cut to fit a small budget keeps this many characters


@attrs.define
class Block:
    repo: str
    path: str
    stale: bool
    lines: dict[int, str]  # line number -> text; empty when only a snippet is known
    marked: set[int]  # the hits' own lines (":" in the text, "-" for context lines)
    hits: list[dict[str, Any]]
    snippet: str = ""  # the text when no lines are known (the file cannot be read now)
    start: int = 0
    end: int = 0
    truncated: bool = False
    ranks: list[int] = attrs.Factory(list)  # each hit's place in the answer's order
    blob: str = ""  # the version of the file the hits are in
    refs: tuple[str, ...] = ()  # the configured refs holding that version

    def touches(self, other: Block) -> bool:
        return (
            (self.repo, self.path, self.blob) == (other.repo, other.path, other.blob)
            and bool(self.lines)
            and bool(other.lines)
            and other.start <= self.end + 1
            and self.start <= other.end + 1
        )

    def absorb(self, other: Block) -> None:
        self.lines.update(other.lines)
        self.marked |= other.marked
        ranked = sorted(zip(self.ranks + other.ranks, self.hits + other.hits, strict=True), key=lambda pair: pair[0])
        self.ranks, self.hits = [r for r, _ in ranked], [h for _, h in ranked]
        self.stale = self.stale or other.stale
        self.start, self.end = min(self.lines), max(self.lines)

    def text(self) -> str:
        if not self.lines:
            return self.snippet
        return "\n".join(
            f"{n}{':' if n in self.marked else '-'}{self.lines[n]}" for n in range(self.start, self.end + 1) if n in self.lines
        )

    def plain_text(self) -> str:
        return self.snippet if not self.lines else "\n".join(self.lines[n] for n in sorted(self.lines))

    def header(self) -> str:
        labels = []
        for hit in self.hits:
            what = ", ".join(x for x in (hit["kind"], *hit.get("facets", ())) if x)
            label = f"{hit['symbol']} ({what})" if hit["symbol"] else f"({what})" if what else ""
            labels.append(f"{label} {hit['score']:g}".strip())
        stale = "  [stale: changed since indexed; lines may have moved]" if self.stale else ""
        cut = "  [cut to fit the budget: read_code shows the rest]" if self.truncated else ""
        refs = f" @{','.join(self.refs)}" if self.refs else ""
        return f"{self.repo}:{self.path}:{self.start}-{self.end}{refs}  {'; '.join(labels)}{stale}{cut}"

    def structured(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "path": self.path,
            "start_line": self.start,
            "end_line": self.end,
            "stale": self.stale,
            "text": self.plain_text(),
            "truncated": self.truncated,
            "hits": self.hits,
        }


def hit_summary(hit: dict[str, Any]) -> dict[str, Any]:
    out = {
        "repo": hit["repo"],
        "path": hit["path"],
        "start_line": hit["start_line"],
        "end_line": hit["end_line"],
        "symbol": hit.get("symbol", ""),
        "kind": hit.get("kind", ""),
        "score": hit.get("score", 0.0),
        "stale": bool(hit.get("stale")),
    }
    if hit.get("line") is not None:
        out["line"], out["column"] = hit["line"], hit.get("column")
    if hit.get("refs"):
        out["refs"] = list(hit["refs"])
    if hit.get("facets"):
        out["facets"] = list(hit["facets"])
    return out


def _snippet_lines(snippet: str, lines: dict[int, str], start: int, end: int) -> set[int]:
    """The lines of `lines` within start..end that show the snippet: from the first holding its
    first line, as many as it has."""
    first, *rest = snippet.split("\n")
    probe = first.strip()
    if not probe:
        return set()
    for number in sorted(lines):
        if start <= number <= end and probe in lines[number]:
            return {n for n in range(number, number + len(rest) + 1) if n in lines}
    return set()


def hit_block(hit: dict[str, Any], body: dict[str, Any] | None = None) -> Block:
    """A hit's block: its context lines (or `body`, a `read` answer), else its snippet."""
    source = body if body is not None else hit.get("context")
    lines: dict[int, str] = {}
    if source:
        lines = {source["start_line"] + i: text for i, text in enumerate(source["text"].split("\n"))}
    block = Block(
        hit["repo"],
        hit["path"],
        bool(hit.get("stale")),
        lines,
        set(),
        [hit_summary(hit)],
        hit.get("snippet", ""),
        blob=str(hit.get("blob", "")),
        refs=tuple(hit.get("refs") or ()),
    )
    if lines:
        block.start, block.end = min(lines), max(lines)
        if hit.get("line") is not None and hit["line"] in lines:
            block.marked = {hit["line"]}
        else:
            block.marked = _snippet_lines(hit.get("snippet", ""), lines, hit["start_line"], hit["end_line"])
    else:
        block.start, block.end = hit["start_line"], hit["end_line"]
    return block


def merged_blocks(blocks: Sequence[Block]) -> list[Block]:
    """Blocks in order, a block whose lines overlap or touch an earlier one's of the same file
    joined into that one (which may then join others of its file)."""
    out: list[Block] = []
    for rank, block in enumerate(blocks):
        ranks = block.ranks or [rank] * len(block.hits)
        block = attrs.evolve(block, lines=dict(block.lines), marked=set(block.marked), hits=list(block.hits), ranks=list(ranks))
        target = next((b for b in out if b.touches(block)), None)
        if target is None:
            out.append(block)
            continue
        target.absorb(block)
        while other := next((b for b in out if b is not target and target.touches(b)), None):
            if out.index(other) < out.index(target):
                other.absorb(target)
                out.remove(target)
                target = other
            else:
                target.absorb(other)
                out.remove(other)
    return out


def truncated_block(block: Block, fit: Callable[[Block], bool]) -> Block:
    """The block with as many of its lines, from its first hit line on, as `fit` allows (at least
    one, cut to BODY_LINE_CHARS characters if need be)."""
    numbers = sorted(block.lines)
    if not numbers:
        cut = attrs.evolve(block, snippet=block.snippet[:BODY_LINE_CHARS], truncated=True)
        return cut
    first = min(block.marked) if block.marked else numbers[0]
    numbers = [n for n in numbers if n >= first]

    def keep(count: int, width: int | None = None) -> Block:
        kept = {n: (block.lines[n] if width is None else block.lines[n][:width]) for n in numbers[:count]}
        return attrs.evolve(
            block, lines=kept, marked={n for n in block.marked if n in kept}, start=min(kept), end=max(kept), truncated=True
        )

    count = most_that_fit(len(numbers), lambda c: c >= 1 and fit(keep(c)))
    if count >= 1:
        return keep(count)
    return keep(1, BODY_LINE_CHARS)


def _hits_answer(
    blocks: list[Block], shown: int, total: int, mode: str, notes: list[str], budget: int, cursor: str | None, header: str
) -> Answer:
    cut = shown < total
    merged = merged_blocks(blocks)
    lines = [header]
    for block in merged:
        lines += [block.header(), block.text()]
    lines += [f"note: {note}" for note in notes]
    lines += paging_text(budget, cut, total - shown, "hits", cursor)
    structured = {
        "blocks": [b.structured() for b in merged],
        "shown": shown,
        "mode": mode,
        "cut": cut,
        "next_cursor": cursor,
        "notes": notes,
    }
    return Answer("\n".join(lines), structured)


async def present_hits(
    arguments: dict[str, Any],
    tool: str,
    identity: tuple[str, ...],
    result: dict[str, Any],
    skip: int,
    socket_cursor: str | None,
    blocks_of: Callable[[list[dict[str, Any]]], Awaitable[list[Block]]],
    describe: Callable[[int, int], str],
) -> Answer:
    """A page of hits (the daemon's `result`, its first `skip` already shown) as blocks, as many
    as fit the budget; the first alone cut to fit when even it is over."""
    budget = arguments["budget_tokens"]
    hits = list(result.get("results", []))[skip:]
    blocks = await blocks_of(hits)
    total = len(blocks)  # blocks_of may stop early (bodies read only while they might fit)
    notes = brief_notes(result.get("notes", []))
    mode = result.get("mode", "")
    next_page = result.get("next_cursor")

    def cursor_after(n: int) -> str | None:
        if n < len(hits):
            return cursor_for(arguments, tool, identity, {"s": socket_cursor, "k": skip + n})
        return cursor_for(arguments, tool, identity, {"s": next_page, "k": 0}) if next_page else None

    def render(n: int) -> Answer:
        return _hits_answer(blocks[:n], n, total, mode, notes, budget, cursor_after(n), describe(n, total))

    n, answer = fit_answer(render, total, budget)
    if n == 0 and total:  # the first hit alone is over the budget: its block is cut to fit

        def one(block: Block) -> Answer:
            return _hits_answer([block], 1, total, mode, notes, budget, cursor_after(1), describe(1, total))

        answer = one(truncated_block(blocks[0], lambda block: answer_fits(one(block), budget)))
        if not answer_fits(answer, budget):
            notes = []
            answer = one(truncated_block(blocks[0], lambda block: answer_fits(one(block), budget)))
    return answer
