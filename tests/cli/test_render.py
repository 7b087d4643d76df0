"""How the status and jobs tables fit the terminal, and the short answers' sentences."""

import io

from rich.console import Console

from codeweir.cli.render import print_jobs, print_status, reload_lines, wait_lines
from tests.cli.test_main import JOBS, NOW, STATUS


def test_a_reload_that_changes_no_repository_says_so():
    assert reload_lines({"added": [], "removed": [], "changed": [], "restart_needed": []}) == [
        "config reloaded: no repository changed"
    ]


def test_a_wait_for_vectors_says_how_many_chunks_are_embedded_or_why_they_never_will_be():
    vectors = {"waited_for": ["index", "vectors"], "vectors": {"chunks": 1200, "chunks_embedded": 1200}}
    what = "indexed and embedded"
    assert wait_lines({"done": True, **vectors}, "alpha", NOW, what=what) == [
        "alpha is fully indexed and embedded (1,200 of 1,200 chunks embedded)"
    ]
    missing = {"done": False, **vectors, "vectors": {"chunks": 1200, "chunks_embedded": 0}, "error": "no model"}
    assert wait_lines(missing, None, NOW, what=what) == [
        "every repository is indexed, but not embedded (0 of 1,200 chunks embedded): no model"
    ]


def render(print_table, result: dict, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width)
    print_table(console, result, NOW)
    lines = console.file.getvalue().splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    return lines


def row(lines: list[str], first: str) -> str:
    return next(line for line in lines if line.startswith(first))


def test_status_fits_80_columns_with_coverage_per_repository_and_the_details_below():
    lines = render(print_status, STATUS, 80)
    assert row(lines, "daemon").split() == ["daemon", "codeweir", "0.1.0,", "pid", "4242,", "up", "2h", "03m"]
    words = " ".join(" ".join(lines).split())  # cells wrapped onto the next lines, read on
    assert "model all-MiniLM-L6-v2-int8 on CPUExecutionProvider, filling, 28,944 vectors" in words
    assert row(lines, "queue").split() == ["queue", "1", "running,", "1", "queued"]
    assert row(lines, "repo").split() == ["repo", "files", "chunks", "embedded", "synced", "state"]
    assert row(lines, "go-std ").split() == ["go-std", "8,176/8,176", "67,312", "42%", "2m", "ago", "ok"]
    long = row(lines, "a-repository-with-a-rat")  # cut short, never wrapped
    assert "0/0" in long and "never" in long and "backing off" in long
    assert "go-std: 15 files skipped: 12 binary, 3 too_large" in words
    assert "x86asm/tables.go: the worker reading and chunking it timed out" in "".join(lines)
    assert "(3 failed syncs in a row)" in words
    assert row(lines, "  @release-branch.go1.1").split() == ["@release-branch.go1.19", "8,170", "67,000", "10%"]
    assert "go-std: refs naming no branch or tag (yet): release-branch.go1.20*" in words


def test_status_at_120_columns_also_shows_head_and_path():
    lines = render(print_status, STATUS, 120)
    assert row(lines, "repo").split() == ["repo", "files", "chunks", "embedded", "synced", "head", "path", "state"]
    assert "4b27d4a5fd" in row(lines, "go-std ") and "/srv/git/go.git" in row(lines, "go-std ")


def test_jobs_fit_80_columns_with_relative_times_and_durations():
    lines = render(print_jobs, JOBS, 80)
    assert row(lines, "job").split() == ["job", "repo", "state", "since", "took", "result"]
    assert row(lines, "j12").split()[2:] == ["queued", "5s", "ago"]
    assert row(lines, "j11").split()[2:] == ["running", "3m", "ago", "3m", "10s"]
    assert row(lines, "j10").split()[1:] == ["go-std", "completed", "1h", "ago", "3.5s", "8,176", "files,", "1", "indexed"]
    assert row(lines, "j9").split()[2:6] == ["failed", "1d", "ago", "1.0s"]
    assert " ".join(" ".join(lines).split()).endswith("no such directory")  # the error, wrapped in its column


def test_jobs_at_120_columns_also_show_what_each_covers():
    lines = render(print_jobs, JOBS, 120)
    assert row(lines, "job").split() == ["job", "repo", "state", "covers", "since", "took", "result"]
    assert "full resync" in row(lines, "j11") and "1 path, interactive" in row(lines, "j10")
