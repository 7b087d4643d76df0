"""Real git repositories in temporary directories, driven by the git CLI.

    repo = make_repo(tmp_path / "r", {"a.py": "print(1)\\n", "docs/x.md": "# x\\n"})
    repo.write("a.py", "print(2)\\n")
    sha = repo.commit("edit a")
    repo.config()            # a RepoConfig for codeweir pointing at it

Commits have a fixed author and date, and no global or system git config is read, so the same
steps give the same commit ids on every machine.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import attrs

from codeweir.config import RepoConfig

_GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}


@attrs.frozen
class GitRepo:
    root: Path  # the worktree, or the repository itself when bare

    def git(self, *args: str) -> str:
        """Run `git ARGS` in the repository and return its stdout, stripped."""
        result = subprocess.run(
            ["git", *args],
            cwd=self.root,
            env={**os.environ, **_GIT_ENV},
            capture_output=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode().strip()

    def path(self, relative: str) -> Path:
        return self.root / relative

    def write(self, relative: str, content: str | bytes) -> Path:
        """Write a file (making its directories); str is written as UTF-8."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        return target

    def write_files(self, files: Mapping[str, str | bytes]) -> None:
        for relative, content in files.items():
            self.write(relative, content)

    def remove(self, relative: str) -> None:
        (self.root / relative).unlink()

    def symlink(self, relative: str, target: str) -> Path:
        link = self.root / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
        return link

    def commit(self, message: str = "commit", *, add_all: bool = True) -> str:
        """Commit (everything in the worktree, by default) and return the new commit's sha."""
        if add_all:
            self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def hash_object(self, relative: str) -> str:
        """The blob id `git hash-object` prints for a worktree file."""
        return self.git("hash-object", "--", relative)

    def add_gitlink(self, relative: str, commit: str) -> None:
        """Stage a submodule entry (mode 160000) at `relative` pointing at `commit`, with the
        empty directory an uninitialised submodule leaves (so `commit()` keeps the entry)."""
        (self.root / relative).mkdir(parents=True, exist_ok=True)
        self.git("update-index", "--add", "--cacheinfo", f"160000,{commit},{relative}")

    def clone_bare(self, dest: Path) -> GitRepo:
        subprocess.run(
            ["git", "clone", "-q", "--bare", str(self.root), str(dest)],
            env={**os.environ, **_GIT_ENV},
            check=True,
            capture_output=True,
        )
        return GitRepo(dest)

    def config(self, name: str = "repo", **fields: object) -> RepoConfig:
        """A codeweir RepoConfig for this repository; `fields` set include, exclude, ref."""
        return RepoConfig(name=name, path=str(self.root), **fields)  # type: ignore[arg-type]


def make_repo(root: Path, files: Mapping[str, str | bytes] | None = None, *, commit: bool = True) -> GitRepo:
    """A new repository at `root` on branch main, with `files` written and (by default) committed."""
    root.mkdir(parents=True, exist_ok=True)
    repo = GitRepo(root)
    repo.git("init", "-q", "-b", "main")
    if files:
        repo.write_files(files)
        if commit:
            repo.commit("initial")
    return repo
