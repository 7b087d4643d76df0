"""A newcomer follows the README: `codeweir daemon` started in a repository with no config, then
each `codeweir …` command of the README's sh blocks, run as written, its answer checked.

The commands are read out of README.md when the tests are collected, so editing the README
changes what runs here: a search the README gains must find something in the repository below
(EXPECTED names what), a command of a kind this file does not know fails until it is checked.
Nothing sleeps to wait: the daemon's readiness is its sd_notify datagram, the index's and the
vectors' the daemon's own `wait`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import attrs
import pytest
from rich.cells import cell_len

from codeweir.cli.main import build_parser
from codeweir.client import Client
from codeweir.git.hooks import HOOK_NAMES
from codeweir.globs import GlobFilter
from codeweir.search.query import parse_query
from tests.gitrepo import GitRepo, make_repo
from tests.service.test_daemon_process import DEADLINE, Notifications

README = Path(__file__).resolve().parents[1] / "README.md"
PROGRAMS = (".venv/bin/codeweir", "codeweir")
NOT_RUN = (("model", "install"),)  # the one command that uses the network
# The README's parts a newcomer follows first: its opening (start the daemon, status, search, sync),
# searching in every mode, and keeping the index fresh (hooks).
SECTIONS = ("", "Searching", "Keeping the index fresh")
COLUMNS = 80

# A small Go project with something for each search the README shows.
FILES = {
    "time/format.go": """package time

// ParseDuration parses a duration string such as "300ms", "-1.5h" or "2h45m".
func ParseDuration(s string) (Duration, error) {
\td, err := parseUnits(s)
\tif err != nil {
\t\treturn 0, errors.New("time: invalid duration " + quote(s))
\t}
\treturn d, nil
}
""",
    "vendor/golang.org/x/units/duration.go": """package units

// ParseDuration parses a duration with units, vendored.
func ParseDuration(text string) (int64, error) {
\treturn parse(text)
}
""",
    "net/dial.go": """package net

// Dial connects to the address on the named network: it opens a TCP or UDP connection to a
// remote host and returns it.
func Dial(network, address string) (Conn, error) {
\tvar d Dialer
\treturn d.Dial(network, address)
}
""",
    "net/http/server.go": """package http

// A Server defines parameters for running an HTTP server.
type Server struct {
\tAddr    string
\tHandler Handler
}

// ListenAndServe listens on the TCP network address srv.Addr and then serves requests.
func (srv *Server) ListenAndServe() error {
\tln, err := net.Listen("tcp", srv.Addr)
\tif err != nil {
\t\treturn err
\t}
\treturn srv.Serve(ln)
}
""",
    "bufio/reader.go": """package bufio

// Reader implements buffering for an io.Reader object.
type Reader struct {
\tbuf  []byte
\trd   io.Reader
\tr, w int
}

// Read reads data into p, returning the number of bytes read.
func (b *Reader) Read(p []byte) (n int, err error) {
\tn = copy(p, b.buf[b.r:b.w])
\tb.r += n
\treturn n, nil
}
""",
}
FIX = "net/http: fix race in connection pool shutdown"

# What each search of the README finds first in this repository: a path, or a commit's summary.
EXPECTED = {
    "parse duration": "time/format.go",
    "open a network connection": "net/dial.go",
    "sym:Server": "net/http/server.go",
    "parse duration lang:go -path:vendor/**": "time/format.go",
    '"err != nil" path:net/http/**': "net/http/server.go",
    r"func \(\w+ \*Reader\) Read lang:go": "bufio/reader.go",
    "sym:Reader kind:struct": "bufio/reader.go",
    "fix race author:alice after:2024-01-01": FIX,
}


def readme_sections() -> dict[str, str]:
    """The README's text by `## ` heading ("" for the text before the first)."""
    parts = re.split(r"^## (.+)$", README.read_text(encoding="utf-8"), flags=re.M)
    return {"": parts[0], **dict(zip(parts[1::2], parts[2::2]))}


