"""A BERT checkpoint as sentence-transformers saves it (model.safetensors, config.json,
tokenizer.json, the pooling and module configs): what it says, its weights, its hash.

What `model_build` converts and `model_install` unpacks; ModelError says why one cannot be.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from codeweir.embed.model_dir import GRAPH_VERSION, TOKENIZER_FILE, file_digest
from codeweir.errors import ModelError

if TYPE_CHECKING:
    from codeweir.embed.encoder_graph import Weights

_SOURCE_FILES = (
    "model.safetensors",
    "config.json",
    TOKENIZER_FILE,
    "sentence_bert_config.json",
    "modules.json",
    "1_Pooling/config.json",
)


def is_checkpoint(directory: Path) -> bool:
    return all((directory / name).is_file() for name in ("model.safetensors", "config.json", TOKENIZER_FILE))


def check_weights(source: Path) -> None:
    """model.safetensors is readable and holds a BERT encoder (its header only; the weights are read at build)."""
    from safetensors import SafetensorError, safe_open

    path = source / "model.safetensors"
    try:
        with safe_open(str(path), framework="numpy") as weights:
            names = {name.removeprefix("bert.") for name in weights.keys()}  # noqa: SIM118 (a safetensors handle, not iterable)
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{path}: unreadable: {exc}") from None
    if "embeddings.word_embeddings.weight" not in names:
        raise ModelError(f"{path}: not a BERT encoder (no embeddings.word_embeddings.weight)")


def source_hash(source: Path) -> str:
    """Hash of every checkpoint file that shapes the vectors, and of this builder's graph."""
    digest = hashlib.sha256(f"codeweir-graph-{GRAPH_VERSION}".encode())
    for name in _SOURCE_FILES:
        path = source / name
        if path.is_file():
            digest.update(name.encode() + b"\0")
            digest.update(file_digest(path))
    return digest.hexdigest()


def read_checkpoint_settings(source: Path) -> dict:
    def read(name: str, required: bool = True) -> dict:
        path = source / name
        if not path.is_file():
            if required:
                raise ModelError(f"{source}: missing {name}")
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable: {exc}") from None

    for name in ("model.safetensors", TOKENIZER_FILE):
        if not (source / name).is_file():
            raise ModelError(f"{source}: missing {name}")
    config = read("config.json")
    if config.get("model_type", "bert") != "bert" or config.get("hidden_act", "gelu") != "gelu":
        raise ModelError(f"{source}/config.json: only BERT encoders with gelu are supported")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ModelError(f"{source}/config.json: only absolute position embeddings are supported")
    pooling_cfg = read("1_Pooling/config.json", required=False)
    if pooling_cfg.get("pooling_mode_cls_token"):
        pooling = "cls"
    elif pooling_cfg.get("pooling_mode_mean_tokens", True):
        pooling = "mean"
    else:
        raise ModelError(f"{source}/1_Pooling/config.json: only mean or cls pooling is supported")
    modules = read("modules.json", required=False)
    sbert = read("sentence_bert_config.json", required=False)
    return {
        "layer_norm_eps": float(config.get("layer_norm_eps", 1e-12)),
        "num_heads": int(config["num_attention_heads"]),
        "dim": int(config["hidden_size"]),
        "pooling": pooling,
        "normalize": any(m.get("type", "").endswith(".Normalize") for m in modules),
        "max_tokens": int(sbert.get("max_seq_length") or config.get("max_position_embeddings", 512)),
    }


def checkpoint_name(source: Path) -> str:
    """The package's name for its bundled `model/` directory, else the directory's own name."""
    directory = source.resolve()
    name = directory.parent.name if directory.name == "model" else directory.name
    return name.removeprefix("gt_").replace("_", "-")


def load_weights(source: Path) -> Weights:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        weights = load_file(str(source / "model.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{source}/model.safetensors: unreadable: {exc}") from None
    # Checkpoints saved from BertModel have bare names; from BertFor* they carry "bert.".
    return {k.removeprefix("bert."): v.astype(np.float32) for k, v in weights.items()}
