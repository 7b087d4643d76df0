"""Cutting a file into chunks: definitions for code, sections for Markdown, line windows for the rest.

Pure and deterministic. The steps: an outline of the file's definitions (tree-sitter, see
`chunk_langs`, or Markdown headings) -> regions that tile every line (a definition, a
container's header, the code between definitions) -> blank edges trimmed -> bracket-only
leftovers (`}`) joined to their neighbour -> tiny mergeable neighbours merged -> oversized
regions cut into overlapping windows. Every non-blank line ends up in a chunk.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from itertools import accumulate
from pathlib import PurePath

import attrs

from codeweir.chunk.languages import GRAMMAR_LANGUAGES, TEXT, Meta, Unit, outline
from codeweir.errors import FileSkipped
from codeweir.records import Chunk


def _at_least(minimum: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"Budget.{attribute.name} must be an integer >= {minimum}, got {value!r}")

    return check


@attrs.frozen
class Budget:
    # all-MiniLM-L6-v2 reads 256 tokens, and Python code runs ~2.7 characters a token in its
    # vocabulary. Measured on site-packages: at 1000 characters 10% of chunk tokens fall past
    # 256 (at 1500, 22%; at 800, 5% but 17% more chunks). Chunks are indexed whole regardless.
    max_chars: int = attrs.field(default=1000, validator=_at_least(1))
    max_lines: int = attrs.field(default=50, validator=_at_least(1))
    min_chars: int = attrs.field(default=200, validator=_at_least(0))  # smaller ones merge
    overlap_lines: int = attrs.field(default=3, validator=_at_least(0))

    def __attrs_post_init__(self) -> None:
        if self.min_chars > self.max_chars:
            raise ValueError(f"Budget.min_chars ({self.min_chars}) must not exceed max_chars ({self.max_chars})")
        if self.overlap_lines >= self.max_lines:
            raise ValueError(f"Budget.overlap_lines ({self.overlap_lines}) must be less than max_lines ({self.max_lines})")


# --- languages ------------------------------------------------------------------------

_BY_SUFFIX = {
    **dict.fromkeys((".py", ".pyi", ".pyw"), "python"),
    **dict.fromkeys((".js", ".mjs", ".cjs"), "javascript"),
    ".jsx": "jsx",
    **dict.fromkeys((".ts", ".mts", ".cts"), "typescript"),
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".h": "c",
    ".c": "c",
    **dict.fromkeys((".cc", ".cpp", ".cxx", ".c++", ".hh", ".hpp", ".hxx", ".h++", ".ipp", ".tpp", ".inl"), "cpp"),
    **dict.fromkeys((".md", ".markdown", ".mdown", ".mkd"), "markdown"),
    **dict.fromkeys((".json", ".jsonc", ".json5", ".ipynb"), "json"),
    **dict.fromkeys((".yml", ".yaml"), "yaml"),
    ".toml": "toml",
    **dict.fromkeys((".ini", ".cfg", ".conf", ".properties"), "ini"),
    **dict.fromkeys((".sh", ".bash", ".zsh", ".ksh", ".fish"), "shell"),
    **dict.fromkeys((".html", ".htm", ".xhtml"), "html"),
    **dict.fromkeys((".css", ".scss", ".sass", ".less"), "css"),
    **dict.fromkeys((".xml", ".xsd", ".xsl", ".svg"), "xml"),
    ".sql": "sql",
    ".rst": "rst",
    **dict.fromkeys((".txt", ".text"), "text"),
    **dict.fromkeys((".rb", ".rake", ".gemspec"), "ruby"),
    **dict.fromkeys((".php", ".phtml"), "php"),
    **dict.fromkeys((".kt", ".kts"), "kotlin"),
    ".swift": "swift",
    **dict.fromkeys((".scala", ".sc"), "scala"),
    ".lua": "lua",
    **dict.fromkeys((".pl", ".pm"), "perl"),
    ".hs": "haskell",
    **dict.fromkeys((".ex", ".exs"), "elixir"),
    ".cs": "csharp",
    ".vue": "vue",
    ".proto": "protobuf",
    ".cmake": "cmake",
    **dict.fromkeys((".mk", ".mak"), "makefile"),
}
_BY_NAME = {
    "makefile": "makefile",
    "gnumakefile": "makefile",
    "dockerfile": "dockerfile",
    "containerfile": "dockerfile",
    "cmakelists.txt": "cmake",
    "gemfile": "ruby",
    "rakefile": "ruby",
    "readme": "text",
    "license": "text",
    "copying": "text",
    "authors": "text",
    "changelog": "text",
    ".gitignore": "text",
    ".gitattributes": "text",
    ".editorconfig": "ini",
    "go.mod": "text",
    "go.sum": "text",
}


def detect_language(path: str) -> str | None:
    """The language of a file from its name: "python", "tsx", "markdown", "yaml"...; None if unknown."""
    name = PurePath(path).name.lower()
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name.startswith("dockerfile."):
        return "dockerfile"
    return _BY_SUFFIX.get(PurePath(name).suffix)


# --- Markdown -------------------------------------------------------------------------

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")


def _markdown_outline(lines: list[str]) -> tuple[Unit, ...]:
    """One unit per section, from its heading to the next heading; fenced code is not scanned.

    Sections are never merged: each heading keeps a chunk of its own, like a definition.
    """
    starts: list[tuple[int, int, str]] = []  # (row, level, heading text)
    fence = ""
    # YAML front matter is not a heading underlined with `---`.
    front = -1
    if lines[0].rstrip() == "---":
        front = next((row for row in range(1, len(lines)) if lines[row].rstrip() == "---"), -1)
    for row, line in enumerate(lines):
        if row <= front:
            continue
        opening = _FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = ""
        elif opening:
            fence = opening.group(1)
        elif heading := _ATX.match(line):
            starts.append((row, len(heading.group(1)), (heading.group(2) or "").strip()))
        elif (
            (underline := _SETEXT.match(line))
            and row > 0
            and lines[row - 1].strip()
            and not (starts and starts[-1][0] == row - 1)
            and not _FENCE.match(lines[row - 1])
        ):
            starts.append((row - 1, 1 if underline.group(1)[0] == "=" else 2, lines[row - 1].strip()))
    units = []
    trail: list[tuple[int, str]] = []  # (level, text) of the enclosing headings
    for index, (row, level, text) in enumerate(starts):
        trail = [*(t for t in trail if t[0] < level), (level, text)]
        last = starts[index + 1][0] - 1 if index + 1 < len(starts) else len(lines) - 1
        path = ".".join(t for _, t in trail)
        units.append(Unit(row, last, Meta("section", text, path, row=row)))
    return tuple(units)


# --- regions --------------------------------------------------------------------------


@attrs.frozen
class _Region:
    first: int  # 0-based rows, inclusive
    last: int
    meta: Meta
    scope: str  # path of the enclosing definition: only neighbours in one scope merge

    def rows(self, first: int, last: int) -> _Region:
        """This region over other rows. (attrs.evolve looks the fields up at each call: a third
        of the chunker's own time on the kernel's files.)"""
        return _Region(first, last, self.meta, self.scope)


class _Lines:
    """The file's lines with their character and byte offsets, for sizes and chunk bounds."""

    def __init__(self, text: str, data: bytes) -> None:
        self.lines = text.split("\n")
        self.char_starts = _starts(self.lines)
        self.byte_starts = self.char_starts if len(data) == len(text) else _starts(data.split(b"\n"))

    def chars(self, first: int, last: int) -> int:
        return self.char_starts[last + 1] - self.char_starts[first] - 1

    def blank(self, row: int) -> bool:
        return not self.lines[row].strip()

    def has_word(self, first: int, last: int) -> bool:
        return any(_WORD.search(self.lines[row]) for row in range(first, last + 1))


