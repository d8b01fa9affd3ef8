"""SmoothQuant's migration folded into GPT-2's weights (Xiao et al., arXiv 2211.10438).

Trained GPT-2s have a few LayerNorm output channels tens to hundreds of times the rest; a
weight-quantised matmul whose input has such channels loses precision on every other one.
SmoothQuant moves part of that range from the activations into the weights: per input channel
j of c_attn and c_fc, s_j = max|X_j|^alpha / max|W_j|^(1 - alpha), with X measured on a
calibration text by the numpy reference. ln_1 / ln_2's weight and bias are divided by s and the
matching weight rows multiplied by it: the same function in exact arithmetic, free at run time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from models.checkpoint import GPT2Config

SMOOTH_ALPHA = 0.5
# Each LayerNorm of a block and the Conv1D weight ([in, out]) that reads its output.
NORM_CONSUMERS = (("ln_1", "attn.c_attn.weight"), ("ln_2", "mlp.c_fc.weight"))


def rescale_channels(weights: dict[str, np.ndarray], norm: str, consumer: str,
                     channels: np.ndarray, scales: np.ndarray) -> None:
    """`norm`'s output channels times `scales` (weight and bias), the matching input rows of
    `consumer` (a Conv1D weight, [in, out]) divided by them: the same function in exact
    arithmetic. Replaces the arrays in `weights` with new ones (never writes into the source's)."""
    for part in ("weight", "bias"):
        vector = np.array(weights[f"{norm}.{part}"], np.float32)
        vector[channels] *= scales
        weights[f"{norm}.{part}"] = vector
    matrix = np.array(weights[consumer], np.float32)
    matrix[channels] /= scales[:, None]
    weights[consumer] = matrix


def norm_output_max(weights: Mapping[str, np.ndarray], config: GPT2Config,
                    ids: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """{"h.N.ln_1": [C], "h.N.ln_2": [C]}: each channel's largest |output| over `ids` (at most
    n_positions of them), from the plain numpy GPT-2 (models.reference's pieces; that forward
    returns only logits)."""
    from models.reference import attention, gelu_new, layer_norm

    ids = np.asarray(ids)[: config.n_positions]
    w, eps, t = weights, config.layer_norm_epsilon, len(ids)
    x = w["wte.weight"][ids] + w["wpe.weight"][:t]  # [T, C]
    peaks: dict[str, np.ndarray] = {}
    for i in range(config.n_layer):
        p = f"h.{i}."
        h = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        peaks[p + "ln_1"] = np.abs(h).max(0)
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]  # [T, 3C]
        q, k, v = (a.reshape(t, config.n_head, -1).transpose(1, 0, 2)
                   for a in np.split(qkv, 3, -1))
        a = attention(q, k, v, config.attention_scale(i)).transpose(1, 0, 2).reshape(t, -1)
        x = x + a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        peaks[p + "ln_2"] = np.abs(h).max(0)
        m = gelu_new(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    return peaks


class SmoothedWeights(Mapping[str, np.ndarray]):
    """`weights` with per-channel scales folded in: ln_1 / ln_2's weight and bias divided by s,
    the rows of c_attn / c_fc they feed multiplied by it. Each changed array is made when it is
    read, not held: a copy of gpt2-xl's c_attn and c_fc weights would be 3.4 GB more, and the
    converter reads each once."""

    def __init__(self, weights: Mapping[str, np.ndarray], scales: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.scales = scales  # "h.N.ln_1" / "h.N.ln_2" -> s [C], float32
        self.norm_of: dict[str, str] = {}  # a changed array's name -> its norm's name
        for norm in scales:
            block, norm_name = norm.rsplit(".", 1)
            consumer = dict(NORM_CONSUMERS)[norm_name]
            for name in (f"{norm}.weight", f"{norm}.bias", f"{block}.{consumer}"):
                self.norm_of[name] = norm

    def __getitem__(self, name: str) -> np.ndarray:
        array = self.weights[name]
        norm = self.norm_of.get(name)
        if norm is None:
            return array
        inverse = (1 / self.scales[norm]).astype(np.float32)
        if name.startswith(norm + "."):
            return np.asarray(array, np.float32) * inverse
        return np.asarray(array, np.float32) / inverse[:, None]

    def __iter__(self) -> Iterator[str]:
        return iter(self.weights)

    def __len__(self) -> int:
        return len(self.weights)


def smoothing_scales(x_max: np.ndarray, w_max: np.ndarray,
                     alpha: float = SMOOTH_ALPHA) -> np.ndarray:
    """s [C] from each input channel's largest |activation| and largest |weight| (its row of
    the Conv1D weight): s_j = max|X_j|^alpha / max|W_j|^(1 - alpha). X / s and W * s[:, None]
    then share the range; both maxima are floored at 1e-5 so a dead channel gets a finite s."""
    x_max, w_max = np.maximum(x_max, 1e-5), np.maximum(w_max, 1e-5)
    return (x_max**alpha / w_max ** (1 - alpha)).astype(np.float32)


def smooth_weights(weights: Mapping[str, np.ndarray], config: GPT2Config, ids: Sequence[int],
                   alpha: float = SMOOTH_ALPHA) -> SmoothedWeights:
    """`weights` with SmoothQuant's migration folded in, calibrated on `ids`: per input channel
    j of c_attn and c_fc, s_j = max|X_j|^alpha / max|W_j|^(1 - alpha); ln_1 / ln_2 divided by
    s, the matching weight rows multiplied by it. `weights` is left as it was."""
    peaks = norm_output_max(weights, config, ids)
    scales: dict[str, np.ndarray] = {}
    for i in range(config.n_layer):
        for norm, consumer in NORM_CONSUMERS:
            w_max = np.abs(weights[f"h.{i}.{consumer}"]).max(1)
            scales[f"h.{i}.{norm}"] = smoothing_scales(peaks[f"h.{i}.{norm}"], w_max, alpha)
    return SmoothedWeights(weights, scales)
