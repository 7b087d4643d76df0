"""A model directory: model.onnx and tokenizer.json, and for a built model codeweir-model.json.

A built model's directory (`model_build`) holds all three; a user's (model.path) the first two
and may declare its dimension in the third.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import attrs
import cattrs

from codeweir.errors import ModelError

# Bump when the graph encoder_graph writes changes in a way that changes its outputs.
GRAPH_VERSION = 2
METADATA_FILE = "codeweir-model.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"


@attrs.frozen
class ModelMetadata:
    """codeweir-model.json: what a built model is and how its outputs are pooled."""

    name: str
    source_hash: str
    quantized: bool
    pooling: str
    normalize: bool
    max_tokens: int
    dim: int
    graph_version: int = GRAPH_VERSION
    quantized_ops: tuple[str, ...] = ()  # the ops whose weights are int8, when quantized


_converter = cattrs.Converter(forbid_extra_keys=True)


def read_metadata(directory: Path) -> ModelMetadata:
    path = directory / METADATA_FILE
    try:
        return _converter.structure(json.loads(path.read_text(encoding="utf-8")), ModelMetadata)
    except FileNotFoundError:
        raise ModelError(f"{directory}: missing {METADATA_FILE}") from None
    except (OSError, ValueError, cattrs.BaseValidationError) as exc:
        raise ModelError(f"{path}: unreadable model metadata: {exc}") from None


def write_metadata(directory: Path, meta: ModelMetadata) -> None:
    (directory / METADATA_FILE).write_text(json.dumps(_converter.unstructure(meta), indent=2), encoding="utf-8")


def file_digest(path: Path) -> bytes:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").digest()
