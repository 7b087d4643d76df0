"""model_check: a user's model directory the embedder cannot use is a ModelError naming why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import attrs
import onnx
import pytest
from onnx import TensorProto, helper

from codeweir.embed.model_build import default_model_source
from codeweir.embed.model_check import check_model_dir
from codeweir.embed.model_dir import ModelMetadata
from codeweir.errors import ModelError


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
        check_model_dir(tmp_path / "model")


def test_a_declared_dimension_the_output_contradicts_is_a_model_error(tmp_path: Path) -> None:
    directory = tiny_model(tmp_path / "model", output_shape=("batch", "tokens", 8))
    meta = ModelMetadata(name="x", source_hash="0", quantized=False, pooling="mean", normalize=True, max_tokens=16, dim=16)
    (directory / "codeweir-model.json").write_text(json.dumps(attrs.asdict(meta)))
    with pytest.raises(ModelError, match="output dimension 8 but codeweir-model.json declares 16"):
        check_model_dir(directory)
