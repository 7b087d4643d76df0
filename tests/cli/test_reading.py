"""`codeweir read` and `codeweir refs` (cli/reading.py) against a real daemon on a real repository."""

from __future__ import annotations

import json

import pytest
import trio

from codeweir.cli import main as cli
from codeweir.cli.reading import parse_location
from codeweir.config import load_config
from codeweir.protocol_params import WaitParams
from codeweir.service.daemon import run_daemon
from tests.gitrepo import make_repo
from tests.service.test_daemon_process import write_config

SOURCE = "def area(w, h):\n    return w * h\n\n\ndef square(s):\n    return area(s, s)\n"


@pytest.fixture
async def socket(nursery, tmp_path):
    repo = make_repo(tmp_path / "geo", {"shapes.py": SOURCE, "use.py": "from shapes import area\nprint(area(2, 3))\n"})
    home = tmp_path / "home"
    home.mkdir()
    path = write_config(home / "config.toml", home, {"geo": f'path = "{repo.root}"'})
    daemon = await nursery.start(run_daemon, load_config(path), path)
    await daemon.wait(WaitParams(), None)
    yield home / "cw.sock"
    daemon.shutdown()


async def codeweir(socket, *argv: str) -> int:
    return await trio.to_thread.run_sync(cli.main, [*argv, "--socket", str(socket)])


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("geo:shapes.py:2-5", {"repo": "geo", "path": "shapes.py", "start": 2, "end": 5}),
        ("geo:shapes.py:3", {"repo": "geo", "path": "shapes.py", "start": 3, "end": None}),
        ("geo:shapes.py", {"repo": "geo", "path": "shapes.py", "start": 1, "end": None}),
        ("geo:a:b.py:7-", {"repo": "geo", "path": "a:b.py", "start": 7, "end": None}),
    ],
)
def test_a_location_is_repo_path_and_an_optional_line_range(text, params):
    assert parse_location(text) == params


async def test_read_prints_the_lines_numbered(socket, capsys):
    assert await codeweir(socket, "read", "geo:shapes.py:5-6") == 0
    assert capsys.readouterr().out == "5  def square(s):\n6      return area(s, s)\n"


async def test_read_json_prints_the_daemons_answer(socket, capsys):
    assert await codeweir(socket, "read", "geo:shapes.py:1-2", "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["text"] == "def area(w, h):\n    return w * h" and answer["total_lines"] == 6 and answer["stale"] is False


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["read", "shapes.py"], 2, "expected REPO:PATH[:START[-END]]"),
        (["read", "geo:shapes.py:9-2"], 2, "START <= END"),
        (["read", "geo:../etc/passwd"], 1, "has a '..' component"),
        (["read", "nope:shapes.py"], 1, "no repository named 'nope'"),
    ],
)
async def test_read_refuses_bad_locations(socket, capsys, argv, code, message):
    assert await codeweir(socket, *argv) == code
    assert message in capsys.readouterr().err


async def test_refs_prints_each_file_with_its_lines_and_columns(socket, capsys):
    assert await codeweir(socket, "refs", "area") == 0
    out = capsys.readouterr().out
    assert "defined at geo:shapes.py:1  area (function)" in out
    assert "geo:shapes.py\n  6:12  return area(s, s)" in out
    assert "geo:use.py\n  1:20  from shapes import area\n  2:7  print(area(2, 3))" in out
    assert "3 of 3 references (search-based" in out
