"""Git hooks that tell the daemon a repository changed (commit, merge, checkout, rewrite).

A hook must never slow or fail a git command: it tells the daemon in the background, with a
one-second bound, and ignores every error. A hook that was there before ours is kept beside it
and runs first, with the same arguments and stdin; its exit status stays the hook's.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from codeweir.errors import RepoError

HOOK_NAMES = ("post-commit", "post-merge", "post-checkout", "post-rewrite")
MARKER = "# codeweir-hook: installed by `codeweir hooks install`; reinstalling replaces it"
CHAINED_SUFFIX = ".codeweir-chained"

# Sends one JSON-RPC line and waits (at most a second) for the answer, so the daemon is not
# left answering a closed connection; any failure (no daemon, no socket) is silent.
_SENDER = (
    "import socket,sys;"
    "s=socket.socket(socket.AF_UNIX);s.settimeout(1);s.connect(sys.argv[1]);"
    's.sendall(sys.argv[2].encode()+b"\\n");s.recv(65536)'
)


def hook_script(repo_name: str, socket_path: Path) -> str:
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "sync",
        "params": {"repo": repo_name, "priority": "interactive"},
    }
    line = json.dumps(request, separators=(",", ":"))
    return f"""#!/bin/sh
{MARKER}
# Asks the codeweir daemon to sync repository {json.dumps(repo_name)}.
status=0
if [ -x "$0{CHAINED_SUFFIX}" ]; then
    "$0{CHAINED_SUFFIX}" "$@" || status=$?
fi
python3 -c {shlex.quote(_SENDER)} {shlex.quote(str(socket_path))} {shlex.quote(line)} </dev/null >/dev/null 2>&1 &
exit $status
"""


def hooks_dir(repo_path: Path) -> Path:
    """Where git looks for this repository's hooks (core.hooksPath, a linked worktree's common dir)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--git-path", "hooks"], cwd=repo_path, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RepoError(f"{repo_path}: cannot run git: {exc}") from None
    if result.returncode != 0:
        raise RepoError(f"{repo_path}: not a git repository: {result.stderr.strip()}")
    return repo_path / result.stdout.strip()  # relative to repo_path unless absolute


def install_hooks(repo_path: Path, socket_path: Path, repo_name: str) -> list[Path]:
    """Install codeweir's hooks into the repository at `repo_path`; returns their paths.

    Idempotent: our own hooks are rewritten; a foreign hook is moved to HOOK.codeweir-chained
    and called from ours. Raises RepoError when a foreign hook and a chained one both exist
    (someone replaced our hook), rather than guess which one to keep.
    """
    directory = hooks_dir(repo_path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        installed = []
        for name in HOOK_NAMES:
            hook = directory / name
            _chain_foreign(hook)
            _write_executable(hook, hook_script(repo_name, socket_path))
            installed.append(hook)
    except OSError as exc:
        raise RepoError(f"{repo_path}: cannot install hooks in {directory}: {exc}") from None
    return installed


def _chain_foreign(hook: Path) -> None:
    if not (hook.exists() or hook.is_symlink()) or _is_ours(hook):
        return
    chained = hook.with_name(hook.name + CHAINED_SUFFIX)
    if chained.exists() or chained.is_symlink():
        raise RepoError(
            f"{hook} is not codeweir's and {chained} exists too: merge them into one, remove the other, and install again"
        )
    hook.rename(chained)


def _is_ours(hook: Path) -> bool:
    try:
        with hook.open("rb") as file:
            return MARKER.encode() in file.read(4096)
    except OSError:  # a dangling symlink, unreadable: not ours
        return False


def _write_executable(path: Path, text: str) -> None:
    """Replace `path` atomically: git may run the hook at any moment."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temp, 0o755)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
