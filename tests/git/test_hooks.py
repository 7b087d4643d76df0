import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
import trio

from codeweir.errors import RepoError
from codeweir.git.hooks import CHAINED_SUFFIX, HOOK_NAMES, install_hooks
from tests.gitrepo import make_repo


@pytest.fixture
def short_dir():
    """A directory short enough for a unix socket path (108 bytes at most)."""
    with tempfile.TemporaryDirectory(prefix="cw-") as directory:
        yield Path(directory)


def write_hook(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def checkout(repo, *args: str) -> subprocess.CompletedProcess:
    """Run git checkout in `repo` and return the finished process, whatever its exit status."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "checkout", *args], cwd=repo.root, env=env, capture_output=True, timeout=30)


def test_git_commands_succeed_when_the_daemon_is_down(tmp_path, short_dir):
    repo = make_repo(tmp_path / "r", {"a.py": "x\n"})
    hooks = install_hooks(repo.root, short_dir / "no-daemon.sock", "r")
    assert sorted(h.name for h in hooks) == sorted(HOOK_NAMES)
    assert all(os.access(h, os.X_OK) for h in hooks)
    repo.write("a.py", "y\n")
    repo.commit("edit")  # raises if git fails
    repo.git("checkout", "-q", "-b", "topic")
    repo.git("commit", "-q", "--amend", "-m", "reworded")


async def test_a_commit_tells_the_daemon_to_sync_the_repo(tmp_path, short_dir):
    repo = make_repo(tmp_path / "r", {"a.py": "x\n"})
    socket_path = short_dir / "codeweir.sock"
    install_hooks(repo.root, socket_path, 'my "repo"')
    listener_socket = trio.socket.socket(trio.socket.AF_UNIX)
    await listener_socket.bind(str(socket_path))
    listener_socket.listen()
    listener = trio.SocketListener(listener_socket)
    repo.write("a.py", "y\n")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, repo.commit, "edit")
        with trio.fail_after(10):
            stream = await listener.accept()
            received = b""
            while not received.endswith(b"\n"):
                received += await stream.receive_some()
            await stream.send_all(b'{"jsonrpc":"2.0","id":1,"result":{"job":"j1"}}\n')
    await listener.aclose()
    assert json.loads(received) == {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "sync",
        "params": {"repo": 'my "repo"', "priority": "interactive"},
    }


def test_an_existing_hook_still_runs_first_with_its_arguments_stdin_and_exit_status(tmp_path, short_dir):
    repo = make_repo(tmp_path / "r", {"a.py": "x\n"})
    hooks = repo.root / ".git" / "hooks"
    write_hook(hooks / "post-checkout", 'echo "$@" > checkout-args\nexit 3\n')
    write_hook(hooks / "post-rewrite", "cat > rewritten\n")
    before = repo.head()
    install_hooks(repo.root, short_dir / "no-daemon.sock", "r")
    assert checkout(repo, "-q", "-b", "topic").returncode == 1  # git checkout fails when its post-checkout hook does
    assert repo.path("checkout-args").read_text().split() == [before, before, "1"]
    repo.commit("amend me", add_all=False)
    amended = repo.head()
    repo.git("commit", "-q", "--amend", "--allow-empty", "-m", "amended")
    assert repo.path("rewritten").read_text().split() == [amended, repo.head()]


def test_installing_again_replaces_only_codeweirs_hooks(tmp_path, short_dir):
    repo = make_repo(tmp_path / "r", {"a.py": "x\n"})
    hooks = repo.root / ".git" / "hooks"
    write_hook(hooks / "post-merge", "echo mine\n")
    first = install_hooks(repo.root, short_dir / "old.sock", "r")
    second = install_hooks(repo.root, short_dir / "new.sock", "r")
    assert first == second
    assert "new.sock" in (hooks / "post-merge").read_text()
    assert (hooks / ("post-merge" + CHAINED_SUFFIX)).read_text() == "#!/bin/sh\necho mine\n"
    assert not (hooks / ("post-commit" + CHAINED_SUFFIX)).exists()
    assert sorted(p.name for p in hooks.iterdir() if not p.name.endswith(".sample")) == sorted(
        [*HOOK_NAMES, "post-merge" + CHAINED_SUFFIX]
    )


def test_a_replaced_hook_with_a_chained_one_left_is_an_error_not_a_guess(tmp_path, short_dir):
    repo = make_repo(tmp_path / "r", {"a.py": "x\n"})
    hooks = repo.root / ".git" / "hooks"
    install_hooks(repo.root, short_dir / "d.sock", "r")
    write_hook(hooks / "post-commit", "echo replaced by another tool\n")
    write_hook(hooks / ("post-commit" + CHAINED_SUFFIX), "echo older\n")
    with pytest.raises(RepoError, match="post-commit is not codeweir's and .*post-commit.codeweir-chained exists"):
        install_hooks(repo.root, short_dir / "d.sock", "r")


def test_hooks_go_where_core_hooks_path_points(tmp_path, short_dir):
    repo = make_repo(tmp_path / "r", {"a.py": "x\n"})
    repo.git("config", "core.hooksPath", "githooks")
    hooks = install_hooks(repo.root, short_dir / "d.sock", "r")
    assert {h.parent for h in hooks} == {repo.root / "githooks"}


def test_installing_outside_a_repository_names_the_problem(tmp_path, short_dir):
    with pytest.raises(RepoError, match="not a git repository"):
        install_hooks(tmp_path, short_dir / "d.sock", "r")
