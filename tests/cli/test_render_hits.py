"""How hits print: matches in bold, snippet lines cut to the terminal around the first match, commits."""

import io

from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from codeweir import protocol
from codeweir.cli.render_hits import ELLIPSIS, MATCH_STYLE, fit_line, highlighted, print_hits
from tests.cli.test_main import COMMIT_HITS, LONG_LINE


def test_matched_terms_are_bold_at_the_offsets_the_daemon_sends():
    text = highlighted("a <b>b</b> [c]", [[2, 5], [11, 12], [40, 50], "junk"])
    assert text.plain == "a <b>b</b> [c]"  # raw text: nothing in it is markup
    assert [(span.start, span.end) for span in text.spans] == [(2, 5), (11, 12)] and "bold" in str(text.spans[0].style)


def test_a_commit_hit_whose_snippet_is_a_fragment_of_its_message_shows_the_summary_then_the_matched_lines():
    console = Console(file=io.StringIO(), width=60)
    hit = protocol.converter.unstructure(COMMIT_HITS[0])
    body = "The pool's idle list was read without its lock."
    hit.update(
        snippet=f"…\n{body}", matches=[[len("…\nThe "), len("…\nThe pool")]], paths=[f"dir{i}/file{i}.go" for i in range(9)]
    )
    print_hits(console, [hit])
    lines = console.file.getvalue().splitlines()
    assert lines[1:3] == ["    net/http: fix race in the connection pool", f"    {body}"]
    assert lines[3].startswith("    dir0/file0.go, dir1/file1.go") and lines[3].endswith("more)") and len(lines[3]) <= 60


def test_a_cut_line_keeps_its_matches_on_the_characters_they_marked():
    start = LONG_LINE.index("ParseDuration") + len("Parse")
    fitted = fit_line(highlighted(LONG_LINE, [(start, start + len("Duration"))]), 40)
    [span] = [span for span in fitted.spans if span.style == MATCH_STYLE]
    assert fitted.plain[span.start : span.end] == "Duration"
    assert fitted.plain.startswith(f"{ELLIPSIS}=ParseDuration(")  # the whole identifier the match is in
    assert cell_len(fitted.plain) <= 40


def test_a_line_that_fits_is_shown_whole_with_its_tabs_as_spaces():
    fitted = fit_line(highlighted("\tif err != nil {", [(4, 14)]), 40)
    assert fitted.plain == "    if err != nil {"
    assert [fitted.plain[s.start : s.end] for s in fitted.spans] == ["err != nil"]


LINE_CHARS = st.sampled_from(list("abcXY_09 ().,=\t\"'") + ["語", "é"])


@given(
    st.text(LINE_CHARS, max_size=200),
    st.lists(st.tuples(st.integers(0, 200), st.integers(1, 20)), max_size=4),
    st.integers(3, 120),
)
def test_a_fitted_line_fits_is_a_piece_of_the_line_marked_as_it_was_and_shows_the_first_match(line, spans, width):
    marked = highlighted(line, [(start, start + length) for start, length in sorted(set(spans))])
    expanded = marked.copy()
    expanded.expand_tabs(4)
    plain = expanded.plain
    fitted = fit_line(marked, width)
    assert cell_len(fitted.plain) <= width
    if cell_len(plain) <= width:
        assert fitted.plain == plain
        return
    head = 1 if fitted.plain.startswith(ELLIPSIS) and not plain.startswith(ELLIPSIS) else 0
    tail = 1 if fitted.plain.endswith(ELLIPSIS) else 0
    middle = fitted.plain[head : len(fitted.plain) - tail]

    def marks(text, offset=0):
        return {i - offset for s in text.spans if s.style == MATCH_STYLE for i in range(s.start, s.end)}

    first = min((s for s in expanded.spans if s.style == MATCH_STYLE), key=lambda s: s.start, default=None)
    shows_first = first is not None and cell_len(plain[first.start : first.end]) + 2 <= width

    def is_the_piece_at(at: int) -> bool:
        """The shown piece is plain[at:...], cut marks where it was cut, marked where plain was."""
        end = at + len(middle)
        return (
            plain.startswith(middle, at)
            and (at > 0) == bool(head)
            and (end < len(plain)) == bool(tail)
            and marks(fitted, head) == {i - at for i in marks(expanded) if at <= i < end}
            and (not shows_first or (at <= first.start and first.end <= end))
        )

    assert any(is_the_piece_at(at) for at in range(len(plain) - len(middle) + 1))
