"""The systemd units in systemd/: valid, locked down, and agreeing with codeweir on paths.

`systemd-analyze` (Debian package systemd) checks them where it is installed; .ci/check-units
installs it and runs this module.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codeweir.config import default_socket_path

UNITS = Path(__file__).resolve().parents[1] / "systemd"
SYSTEM_UNITS = sorted(p for p in UNITS.glob("codeweir*") if p.suffix in (".service", ".socket", ".timer"))
USER_UNITS = sorted((UNITS / "user").glob("codeweir*"))
MAX_EXPOSURE = 2.0


def settings(unit: Path) -> dict[str, list[str]]:
    """A unit file as {"Section.Key": [values in order]}."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key}", []).append(value)
    return found


def the(unit: Path, key: str) -> str:
    [value] = settings(unit)[key]
    return value


def environment(unit: Path) -> dict[str, str]:
    return dict(assignment.split("=", 1) for assignment in settings(unit).get("Service.Environment", []))


@pytest.fixture(scope="module")
def analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not on PATH (Debian package systemd; .ci/check-units installs it)")
    return path


@pytest.fixture
def runnable_units(tmp_path: Path) -> Path:
    """A copy of systemd/ whose ExecStart= names this checkout's codeweir: verify checks it exists."""
    codeweir = Path(sys.executable).parent / "codeweir"
    assert codeweir.exists(), f"{codeweir} is missing: install the package (./dev setup)"
    copy = tmp_path / "systemd"
    shutil.copytree(UNITS, copy)
    for unit in copy.rglob("*.service"):
        text = re.sub(r"^ExecStart=\S*codeweir ", f"ExecStart={codeweir} ", unit.read_text(), flags=re.M)
        unit.write_text(text)
    return copy


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)


def test_system_units_verify_without_a_warning(analyze: str, runnable_units: Path) -> None:
    units = [runnable_units / unit.name for unit in SYSTEM_UNITS]
    result = run(analyze, "verify", *units)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    print(f"systemd-analyze verify: {len(units)} system units, no warnings")


def test_user_units_verify_without_a_warning(analyze: str, runnable_units: Path, tmp_path: Path) -> None:
    units = [runnable_units / "user" / unit.name for unit in USER_UNITS]
    # A user manager needs a runtime directory, even to verify.
    result = run(analyze, "--user", "verify", *units, env={"XDG_RUNTIME_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    print(f"systemd-analyze --user verify: {len(units)} user units, no warnings")


@pytest.mark.parametrize("service", ["codeweir.service", "codeweir-resync.service"])
def test_service_exposure_is_at_most_2(analyze: str, service: str) -> None:
    result = run(analyze, "security", "--offline=yes", UNITS / service)
    match = re.search(rf"Overall exposure level for {re.escape(service)}: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match[1])
    print(f"systemd-analyze security --offline=yes systemd/{service}: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE


def test_there_is_a_user_unit_for_every_system_unit() -> None:
    assert [u.name for u in USER_UNITS] == [u.name for u in SYSTEM_UNITS]


@pytest.mark.parametrize("unit", ["codeweir.service", "user/codeweir.service"])
def test_daemon_units_wait_for_ready_and_have_a_watchdog(unit: str) -> None:
    path = UNITS / unit
    assert the(path, "Service.Type") == "notify"
    assert the(path, "Service.NotifyAccess") == "main"
    assert int(the(path, "Service.WatchdogSec")) > 0


def test_system_socket_is_where_the_daemon_binds_without_activation() -> None:
    runtime_dir = "/run/" + the(UNITS / "codeweir.service", "Service.RuntimeDirectory")
    socket_path = the(UNITS / "codeweir.socket", "Socket.ListenStream").replace("%t", "/run")
    assert socket_path == str(default_socket_path({"RUNTIME_DIRECTORY": runtime_dir}))
    assert environment(UNITS / "codeweir-resync.service")["CODEWEIR_SOCKET"] == socket_path


def test_user_socket_is_where_the_cli_looks_by_default() -> None:
    runtime_dir = "/run/user/1000"
    socket_path = the(UNITS / "user/codeweir.socket", "Socket.ListenStream").replace("%t", runtime_dir)
    assert socket_path == str(default_socket_path({"XDG_RUNTIME_DIR": runtime_dir}))
    for unit in ("user/codeweir.service", "user/codeweir-resync.service"):
        assert environment(UNITS / unit)["CODEWEIR_SOCKET"].replace("%t", runtime_dir) == socket_path


def test_crontab_example_syncs_everything_quietly() -> None:
    lines = [line for line in (UNITS / "crontab.example").read_text().splitlines() if line and line[0] != "#"]
    jobs = [line.split(maxsplit=5) for line in lines if not re.match(r"^\w+=", line)]
    assert jobs, "no job line"
    for *when, command in jobs:
        assert len(when) == 5, f"not five time fields: {when}"
        assert command.endswith("codeweir sync --all --quiet")
    socket_path = dict(line.split("=", 1) for line in lines if re.match(r"^\w+=", line))["CODEWEIR_SOCKET"]
    assert socket_path == str(default_socket_path({"XDG_RUNTIME_DIR": "/run/user/1000"}))