def readme_commands() -> list[list[str]]:
    """Every `codeweir …` line of the sh blocks of SECTIONS, in order, as argv after the program."""
    sections = readme_sections()
    assert set(SECTIONS) <= set(sections), f"README.md has no section {set(SECTIONS) - set(sections)}"
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", "".join(sections[name] for name in SECTIONS), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv[:1] and argv[0] in PROGRAMS and argv[1:2] != ["daemon"] and tuple(argv[1:3]) not in NOT_RUN:
                commands.append(argv[1:])
    return commands


COMMANDS = readme_commands()
# Where what the README promises is not what codeweir does yet: each must be fixed, then removed
# from here (strict: the test fails once it works).
DRIFT: dict[str, str] = {}


def test_the_readme_starts_the_daemon_then_shows_status_search_and_sync():
    text = README.read_text(encoding="utf-8")
    assert "`.venv/bin/codeweir daemon`" in text and "with no config it indexes the repository it is started in" in text
    assert {"status", "search", "sync", "jobs"} <= {argv[0] for argv in COMMANDS}


@attrs.frozen
class Newcomer:
    home: Path
    repo: GitRepo
    env: dict[str, str]
    socket: Path

    def codeweir(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "codeweir.cli.main", *argv],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )


def make_project(root: Path) -> GitRepo:
    repo = make_repo(root, FILES)
    repo.write("net/http/server.go", FILES["net/http/server.go"].replace("\tAddr ", "\tmu      sync.Mutex\n\tAddr "))
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", FIX, "--author=Alice Liddell <alice@example.com>", "--date=2024-03-02T14:05:00Z")
    return repo


@pytest.fixture(scope="module")
def newcomer() -> Iterator[Newcomer]:
    """`codeweir daemon` started in a fresh repository, with no config and every XDG directory in
    a temporary one, once its first index and vectors are complete."""
    home = Path(tempfile.mkdtemp(prefix="cw-"))  # short: the socket's path fits in sun_path
    repo = make_project(home / "project")
    (home / "run").mkdir(mode=0o700)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CODEWEIR_", "XDG_", "LISTEN_", "NOTIFY_"))
        and key not in ("STATE_DIRECTORY", "RUNTIME_DIRECTORY", "COLUMNS")
    }
    env.update(
        HOME=str(home / "home"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_RUNTIME_DIR=str(home / "run"),
        COLUMNS=str(COLUMNS),
    )
    notifications = Notifications(home / "notify.sock", lambda: daemon.poll() is None)
    log = home / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "codeweir.cli.main", "daemon"],
            cwd=repo.root,
            env={**env, "NOTIFY_SOCKET": str(notifications.path)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            notifications.expect("READY=1")
            socket = home / "run" / "codeweir.sock"
            waited = Client(socket, timeout=DEADLINE).call("wait", {"vectors": True, "timeout": DEADLINE})
            assert waited["done"], waited
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ndaemon log:\n{log.read_text(errors='replace')[-3000:]}") from None
        yield Newcomer(home, repo, env, socket)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=DEADLINE)
        finally:
            notifications.close()
            shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(argv, marks=[pytest.mark.xfail(reason=DRIFT[argv[-1]], strict=True)] if argv[-1] in DRIFT else [])
        for argv in COMMANDS
    ],
    ids=shlex.join,
)
def test_each_readme_command_answers_as_the_readme_says(newcomer, argv):
    check = CHECKS.get(argv[0])
    if check is None:
        pytest.fail(f"the README runs `codeweir {argv[0]}`, which this test cannot check yet: add a check to CHECKS")
    check(newcomer, [newcomer.repo.root.name if arg == "REPO" else arg for arg in argv])


def test_wait_vectors_returns_once_every_chunk_is_embedded(newcomer):
    answered = newcomer.codeweir("wait", "--vectors")
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.startswith("every repository is fully indexed and embedded")


# -- the checks, one per command ---------------------------------------------------------------------


