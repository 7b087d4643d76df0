"""encoder_graph: a BERT checkpoint's weights as an ONNX encoder, one fused Attention per layer."""

from __future__ import annotations

import numpy as np
import pytest

from codeweir.embed.encoder_graph import Weights, encoder_model
from codeweir.errors import ModelError

HIDDEN, HEADS, INNER = 4, 2, 8


def tiny_weights(layers: int) -> Weights:
    """A BERT checkpoint's weights, by name, at a tiny size."""
    rng = np.random.default_rng(0)
    shapes = {
        "embeddings.word_embeddings.weight": (10, HIDDEN),
        "embeddings.position_embeddings.weight": (16, HIDDEN),
        "embeddings.token_type_embeddings.weight": (2, HIDDEN),
        "embeddings.LayerNorm.weight": (HIDDEN,),
        "embeddings.LayerNorm.bias": (HIDDEN,),
    }
    for layer in range(layers):
        p = f"encoder.layer.{layer}"
        for name in ("query", "key", "value"):
            shapes |= {f"{p}.attention.self.{name}.weight": (HIDDEN, HIDDEN), f"{p}.attention.self.{name}.bias": (HIDDEN,)}
        for linear, (out, inp) in {
            "attention.output.dense": (HIDDEN, HIDDEN),
            "intermediate.dense": (INNER, HIDDEN),
            "output.dense": (HIDDEN, INNER),
        }.items():
            shapes |= {f"{p}.{linear}.weight": (out, inp), f"{p}.{linear}.bias": (out,)}
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes |= {f"{p}.{norm}.weight": (HIDDEN,), f"{p}.{norm}.bias": (HIDDEN,)}
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def test_the_model_takes_ids_and_mask_and_returns_token_states_through_one_attention_per_layer() -> None:
    graph = encoder_model(tiny_weights(layers=2), 1e-12, HEADS).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["last_hidden_state"]
    dims = graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "tokens", HIDDEN]
    assert [n.op_type for n in graph.node].count("Attention") == 2


def test_weights_without_encoder_layers_are_a_model_error() -> None:
    weights = {k: v for k, v in tiny_weights(layers=1).items() if not k.startswith("encoder.")}
    with pytest.raises(ModelError, match="checkpoint has no encoder layers"):
        encoder_model(weights, 1e-12, HEADS)


def test_a_missing_weight_is_a_model_error_naming_it() -> None:
    weights = tiny_weights(layers=1)
    del weights["encoder.layer.0.output.dense.bias"]
    with pytest.raises(ModelError, match="no weight 'encoder.layer.0.output.dense.bias'; is it a BERT encoder"):
        encoder_model(weights, 1e-12, HEADS)
