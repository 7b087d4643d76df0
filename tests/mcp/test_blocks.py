"""mcp/blocks.py without a daemon: blocks of lines, how they merge and are cut."""

from __future__ import annotations

from codeweir.mcp.blocks import Block, hit_block, merged_blocks, truncated_block


def hit(path: str, line: int, start: int, end: int, *, repo: str = "r", symbol: str = "") -> dict:
    text = "\n".join(f"line {n}" for n in range(start, end + 1))
    return {
        "repo": repo,
        "path": path,
        "start_line": line,
        "end_line": line,
        "line": line,
        "column": 1,
        "symbol": symbol,
        "kind": "function",
        "score": 1.0,
        "snippet": f"line {line}",
        "stale": False,
        "context": {"start_line": start, "end_line": end, "text": text},
    }


def test_a_hits_block_marks_its_own_line_and_numbers_the_lines_around_it():
    block = hit_block(hit("a.py", 5, 4, 6))
    assert block.text() == "4-line 4\n5:line 5\n6-line 6"
    assert (block.start, block.end) == (4, 6)


def test_blocks_of_one_file_that_overlap_or_touch_merge_in_the_first_ones_place():
    blocks = [hit_block(h) for h in (hit("a.py", 5, 4, 6), hit("b.py", 1, 1, 2), hit("a.py", 8, 7, 9), hit("a.py", 20, 19, 21))]
    merged = merged_blocks(blocks)
    assert [(b.path, b.start, b.end, len(b.hits)) for b in merged] == [("a.py", 4, 9, 2), ("b.py", 1, 2, 1), ("a.py", 19, 21, 1)]
    assert merged[0].text().split("\n")[1::3] == ["5:line 5", "8:line 8"]
    assert [(b.start, b.end) for b in blocks] == [(4, 6), (1, 2), (7, 9), (19, 21)]  # the originals stay as they were


def test_a_block_that_bridges_two_earlier_ones_joins_them_all():
    blocks = [hit_block(h) for h in (hit("a.py", 2, 1, 3), hit("a.py", 8, 7, 9), hit("a.py", 5, 4, 6))]
    [merged] = merged_blocks(blocks)
    assert (merged.start, merged.end, [h["start_line"] for h in merged.hits]) == (1, 9, [2, 8, 5])


def test_other_repositories_and_snippet_only_hits_never_merge():
    other = hit("a.py", 5, 4, 6, repo="s")
    bare = {**hit("a.py", 6, 6, 6), "context": None}
    merged = merged_blocks([hit_block(hit("a.py", 5, 4, 6)), hit_block(other), hit_block(bare)])
    assert len(merged) == 3 and merged[2].text() == "line 6"


def test_a_block_cut_to_fit_keeps_its_lines_from_the_first_hit_line_on():
    block = hit_block(hit("a.py", 10, 5, 40))

    def fit(b: Block) -> bool:
        return len(b.lines) <= 4

    cut = truncated_block(block, fit)
    assert cut.truncated and sorted(cut.lines) == [10, 11, 12, 13] and cut.marked == {10}
    assert "cut to fit the budget" in cut.header()


def test_hits_on_two_versions_of_a_file_are_two_blocks_each_naming_its_refs():
    main = {**hit("a.py", 5, 4, 6), "blob": "b1"}
    release = {**hit("a.py", 5, 4, 6), "blob": "b2", "refs": ["release", "v1"]}
    merged = merged_blocks([hit_block(main), hit_block(release)])
    assert [b.header() for b in merged] == ["r:a.py:4-6  (function) 1", "r:a.py:4-6 @release,v1  (function) 1"]
    assert [b.hits[0].get("refs") for b in merged] == [None, ["release", "v1"]]
