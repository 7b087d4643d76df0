"""A user's ONNX model directory (model.path), checked: its files, inputs the embedder can feed,
a first output it can pool, and the dimension of that output."""

from __future__ import annotations

from pathlib import Path

from codeweir.embed.model_dir import METADATA_FILE, MODEL_FILE, TOKENIZER_FILE, read_metadata
from codeweir.errors import ModelError

# What the embedder feeds; a model must take the first two and may take the third.
REQUIRED_INPUTS = ("input_ids", "attention_mask")
OPTIONAL_INPUTS = ("token_type_ids",)


def check_model_dir(directory: Path) -> int:
    """The files the embedder reads and a model it can run; returns the embedding dimension."""
    if not directory.is_dir():
        raise ModelError(f"model.path {str(directory)!r} is not a directory")
    for name in (MODEL_FILE, TOKENIZER_FILE):
        if not (directory / name).is_file():
            raise ModelError(f"model.path {str(directory)!r}: missing {name}")
    declared = read_metadata(directory).dim if (directory / METADATA_FILE).exists() else None
    return _check_model(directory / MODEL_FILE, declared)


def _check_model(path: Path, declared_dim: int | None) -> int:
    """Inputs and outputs the embedder can feed and pool; returns the embedding dimension."""
    import onnx  # here, not at the top: the daemon checks a user's model rarely, and onnx costs it 13 MiB

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError...
        raise ModelError(f"{path}: not a readable ONNX model: {exc}") from None
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    for name in REQUIRED_INPUTS:
        if name not in inputs:
            raise ModelError(f"{path}: model has no {name!r} input (inputs: {', '.join(inputs) or 'none'})")
    unexpected = [name for name in inputs if name not in REQUIRED_INPUTS + OPTIONAL_INPUTS]
    if unexpected:
        raise ModelError(
            f"{path}: unexpected model input(s) {', '.join(unexpected)}; "
            f"codeweir feeds {', '.join(REQUIRED_INPUTS + OPTIONAL_INPUTS)}"
        )
    if not model.graph.output:
        raise ModelError(f"{path}: model has no outputs")
    output = model.graph.output[0]
    dims = output.type.tensor_type.shape.dim
    if len(dims) not in (2, 3):
        raise ModelError(
            f"{path}: first output {output.name!r} has rank {len(dims)}; expected token embeddings "
            "(batch, tokens, dim) or sentence embeddings (batch, dim)"
        )
    dim = dims[-1].dim_value or declared_dim
    if not dim:
        raise ModelError(f"{path}: output {output.name!r} has no fixed last dimension and no {METADATA_FILE} declares it")
    if declared_dim is not None and dim != declared_dim:
        raise ModelError(f"{path}: output dimension {dim} but {METADATA_FILE} declares {declared_dim}")
    return dim
