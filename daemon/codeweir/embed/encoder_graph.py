"""The ONNX model of a BERT encoder, written with onnx.helper from a checkpoint's weights.

numpy and onnx only: no PyTorch, and no I/O (`model_build` loads the weights and saves the
model). The graph takes `input_ids` and `attention_mask` and returns `last_hidden_state`;
pooling and normalization happen in the embedder, so a built model and a user's ONNX model run
the same way. A change here that changes the model's outputs bumps model_dir.GRAPH_VERSION, so
models built before it are built again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from codeweir.errors import ModelError

_OPSET = 17  # LayerNormalization

Weights = dict[str, npt.NDArray[np.float32]]


def encoder_model(w: Weights, eps: float, num_heads: int) -> onnx.ModelProto:
    """A BERT encoder in plain ONNX ops (ORT fuses them into its attention/layer-norm kernels),
    checked and with its shapes inferred."""
    try:
        graph = _GraphWriter(w, eps, num_heads).encoder()
    except KeyError as exc:
        raise ModelError(f"checkpoint has no weight {exc.args[0]!r}; is it a BERT encoder?") from None
    opsets = [helper.make_opsetid("", _OPSET), helper.make_opsetid("com.microsoft", 1)]  # Attention
    model = helper.make_model(graph, opset_imports=opsets, producer_name="codeweir")
    model.ir_version = 8  # readable by every onnxruntime codeweir supports
    onnx.checker.check_model(model)
    # Inferred shapes let ORT's fusions (skip + layer norm) and the int8 quantizer see types.
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


class _GraphWriter:
    def __init__(self, weights: Weights, eps: float, num_heads: int) -> None:
        self.w = weights
        self.eps = eps
        self.heads = num_heads
        self.hidden = weights["embeddings.word_embeddings.weight"].shape[1]
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.shapes: list[onnx.ValueInfoProto] = []
        self._names: set[str] = set()

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs_: Any) -> str:
        assert name not in self._names, name
        self._names.add(name)
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs_))
        return name

    def linear(self, x: str, prefix: str, out: str) -> str:
        # torch Linear stores (out, in); MatMul wants (in, out).
        weight = self.const(f"{prefix}.weight", self.w[f"{prefix}.weight"].T)
        bias = self.const(f"{prefix}.bias", self.w[f"{prefix}.bias"])
        return self.op("Add", [self.op("MatMul", [x, weight], f"{out}.matmul"), bias], out)

    def layer_norm(self, x: str, prefix: str, out: str) -> str:
        gamma = self.const(f"{prefix}.weight", self.w[f"{prefix}.weight"])
        beta = self.const(f"{prefix}.bias", self.w[f"{prefix}.bias"])
        return self.op("LayerNormalization", [x, gamma, beta], out, axis=-1, epsilon=self.eps)

    def encoder(self) -> onnx.GraphProto:
        self.const("one", np.array(1.0, dtype=np.float32))
        self.const("half", np.array(0.5, dtype=np.float32))
        self.const("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
        self.const("zero", np.array([0], dtype=np.int64))

        # Embeddings. Token type is always 0 for one text, so its row joins the positions.
        word = self.const("embeddings.word_embeddings.weight", self.w["embeddings.word_embeddings.weight"])
        positions = self.w["embeddings.position_embeddings.weight"] + self.w["embeddings.token_type_embeddings.weight"][0]
        self.const("embeddings.position_embeddings.weight", positions)
        seq_len = self.op("Shape", ["input_ids"], "seq_len", start=1, end=2)
        pos = self.op("Slice", ["embeddings.position_embeddings.weight", "zero", seq_len, "zero"], "pos.embeddings")
        tokens = self.op("Gather", [word, "input_ids"], "word.embeddings")
        x = self.layer_norm(self.op("Add", [tokens, pos], "embeddings.sum"), "embeddings.LayerNorm", "embeddings.out")

        # Attention takes the (batch, tokens) 0/1 mask as int32.
        mask = self.op("Cast", ["attention_mask"], "mask", to=TensorProto.INT32)

        layer = 0
        while f"encoder.layer.{layer}.attention.self.query.weight" in self.w:
            x = self.encoder_layer(x, mask, f"encoder.layer.{layer}")
            layer += 1
        if layer == 0:
            raise ModelError("checkpoint has no encoder layers")
        self.op("Identity", [x], "last_hidden_state")
        return helper.make_graph(
            self.nodes,
            "codeweir-bert-encoder",
            [
                helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
                helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
            ],
            [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", self.hidden])],
            self.inits,
            value_info=self.shapes,
        )

    def encoder_layer(self, x: str, mask: str, p: str) -> str:
        # ORT's fused Attention kernel (one QKV projection, softmax per head): about 10% faster
        # on 2 CPU threads than the same attention spelled in plain ONNX ops.
        a = f"{p}.attention.self"
        qkv_weight = np.concatenate([self.w[f"{a}.{n}.weight"].T for n in ("query", "key", "value")], axis=1)
        qkv_bias = np.concatenate([self.w[f"{a}.{n}.bias"] for n in ("query", "key", "value")])
        context = self.op(
            "Attention",
            [x, self.const(f"{a}.qkv.weight", qkv_weight), self.const(f"{a}.qkv.bias", qkv_bias), mask],
            f"{p}.context",
            domain="com.microsoft",
            num_heads=self.heads,
        )
        # onnx's shape inference does not know contrib ops; the quantizer and ORT's fusions need shapes.
        self.shapes.append(helper.make_tensor_value_info(context, TensorProto.FLOAT, ["batch", "tokens", self.hidden]))
        attended = self.linear(context, f"{p}.attention.output.dense", f"{p}.attention.out")
        residual = self.op("Add", [attended, x], f"{p}.attention.residual")
        x = self.layer_norm(residual, f"{p}.attention.output.LayerNorm", f"{p}.attention.norm")

        inner = self.linear(x, f"{p}.intermediate.dense", f"{p}.intermediate")
        # Exact (erf) GELU as BERT has it, x * (1 + erf(x / sqrt 2)) * 0.5: the op order ORT fuses.
        erf = self.op("Erf", [self.op("Div", [inner, "sqrt2"], f"{p}.gelu.scaled")], f"{p}.gelu.erf")
        gelu = self.op("Mul", [inner, self.op("Add", [erf, "one"], f"{p}.gelu.plus1")], f"{p}.gelu.unscaled")
        gelu = self.op("Mul", [gelu, "half"], f"{p}.gelu")
        out = self.linear(gelu, f"{p}.output.dense", f"{p}.output")
        return self.layer_norm(self.op("Add", [out, x], f"{p}.output.residual"), f"{p}.output.LayerNorm", f"{p}.out")
