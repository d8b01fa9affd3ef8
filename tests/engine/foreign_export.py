"""GPT-2 graphs in other people's layouts, built from plain ONNX ops for the loader tests.

"optimum": past_key_values.N.key/value and present.N.key/value [B, H, P, D], attention_mask,
position_ids and use_cache_branch, logits for every position, an untied LM head (as optimum's
exports are). "ort": ONNX Runtime's convert_to_onnx layout, past_N / present_N [2, B, H, P, D].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.checkpoint import GPT2Config


def build_foreign_graph(config: GPT2Config, w: dict[str, np.ndarray], layout: str,
                        weight_names: bool = False,
                        head: np.ndarray | None = None) -> onnx.ModelProto:
    """`weight_names`: the weights are named as in the checkpoint ("transformer.h.0.ln_1.weight"),
    as optimum's and torch.onnx's exports name them, not c1, c2... `head`: the LM head, [C, V]
    (default: the embedding transposed, as optimum stores GPT-2's tied head)."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    count = [0]

    def const(array: np.ndarray) -> str:
        count[0] += 1
        name = f"c{count[0]}"
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(key: str) -> str:
        if not weight_names:
            return const(w[key])
        name = "transformer." + key
        if all(init.name != name for init in inits):
            inits.append(numpy_helper.from_array(np.asarray(w[key]), name))
        return name

    def op(kind: str, *inputs: str, **attrs: object) -> str:
        count[0] += 1
        out = f"t{count[0]}"
        nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    c, h, d = config.n_embd, config.n_head, config.head_dim
    eps = config.layer_norm_epsilon

    def ln(x: str, p: str) -> str:
        return op("LayerNormalization", x, weight(p + ".weight"), weight(p + ".bias"),
                  axis=-1, epsilon=eps)

    def heads(x: str) -> str:  # [B, S, C] -> [B, H, S, D]
        return op("Transpose", op("Reshape", x, const(np.array([0, 0, h, d], np.int64))),
                  perm=[0, 2, 1, 3])

    def gelu_new(x: str) -> str:
        cube = op("Mul", op("Mul", x, x), x)
        inner = op("Mul", op("Add", x, op("Mul", cube, const(np.float32(0.044715)))),
                   const(np.float32(np.sqrt(2 / np.pi))))
        return op("Mul", op("Mul", x, const(np.float32(0.5))),
                  op("Add", op("Tanh", inner), const(np.float32(1.0))))

    cache = ["batch", h, "past", d]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64,
                                            ["batch", "total"])]
    if layout == "optimum":
        inputs += [helper.make_tensor_value_info("position_ids", TensorProto.INT64,
                                                 ["batch", "seq"]),
                   helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])]
        positions = "position_ids"
    else:  # ORT's no-padding variant derives positions from the past length
        past_len = op("Gather", op("Shape", "past_0"), const(np.int64(3)))
        seq_len = op("Gather", op("Shape", "input_ids"), const(np.int64(1)))
        positions = op("Unsqueeze", op("Range", past_len, op("Add", past_len, seq_len),
                                       const(np.int64(1))), const(np.array([0], np.int64)))
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                             ["batch", "seq", config.vocab_size])]
    x = op("Add", op("Gather", weight("wte.weight"), "input_ids"),
           op("Gather", weight("wpe.weight"), positions))
    for i in range(config.n_layer):
        p = f"h.{i}."
        qkv = op("Add", op("MatMul", ln(x, p + "ln_1"), weight(p + "attn.c_attn.weight")),
                 weight(p + "attn.c_attn.bias"))
        q, k, v = (f"split{i}_{j}" for j in range(3))
        nodes.append(helper.make_node("Split", [qkv, const(np.array([c, c, c], np.int64))],
                                      [q, k, v], axis=-1))
        if layout == "optimum":
            past_k, past_v = f"past_key_values.{i}.key", f"past_key_values.{i}.value"
            inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, cache)
                       for n in (past_k, past_v)]
        else:
            inputs.append(helper.make_tensor_value_info(f"past_{i}", TensorProto.FLOAT,
                                                        [2, *cache]))
            past_k = op("Gather", f"past_{i}", const(np.int64(0)), axis=0)
            past_v = op("Gather", f"past_{i}", const(np.int64(1)), axis=0)
        k_all = op("Concat", past_k, heads(k), axis=2)
        v_all = op("Concat", past_v, heads(v), axis=2)
        if layout == "optimum":
            for kind, tensor in (("key", k_all), ("value", v_all)):
                nodes.append(helper.make_node("Identity", [tensor], [f"present.{i}.{kind}"]))
                outputs.append(helper.make_tensor_value_info(f"present.{i}.{kind}",
                                                             TensorProto.FLOAT, cache))
        else:
            axis0 = const(np.array([0], np.int64))
            nodes.append(helper.make_node("Concat", [op("Unsqueeze", k_all, axis0),
                                                     op("Unsqueeze", v_all, axis0)],
                                          [f"present_{i}"], axis=0))
            outputs.append(helper.make_tensor_value_info(f"present_{i}", TensorProto.FLOAT,
                                                         [2, *cache]))
        scores = op("Div", op("MatMul", heads(q), op("Transpose", k_all, perm=[0, 1, 3, 2])),
                    const(np.float32(np.sqrt(d))))
        s_len = op("Gather", op("Shape", scores), const(np.array([2], np.int64)))
        t_len = op("Gather", op("Shape", scores), const(np.array([3], np.int64)))
        ones = op("ConstantOfShape", op("Concat", s_len, t_len, axis=0),
                  value=numpy_helper.from_array(np.array([1.0], np.float32)))
        allowed = op("Trilu", ones, op("Squeeze", op("Sub", t_len, s_len)), upper=0)
        masked = op("Add", scores, op("Mul", op("Sub", allowed, const(np.float32(1.0))),
                                      const(np.float32(1e9))))
        attn = op("MatMul", op("Softmax", masked, axis=-1), v_all)
        attn = op("Reshape", op("Transpose", attn, perm=[0, 2, 1, 3]),
                  const(np.array([0, 0, c], np.int64)))
        x = op("Add", x, op("Add", op("MatMul", attn, weight(p + "attn.c_proj.weight")),
                            weight(p + "attn.c_proj.bias")))
        m = gelu_new(op("Add", op("MatMul", ln(x, p + "ln_2"), weight(p + "mlp.c_fc.weight")),
                        weight(p + "mlp.c_fc.bias")))
        x = op("Add", x, op("Add", op("MatMul", m, weight(p + "mlp.c_proj.weight")),
                            weight(p + "mlp.c_proj.bias")))
    head = np.ascontiguousarray(w["wte.weight"].T) if head is None else head
    lm_head = const(head)  # a copy beside wte, as optimum writes it
    if weight_names:
        inits[-1].name = lm_head = "onnx::MatMul_3300"
    nodes.append(helper.make_node("MatMul", [ln(x, "ln_f"), lm_head], ["logits"]))
    graph = helper.make_graph(nodes, "foreign_gpt2", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def write_foreign_export(checkpoint: Path, out: Path, layout: str, weight_names: bool = False,
                         head: np.ndarray | None = None, external_data: bool = False) -> Path:
    """An export folder as optimum lays it out: onnx/model.onnx beside config and tokenizer
    (`external_data`: its weights in onnx/model.onnx_data, as exports over 2 GB must be)."""
    from models.checkpoint import load_checkpoint

    config, weights = load_checkpoint(checkpoint)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    model = build_foreign_graph(config, weights, layout, weight_names, head)
    onnx.save_model(model, str(out / "onnx/model.onnx"), save_as_external_data=external_data,
                    location="model.onnx_data", size_threshold=0)
    (out / "config.json").write_text(json.dumps(config.to_hf_json()))
    for name in ("vocab.json", "merges.txt"):
        (out / name).write_bytes((checkpoint / name).read_bytes())
    return out
