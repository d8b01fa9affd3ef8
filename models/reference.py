"""GPT-2 in plain fp32 numpy: the slow, obviously-correct path every fast path is checked against.

Shapes: T tokens, C n_embd, H heads, D head dim, V vocab.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from models.checkpoint import GPT2Config


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    # [T, C] -> [T, C]
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


# Constants are Python floats: a numpy float64 scalar (np.sqrt(...)) would promote every array
# it touches to float64, and with it every weight it meets in a matmul (a float64 copy of wte).
def gelu_new(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    # [H, T, D] x3 -> [H, T, D], causal
    t = q.shape[1]
    scores = q @ k.transpose(0, 2, 1) * scale  # [H, T, T]
    scores = np.where(np.tril(np.ones((t, t), dtype=bool)), scores, -np.inf)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    return (scores / scores.sum(-1, keepdims=True)) @ v


def gpt2_logits(weights: Mapping[str, np.ndarray], config: GPT2Config,
                ids: list[int] | np.ndarray,
                keys_values: list[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """[T] token ids -> [T, V] logits. Pass a list as `keys_values` to collect every layer's
    keys and values, ([T, C], [T, C]) each, in the order attention sees them."""
    w, eps, h_count = weights, config.layer_norm_epsilon, config.n_head
    ids = np.asarray(ids)
    t = len(ids)
    x = w["wte.weight"][ids] + w["wpe.weight"][:t]  # [T, C]
    for i in range(config.n_layer):
        p = f"h.{i}."
        h = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]  # [T, 3C]
        if keys_values is not None:
            keys_values.append((qkv[:, config.n_embd : 2 * config.n_embd],
                                qkv[:, 2 * config.n_embd :]))
        q, k, v = (a.reshape(t, h_count, -1).transpose(1, 0, 2) for a in np.split(qkv, 3, -1))
        a = attention(q, k, v, config.attention_scale(i)).transpose(1, 0, 2).reshape(t, -1)
        x = x + a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        m = gelu_new(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps)
    return x @ w["wte.weight"].T
