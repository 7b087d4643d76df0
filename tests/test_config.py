import subprocess
from pathlib import Path

import pytest

from codeweir.config import Limits, default_socket_path, default_state_dir, load_config, parse_config
from codeweir.errors import ConfigError
from codeweir.git.repo import find_repository_root


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_full_config_is_read_with_relative_paths_resolved(tmp_path):
    path = write(
        tmp_path,
        """
state_dir = "state"
socket = "/run/x.sock"
[[repository]]
name = "app"
path = "src/app"
include = ["**/*.py"]
exclude = ["vendor/**"]
[[repository]]
name = "lib"
path = "/abs/lib"
ref = "main"
[limits]
files_in_flight = 3
commit_every_seconds = 0.5
[model]
pooling = "cls"
""",
    )
    config = load_config(path)
    assert [r.name for r in config.repositories] == ["app", "lib"]
    assert config.repositories[0].path == str((tmp_path / "src/app").resolve())
    assert config.repositories[0].include == ("**/*.py",)
    assert config.repositories[1].ref == "main"
    assert config.limits.files_in_flight == 3
    assert config.limits.commit_every_seconds == 0.5
    assert config.model.pooling == "cls"
    assert config.socket == "/run/x.sock"


@pytest.mark.parametrize(
    "text, field",
    [
        ("[limits]\nfiles_in_flight = 0\n", "limits.files_in_flight"),
        ("[limits]\nfiles_in_flight = 'many'\n", "limits.files_in_flight"),
        ("[limits]\nfile_in_flight = 2\n", "file_in_flight"),
        ("[limits]\ngit_threads = 0\n", "limits.git_threads"),
        ("[limits]\nsearch_threads = -1\n", "limits.search_threads"),
        ("colour = 'blue'\n", "colour"),
        ("[[repository]]\npath = '/x'\n", "name"),
        ("[[repository]]\nname = 'a'\npath = '/x'\n[[repository]]\nname = 'a'\npath = '/y'\n", "repositories[1].name"),
        ("[model]\npooling = 'max'\n", "pooling"),
        ("[[repository]]\nname = 'a'\npath = '/x'\nrefs = ['main', '']\n", "refs"),
        ("[[repository]]\nname = 'a'\npath = '/x'\nrefs = 'main'\n", "refs"),
    ],
)
def test_bad_config_error_names_the_field(tmp_path, text, field):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert field in str(info.value)
    assert str(tmp_path / "config.toml") in str(info.value)


def test_the_thread_limits_default_to_two_git_and_four_search_threads(tmp_path):
    assert (Limits().git_threads, Limits().search_threads) == (2, 4)
    limits = load_config(write(tmp_path, "[limits]\ngit_threads = 1\nsearch_threads = 8\n")).limits
    assert (limits.git_threads, limits.search_threads) == (1, 8)


def test_invalid_toml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[limits\n"))


def test_explicit_missing_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_no_config_indexes_the_repository_it_is_started_in(tmp_path):
    repo = tmp_path / "proj"
    (repo / "sub").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "st"), "XDG_RUNTIME_DIR": str(tmp_path / "rt")}
    config = load_config(None, started_in=find_repository_root(repo / "sub"), env=env)
    assert [(r.name, r.path) for r in config.repositories] == [("proj", str(repo.resolve()))]
    assert config.state_dir == str(tmp_path / "st" / "codeweir")
    assert config.socket == str(tmp_path / "rt" / "codeweir.sock")


def test_no_config_outside_a_repository_has_no_repositories(tmp_path):
    env = {"HOME": str(tmp_path)}
    assert find_repository_root(tmp_path) is None
    assert load_config(None, started_in=None, env=env).repositories == ()


def test_defaults_follow_systemd_then_xdg_then_a_private_fallback(tmp_path):
    assert default_state_dir({"STATE_DIRECTORY": "/var/lib/codeweir"}) == Path("/var/lib/codeweir")
    assert default_state_dir({"HOME": "/home/u"}) == Path("/home/u/.local/state/codeweir")
    assert default_socket_path({"RUNTIME_DIRECTORY": "/run/codeweir"}) == Path("/run/codeweir/codeweir.sock")
    assert default_socket_path({}).parent.name.startswith("codeweir-")


def test_parse_config_expands_user_paths(tmp_path):
    config = parse_config({"state_dir": "~/s"}, base_dir=tmp_path, env={"HOME": str(tmp_path)})
    assert not config.state_dir.startswith("~")