def _starts(lines: list[str] | list[bytes]) -> list[int]:
    """Where each line starts, and one past the last: its length and newline after the one before."""
    return [0, *accumulate(map((1).__add__, map(len, lines)))]


_WORD = re.compile(r"[^\W_]")


def _tile(first: int, last: int, members: tuple[Unit, ...], own: Meta, scope: str, out: list[_Region]) -> None:
    """Regions for rows first..last: each member's, and `own` for the rows between them."""
    cursor = first
    for unit in members:
        start, end = max(unit.first_row, cursor), min(unit.last_row, last)
        if start > end:
            continue  # shares its only row with an earlier definition, which keeps it
        if start > cursor:
            out.append(_Region(cursor, start - 1, own, scope))
        if unit.meta is None:
            _tile(start, end, unit.members, own, scope, out)
        elif unit.members:
            _tile(start, end, unit.members, unit.meta, unit.meta.path, out)
        else:
            out.append(_Region(start, end, unit.meta, scope))
        cursor = end + 1
    if cursor <= last:
        out.append(_Region(cursor, last, own, scope))


def _trimmed(regions: list[_Region], lines: _Lines) -> list[_Region]:
    out = []
    for region in regions:
        first, last = region.first, region.last
        while first <= last and lines.blank(first):
            first += 1
        while last >= first and lines.blank(last):
            last -= 1
        if first <= last:
            out.append(region if (first, last) == (region.first, region.last) else region.rows(first, last))
    return out


def _join_wordless(regions: list[_Region], lines: _Lines) -> list[_Region]:
    """A region without a word (a class's closing `}`) joins the region before it, or the next."""
    out: list[_Region] = []
    pending: int | None = None  # first row of wordless regions waiting for a next region
    for region in regions:
        if not lines.has_word(region.first, region.last):
            if out:
                out[-1] = out[-1].rows(out[-1].first, region.last)
            elif pending is None:
                pending = region.first
            continue
        out.append(region if pending is None else region.rows(pending, region.last))
        pending = None
    if pending is not None:  # nothing but brackets in the file
        out.append(_Region(pending, regions[-1].last, TEXT, ""))
    return out