def ran(newcomer: Newcomer, argv: list[str], *, fits: bool = False) -> str:
    """What the command printed; `fits`: in lines no wider than the terminal (tables, hits)."""
    answered = newcomer.codeweir(*argv)
    assert answered.returncode == 0, f"codeweir {shlex.join(argv)} exited {answered.returncode}: {answered.stderr}"
    too_wide = [line for line in answered.stdout.splitlines() if cell_len(line) > COLUMNS]
    assert not (fits and too_wide), f"wider than {COLUMNS} columns: {too_wide}"
    return answered.stdout


def check_status(newcomer: Newcomer, argv: list[str]) -> None:
    out = ran(newcomer, argv, fits=True)
    assert "all-minilm-l6-v2" in out.lower() and "0 running, 0 queued" in out, out
    row = next(line for line in out.splitlines() if line.startswith(newcomer.repo.root.name))
    assert row.split()[1:4] == [f"{len(FILES)}/{len(FILES)}", row.split()[2], "100%"], out  # files, chunks, embedded


def check_search(newcomer: Newcomer, argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    expected = EXPECTED.get(args.query)
    assert expected is not None, f"the README searches {args.query!r}: add what it finds to FILES and EXPECTED"
    query = parse_query(args.query, regex=args.mode == "regex")
    out = ran(newcomer, argv, fits=not getattr(args, "json", False))
    if getattr(args, "json", False):
        hits = [json.loads(line) for line in out.splitlines()]
    else:
        summary = out.splitlines()[-1]
        assert re.fullmatch(r"\d+ results? in [\d.]+ ms \(\w+\)", summary), out
        first = out.splitlines()[0]
        assert expected in first or (args.mode == "commits" and "Alice Liddell" in first), out
        hits = [json.loads(line) for line in ran(newcomer, [*argv, "--json"]).splitlines()]
    assert 1 <= len(hits) <= args.limit
    if args.mode == "commits":
        assert hits[0]["summary"] == expected
        for hit in hits:
            assert all(author in hit["author"].lower() for author in query.authors)
            assert query.after is None or datetime.fromisoformat(hit["date"]).timestamp() >= query.after
        return
    assert hits[0]["path"] == expected, hits
    assert query.symbol is None or hits[0]["symbol"].split(".")[-1] == query.symbol  # then prefixes, near names
    for hit in hits:
        lang = args.lang or query.lang
        assert lang is None or hit["language"] == lang
        assert query.path is None or GlobFilter.of([query.path], []).matches(hit["path"])
        assert not query.not_paths or GlobFilter.of([], query.not_paths).matches(hit["path"])
        assert query.kind is None or hit["kind"] == query.kind
        assert all(literal.lower() in hit["snippet"].lower() for literal in query.literals)
        assert not query.pattern or re.search(query.pattern, hit["snippet"])


def check_sync(newcomer: Newcomer, argv: list[str]) -> None:
    out = ran(newcomer, argv)
    assert re.search(rf"^{newcomer.repo.root.name}: job j\d+ completed", out, re.M), out


def check_jobs(newcomer: Newcomer, argv: list[str]) -> None:
    out = ran(newcomer, argv, fits=True)
    assert out.splitlines()[0].split() == ["job", "repo", "state", "since", "took", "result"]
    assert "completed" in out


def check_model(newcomer: Newcomer, argv: list[str]) -> None:
    out = ran(newcomer, argv)
    assert "384" in out and "CPUExecutionProvider" in out and str(newcomer.home / "state" / "codeweir" / "models") in out


def check_hooks(newcomer: Newcomer, argv: list[str]) -> None:
    out = ran(newcomer, argv)  # the daemon has no config file: the CLI asks it where the repository is
    hooks = newcomer.repo.root / ".git" / "hooks"
    assert out.startswith(f"installed git hooks for {newcomer.repo.root.name} in {hooks}"), out
    assert "note:" not in out
    for name in HOOK_NAMES:
        assert str(newcomer.socket) in (hooks / name).read_text()


def check_wait(newcomer: Newcomer, argv: list[str]) -> None:
    assert ran(newcomer, argv).startswith("every repository is fully indexed")


CHECKS = {
    "status": check_status,
    "search": check_search,
    "sync": check_sync,
    "jobs": check_jobs,
    "model": check_model,
    "hooks": check_hooks,
    "wait": check_wait,
}
