"""How the CLI shows search hits: a header line per hit, then its snippet's lines cut to the
terminal around the first match, the matches in bold; a commit as its sha, date, author and
summary, the lines of its message that matched, and the paths it changed."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

MATCH_STYLE = "bold red"
ELLIPSIS = "…"
INDENT = "    "  # before each line of a hit's snippet
TAB_SIZE = 4


def highlighted(snippet: str, matches: Any = ()) -> Text:
    """A hit's raw snippet with its matches (code point offsets, as the daemon sends) in bold."""
    text = Text(snippet)
    for span in matches or ():
        try:
            start, end = (int(x) for x in span)
        except (TypeError, ValueError):
            continue  # not a pair of offsets: show the text unmarked
        if 0 <= start < end <= len(snippet):
            text.stylize(MATCH_STYLE, start, end)
    return text


# -- snippets cut to the terminal ----------------------------------------------------------------


def _in_word(char: str) -> bool:
    return char.isalnum() or char in "_$"


def _boundary(plain: str, i: int) -> bool:
    """Whether a cut before `plain[i]` leaves every identifier whole."""
    return i <= 0 or i >= len(plain) or not (_in_word(plain[i - 1]) and _in_word(plain[i]))


def fit_line(line: Text, width: int) -> Text:
    """One line of a snippet in at most `width` cells: a line too long is cut at token boundaries
    (never inside an identifier, unless one identifier alone is too long), around its first
    match, each cut marked with …; the matches stay on the characters they marked."""
    line = line.copy()
    line.expand_tabs(TAB_SIZE)
    plain = line.plain
    cells = [cell_len(char) for char in plain]
    if sum(cells) <= width:
        return line
    if width < 3:
        return line[: max(0, width)]
    mark = cell_len(ELLIPSIS)
    matches = sorted((span for span in line.spans if span.style == MATCH_STYLE and span.end > span.start), key=lambda s: s.start)
    focus = matches[0] if matches else None
    start = 0
    if focus is not None and sum(cells[: focus.end]) + mark > width:
        # The first match would not show from the line's start: begin a third of the room before it.
        context = max(0, (width - 2 * mark - sum(cells[focus.start : focus.end])) // 3)
        want, used = focus.start, 0
        while want > 0 and used + cells[want - 1] <= context:
            want -= 1
            used += cells[want]
        start = next((i for i in range(want, focus.start + 1) if _boundary(plain, i)), -1)
        if start < 0:  # the match starts inside an identifier: from its start, if the match still fits
            start = next((i for i in range(want, -1, -1) if _boundary(plain, i)), 0)
            if sum(cells[start : focus.end]) + 2 * mark > width:
                start = want
    keep_from, keep_to = (focus.start, focus.end) if focus is not None else (len(plain), 0)
    end = _end(plain, cells, start, width - (mark if start else 0), mark, keep_to)
    if end == len(plain) and start:
        # Room left at the end: start earlier, at a boundary.
        room = width - mark - sum(cells[start:end])
        for i in range(start - 1, -1, -1):
            room -= cells[i]
            if room < (0 if i else -mark):
                break
            if _boundary(plain, i):
                start = i
    while 0 < start < min(end, keep_from) and plain[start] == " ":
        start += 1
    cut_end = end < len(plain)
    while cut_end and end > max(start, keep_to) and plain[end - 1] == " ":
        end -= 1
    fitted = Text(ELLIPSIS, style="dim") if start else Text()
    fitted.append_text(line[start:end])
    if cut_end:
        fitted.append(ELLIPSIS, style="dim")
    return fitted


def _end(plain: str, cells: list[int], start: int, width: int, mark: int, keep: int) -> int:
    """Where a line shown from `start` in `width` cells ends: the whole rest if it fits, else the
    last token boundary, not before `keep`, where a cut mark still fits (a hard cut where
    there is none: inside one long token)."""
    if sum(cells[start:]) <= width:
        return len(plain)
    used, end = 0, start
    while end < len(plain) and used + cells[end] <= width - mark:
        used += cells[end]
        end += 1
    boundary = next((i for i in range(end, max(start, keep - 1), -1) if _boundary(plain, i)), None)
    return boundary if boundary is not None else end


def print_snippet(console: Console, snippet: str, matches: Any) -> None:
    """A snippet's lines under a hit, each cut to the terminal (see `fit_line`)."""
    width = max(1, console.width - len(INDENT))
    for piece in highlighted(snippet.rstrip("\n"), matches).split("\n"):
        console.print(Text(INDENT) + fit_line(piece, width), no_wrap=True, overflow="ellipsis")


def _cut_list(items: list[str], width: int) -> str:
    """As many of `items` as fit in `width`, comma-separated, then how many more there are."""
    shown: list[str] = []
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        candidate = ", ".join([*shown, item]) + (f" (+{rest} more)" if rest else "")
        if shown and cell_len(candidate) > width:
            return ", ".join(shown) + f" (+{len(items) - len(shown)} more)"
        shown.append(item)
    return ", ".join(shown)


def print_hits(console: Console, hits: list[dict[str, Any]]) -> None:
    for hit in hits:
        if "sha" in hit:
            print_commit_hit(console, hit)
            continue
        console.print(hit_header(hit, console.width), soft_wrap=True)
        print_snippet(console, str(hit.get("snippet", "")), hit.get("matches"))
        console.print()


def hit_header(hit: dict[str, Any], width: int) -> Text:
    """`repo/path:3-9 @main,v1.2  Symbol (kind)  0.812` (`@`: the refs holding this version of
    the file, when any does); where that is too wide, without the score, then the kind, then
    with the symbol cut short. The location and refs are never cut (they may wrap)."""
    location = Text()
    location.append(f"{hit.get('repo', '')}/", style="dim")
    location.append(str(hit.get("path", "")), style="magenta")
    line = hit.get("line")
    where = f":{line}:{hit.get('column', 1)}" if line is not None else f":{hit.get('start_line')}-{hit.get('end_line')}"
    location.append(where, style="green")
    refs = [str(ref) for ref in hit.get("refs") or []]
    if refs:
        location.append(f" @{','.join(refs)}", style="cyan")
    symbol = str(hit.get("symbol") or "")
    kind = f" ({hit['kind']})" if symbol and hit.get("kind") else ""
    score = hit.get("score")
    score_text = f"  {score:.3f}" if isinstance(score, (int, float)) else ""
    for with_kind, with_score in ((True, True), (True, False), (False, False)):
        size = cell_len(location.plain) + (cell_len(f"  {symbol}") if symbol else 0)
        size += (cell_len(kind) if with_kind else 0) + (cell_len(score_text) if with_score else 0)
        if size <= width:
            break
    header = location.copy()
    room = width - cell_len(location.plain) - 2 - (cell_len(kind) if with_kind else 0)
    if symbol and room >= min(cell_len(symbol), 6):  # else no room worth the name
        shown = symbol if cell_len(symbol) <= room else symbol[: room - 1] + ELLIPSIS
        header.append(f"  {shown}", style="bold yellow")
        if with_kind:
            header.append(kind, style="yellow")
    if with_score:
        header.append(score_text, style="dim")
    return header


def author_name(author: str) -> str:
    """`Alice Liddell <alice@example.com>` as `Alice Liddell` (the address alone when it has no name)."""
    name, _, email = author.partition(" <")
    return name.strip() or email.rstrip(">") or author


def print_commit_hit(console: Console, hit: dict[str, Any]) -> None:
    """A commit: `repo  4b27d4a5fd  2024-03-02  Alice  0.913`, its summary line (the matches in
    it marked), the message's other lines that matched, then the paths it changed."""
    header = Text()
    header.append(f"{hit.get('repo', '')}  ", style="dim")
    header.append(str(hit.get("sha", ""))[:10], style="yellow")
    header.append(f"  {str(hit.get('date') or '')[:10]}", style="green")
    header.append(f"  {author_name(str(hit.get('author') or ''))}", style="magenta")
    score = hit.get("score")
    if isinstance(score, (int, float)) and score:
        header.append(f"  {score:.3f}", style="dim")
    console.print(header, soft_wrap=True)
    summary = str(hit.get("summary") or "")
    snippet = highlighted(str(hit.get("snippet") or "").rstrip("\n"), hit.get("matches")).split("\n")
    width = max(1, console.width - len(INDENT))
    lines = list(snippet)
    if not (lines and summary and lines[0].plain == summary):
        lines.insert(0, Text(summary))  # the snippet is a fragment of the message: the summary first
    first, *more = lines
    first.style = "bold"
    console.print(Text(INDENT) + fit_line(first, width), no_wrap=True, overflow="ellipsis")
    for line in [line for line in more if line.spans][:2]:  # body lines where the query matched
        console.print(Text(INDENT) + fit_line(line, width), no_wrap=True, overflow="ellipsis")
    paths = [str(path) for path in hit.get("paths") or []]
    if paths:
        console.print(Text(INDENT + _cut_list(paths, width), style="dim"), no_wrap=True, overflow="ellipsis")
    console.print()