def _merged_small(regions: list[_Region], lines: _Lines, budget: Budget) -> list[_Region]:
    """Tiny mergeable neighbours (imports, constants, prototypes) merge up to the budget.

    A merged region is named after its first member, the one its first line shows.
    """
    out: list[_Region] = []
    for region in regions:
        if out and _can_merge(out[-1], region, lines, budget):
            out[-1] = out[-1].rows(out[-1].first, region.last)
        else:
            out.append(region)
    return out


def _can_merge(a: _Region, b: _Region, lines: _Lines, budget: Budget) -> bool:
    if a.scope != b.scope or not _fits(a.first, b.last, lines, budget):
        return False
    if a.meta == b.meta and a.scope == a.meta.path:  # a container's own lines, parted by a group
        return True
    small = min(lines.chars(a.first, a.last), lines.chars(b.first, b.last)) < budget.min_chars
    return a.meta.mergeable and b.meta.mergeable and small


def _windows(region: _Region, lines: _Lines, budget: Budget) -> list[_Region]:
    """An oversized region as windows within the budget, each overlapping the one before.

    A window ends on a line followed by a blank one in its second half where there is one,
    so pieces tend to break between paragraphs and statements rather than inside them.
    Windows start and end on non-blank lines, and each adds lines the one before lacks.
    A single line longer than max_chars stays whole: a chunk is made of whole lines.
    """
    pieces: list[_Region] = []
    start, covered = region.first, region.first - 1
    while True:
        # The furthest end within max_lines and max_chars (at least the start line).
        by_chars = bisect.bisect_right(lines.char_starts, lines.char_starts[start] + budget.max_chars + 1) - 2
        end = max(start, min(region.last, start + budget.max_lines - 1, by_chars))
        last_window = end >= region.last
        if not last_window:
            floor = max(start + (end - start) // 2, covered + 1)
            end = next((r for r in range(end, floor - 1, -1) if lines.blank(r + 1) and not lines.blank(r)), end)
        while lines.blank(end):
            end -= 1
        if end > covered:
            pieces.append(region.rows(start, end))
            covered = end
        if last_window:
            return pieces
        start = max(end + 1 - budget.overlap_lines, start + 1)
        while lines.blank(start):
            start += 1


def _fits(first: int, last: int, lines: _Lines, budget: Budget) -> bool:
    return last - first < budget.max_lines and lines.chars(first, last) <= budget.max_chars


# --- the entry point ------------------------------------------------------------------


def chunk_file(path: str, text: str, language: str | None = None, budget: Budget = Budget()) -> list[Chunk]:
    """The chunks of one file, in file order; every non-blank line is in at least one.

    `language` defaults to detect_language(path); a language without a grammar (or unknown)
    is cut into line windows. Raises FileSkipped when the text cannot be encoded as UTF-8.
    """
    if not text.strip():
        return []
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise FileSkipped(f"{path}: text cannot be encoded as UTF-8 ({error.reason} at index {error.start})") from None
    language = language if language is not None else detect_language(path)
    lines = _Lines(text, data)
    if language in GRAMMAR_LANGUAGES:
        try:
            units = outline(language, data)
        except RecursionError:  # absurdly deep nesting: line windows still cover the file
            units = ()
    elif language == "markdown":
        units = _markdown_outline(lines.lines)
    else:
        units = ()
    regions: list[_Region] = []
    _tile(0, len(lines.lines) - 1, units, TEXT, "", regions)
    regions = _merged_small(_join_wordless(_trimmed(regions, lines), lines), lines, budget)
    pieces = [p for r in regions for p in ([r] if _fits(r.first, r.last, lines, budget) else _windows(r, lines, budget))]
    defining = _defining(pieces)
    return [_chunk(piece, lines, index in defining) for index, piece in enumerate(pieces)]


def _defining(pieces: list[_Region]) -> set[int]:
    """The pieces labelled with their symbol: one per definition, the first holding its
    definition line (the first piece when none does). The others — a long definition's later
    windows, a class's lines between its methods, comments trailing its body — are its pieces:
    they keep its path and kind, not its symbol, so a symbol search finds the definition once."""
    first: dict[Meta, int] = {}
    holding: dict[Meta, int] = {}
    for index, piece in enumerate(pieces):
        if not piece.meta.symbol:
            continue
        first.setdefault(piece.meta, index)
        if piece.first <= piece.meta.row <= piece.last:
            holding.setdefault(piece.meta, index)
    return {holding.get(meta, index) for meta, index in first.items()}


def _chunk(region: _Region, lines: _Lines, defines: bool) -> Chunk:
    start_byte = lines.byte_starts[region.first]
    end_byte = lines.byte_starts[region.last + 1] - 1
    return Chunk(
        start_line=region.first + 1,
        end_line=region.last + 1,
        start_byte=start_byte,
        end_byte=end_byte,
        symbol=region.meta.symbol if defines else "",
        kind=region.meta.kind,
        symbol_path=region.meta.path,
        content="\n".join(lines.lines[region.first : region.last + 1]),
    )
