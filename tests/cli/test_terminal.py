"""What the CLI prints is shown, never obeyed: a repository with a file named with ANSI escapes
and holding them, indexed by a real daemon, searched with the real `codeweir` command on what
rich takes for a terminal. Only rich's own colour codes reach the terminal; the file's escapes
show as `\\xHH` text."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from codeweir.cli.terminal import json_line, printable
from tests.gitrepo import make_repo
from tests.service import test_daemon_process
from tests.service.test_daemon_process import write_config

TITLE = "\x1b]0;pwned\x07"  # sets the terminal's title
CLEAR = "\x1b[2J"  # clears the screen
CSI = "\x9b31m"  # C1: a CSI in one character, on terminals that take 8-bit controls
NAME = f"evil{TITLE}{CLEAR}.py"
CONTENT = f'def ansi_payload():\n    return "{TITLE}{CLEAR}{CSI}x\x08\x7f"\n'

SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own styles
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

short_dir = test_daemon_process.short_dir  # fixtures of the daemon's process tests
start = test_daemon_process.start


def codeweir(socket: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "120"}  # rich writes as to a terminal
    command = [sys.executable, "-m", "codeweir.cli.main", *argv, "--socket", str(socket)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def sent_to_the_terminal(text: str) -> list[str]:
    """The control characters in `text` other than rich's styles, tab and newline."""
    return CONTROL.findall(SGR.sub("", text))


@pytest.fixture
def socket(tmp_path, short_dir, start) -> Path:
    repo = make_repo(tmp_path / "repo")
    (repo.root / NAME).write_text(CONTENT)
    repo.commit(f"add {TITLE} a payload")
    daemon = start(write_config(short_dir / "config.toml", short_dir, {"proj": f'path = "{repo.root}"'}))
    daemon.expect("STATUS=idle", where=lambda line: "1 indexed" in line)
    yield short_dir / "cw.sock"
    daemon.signal(signal.SIGTERM)
    assert daemon.exit_code() == 0


def test_a_file_named_and_filled_with_ansi_escapes_reaches_the_terminal_as_text(socket):
    search = codeweir(socket, "search", "ansi_payload", "--mode", "lexical")
    assert search.returncode == 0, search.stderr
    assert sent_to_the_terminal(search.stdout) == [] and SGR.search(search.stdout)  # styled, nothing obeyed
    shown = SGR.sub("", search.stdout)
    assert r"evil\x1b]0;pwned\x07\x1b[2J.py" in shown  # the name
    assert r"\x1b]0;pwned" in shown and r"\x1b[2J\x9b31mx" in shown  # the content (rich drops BEL itself)

    for argv in (["status"], ["jobs"], ["search", "payload", "--mode", "commits"]):
        shown = codeweir(socket, *argv)
        assert shown.returncode == 0 and sent_to_the_terminal(shown.stdout + shown.stderr) == [], argv


def test_errors_and_json_output_carry_no_control_characters_and_json_stays_the_same_value(socket):
    failed = codeweir(socket, "search", "x", "--repo", f"nope{CLEAR}")
    assert failed.returncode != 0 and "nope" in failed.stderr
    assert sent_to_the_terminal(failed.stderr) == []

    as_json = codeweir(socket, "search", "ansi_payload", "--mode", "lexical", "--json")
    assert as_json.returncode == 0 and CONTROL.findall(as_json.stdout.replace("\n", "")) == []
    [hit] = [json.loads(line) for line in as_json.stdout.splitlines() if line.startswith('{"repo"')] or [
        json.loads(as_json.stdout)["results"][0]
    ]
    assert hit["path"] == r"evil\x1b]0;pwned\x07\x1b[2J.py" and f"{TITLE}{CLEAR}{CSI}" in hit["snippet"]


def test_printable_escapes_every_control_character_but_tab_and_newline():
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("\x00\x1b[2J\x7f\x9b\u00a0é") == "\\x00\\x1b[2J\\x7f\\x9b\u00a0é"
    value = {"snippet": f"{TITLE}{CSI}\x7f", "path": "p"}
    assert CONTROL.findall(json_line(value)) == [] and json.loads(json_line(value)) == value
