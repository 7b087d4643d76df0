"""The one glob dialect: config include/exclude and a query's `path:`."""

import re
import subprocess
from pathlib import Path

import pytest
import tantivy
from hypothesis import given
from hypothesis import strategies as st

from codeweir.globs import GlobFilter, PathScope, glob_regex
from codeweir.index.schema import SCHEMA
from tests.gitrepo import make_repo


@pytest.mark.parametrize(
    "glob, matches, misses",
    [
        ("*.go", ["a.go", "net/http/server.go"], ["a.go.txt", "a.py"]),
        ("net/http/**", ["net/http/server.go", "net/http/a/b.go"], ["net/httpx/a.go", "os/net/http/a.go"]),
        ("**/test_*.py", ["test_a.py", "x/y/test_a.py"], ["x/atest_a.py"]),
        ("src/*/main.py", ["src/app/main.py"], ["src/a/b/main.py", "main.py"]),
        ("a?.c", ["ab.c", "d/ab.c"], ["a/.c", "abc.c"]),
        ("lib.rs", ["lib.rs", "src/lib.rs"], ["xlib.rs"]),
    ],
)
def test_query_path_globs_match_like_ripgrep(glob, matches, misses):
    pattern = re.compile(glob_regex(glob))
    for path in matches:
        assert pattern.fullmatch(path), path
    for path in misses:
        assert not pattern.fullmatch(path), path


@given(st.text(alphabet="ab/.*?[]()+{}^$|\\&~!-:", min_size=1, max_size=12))
def test_any_glob_gives_a_regex_python_and_tantivy_accept_or_a_value_error(glob):
    try:
        pattern = glob_regex(glob)
    except ValueError as exc:
        assert repr(glob) in str(exc)
        return
    re.compile(pattern)
    tantivy.Query.regex_query(SCHEMA, "path", pattern)


def test_a_directory_glob_selects_its_subtree_in_both_uses():
    pattern = re.compile(glob_regex("net/http"))
    assert pattern.fullmatch("net/http/server.go") and pattern.fullmatch("net/http")
    assert not pattern.fullmatch("net/httpx/a.go")


@pytest.mark.parametrize(
    ("path", "include", "exclude", "expected"),
    [
        ("a/b/c.py", (), (), True),
        ("a/b/c.py", ("*.py",), (), True),  # no "/" in the glob: any depth
        ("a/b/c.go", ("*.py",), (), False),
        ("vendor/x/y.py", (), ("vendor/**",), False),
        ("src/vendor/y.py", (), ("vendor/**",), True),  # "/" anchors at the root
        ("src/vendor/y.py", (), ("vendor",), False),  # a bare name matches a directory anywhere
        ("src/vendor/y.py", (), ("**/vendor/**",), False),
        ("vendor.py", (), ("vendor/",), True),  # trailing "/": directories only
        ("a/vendor/x", (), ("vendor/",), False),
        ("src/a.py", ("src/*.py",), (), True),
        ("src/sub/a.py", ("src/*.py",), (), False),  # "*" stays within one directory
        ("src/sub/a.py", ("src/**/*.py",), (), True),
        ("src/a.py", ("src/**/*.py",), (), True),  # "**/" may match no directory
        ("src/a.py", ("/src",), (), True),
        ("lib/src/a.py", ("/src",), (), False),
        ("a/file1.txt", ("file?.txt",), (), True),
        ("a/file10.txt", ("file?.txt",), (), False),
        ("b.c", ("[ab].c",), (), True),
        ("c.c", ("[!ab].c",), (), True),
        ("a.c", ("[!ab].c",), (), False),
        ("x[1].py", ("x\\[1\\].py",), (), True),
        ("a+b(c).py", ("a+b(c).py",), (), True),  # regex characters are literal
        ("tests/test_a.py", ("*.py",), ("tests/",), False),
        ("docs/a.md", ("*.py", "*.md"), (), True),
    ],
)
def test_a_glob_filter_selects_like_gitignore_includes_and_excludes(
    path: str, include: tuple[str, ...], exclude: tuple[str, ...], expected: bool
) -> None:
    assert GlobFilter.of(include, exclude).matches(path) is expected


GITIGNORE_PATHS = [
    "vendor",
    "vendor/x.py",
    "src/vendor/y.py",
    "vendor.py",
    "src/a.py",
    "src/s/a.py",
    "lib/src/a.py",
    "docs/a/b.md",
    "docs",
    "a/b",
    "a/x/y/b",
    "a/b/c",
    "tests/test_x.py",
    "test_y.py",
    "x[1].py",
    "b.c",
]


@pytest.mark.parametrize(
    "glob",
    [
        "vendor",
        "vendor/",
        "/src",
        "src/*.py",
        "*.py",
        "docs/**",
        "**/test_*.py",
        "a/**/b",
        "?.c",
        "[ab].c",
        "x\\[1\\].py",
        "src/**/*.py",
    ],
)
def test_an_exclude_glob_excludes_what_gitignore_would_ignore(glob: str, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    repo.write(".gitignore", glob + "\n")
    ignored = (
        subprocess.run(
            ["git", "check-ignore", "--no-index", "--stdin"],
            cwd=repo.root,
            input="\n".join(GITIGNORE_PATHS).encode(),
            capture_output=True,
        )
        .stdout.decode()
        .split()
    )
    excluded = [p for p in GITIGNORE_PATHS if not GlobFilter.of((), (glob,)).matches(p)]
    assert excluded == ignored


@pytest.mark.parametrize("glob", ["", "/", "!keep.py"])
def test_unusable_globs_are_rejected_naming_them(glob: str) -> None:
    with pytest.raises(ValueError, match=f"glob {glob!r}"):
        GlobFilter.of((glob,), ())


def test_path_scope_holds_files_and_directory_subtrees() -> None:
    scope = PathScope.of(["src/", "README.md", "./docs/a"])
    assert "src/x/y.py" in scope and "README.md" in scope and "docs/a/b" in scope
    assert "srcx/y.py" not in scope and "README.md.bak" not in scope and "docs/ab" not in scope
    assert "anything" in PathScope.of(["."])
