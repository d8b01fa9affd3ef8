"""Per-channel scales for an int8 KV cache, measured on a fixed text with the numpy reference.

onnxruntime's GroupQueryAttention quantises every new key and value as round(x / scale) clipped
to [-127, 127], with one fixed scale per channel (head × head dim) per layer: the scales have to
be known when the graph is built. Each is the channel's largest |value| over CALIBRATION_TEXT,
with MARGIN to spare for text that runs a little hotter; anything beyond saturates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.checkpoint import GPT2Config
from models.reference import gpt2_logits

MARGIN = 1.25
# Varied English prose, dialogue, numbers and punctuation (about 230 GPT-2 tokens), so the
# channels see the kinds of tokens people write.
CALIBRATION_TEXT = (
    "Chapter One\n\n"
    "It was the last warm evening of September, and Mara sat on the porch steps with a chipped "
    "mug of tea, watching the swallows gather on the telephone wire. \"They'll be gone by "
    "Thursday,\" her grandfather said, lowering himself into the wicker chair. \"Every year, "
    "same week. You could set a calendar by them.\"\n"
    "She laughed. In 2019 she had tried exactly that: 14 notebooks, 3,650 entries, and one "
    "spreadsheet that crashed whenever it was opened on a Tuesday. The data said the birds left "
    "between the 21st and the 27th; the data did not say why.\n"
    "Dear Mr. Okafor, thank you for your letter of 4 March. We regret to inform you that the "
    "committee has postponed its decision (again) until the spring meeting; please find the "
    "minutes attached.\n"
    "def mean(xs): return sum(xs) / len(xs)  # the simplest statistic of all\n"
    "Q: What is the capital of Australia? A: Canberra, not Sydney, although many people guess "
    "wrong. Prices rose 3.5% in May; the index closed at 1,204.17 points."
)


def calibrate_kv_scales(weights: Mapping[str, np.ndarray], config: GPT2Config,
                        ids: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (key, value) pair of float32 scales [C] per layer, for GQA's PER_CHANNEL int8 cache."""
    keys_values: list[tuple[np.ndarray, np.ndarray]] = []
    gpt2_logits(weights, config, ids[: config.n_positions], keys_values=keys_values)
    return [(_channel_scales(keys), _channel_scales(values)) for keys, values in keys_values]


def _channel_scales(a: np.ndarray) -> np.ndarray:
    # [T, C] -> [C]; never 0, so a channel that stayed 0 here cannot divide by zero later.
    return np.maximum(np.abs(a).max(0) * MARGIN / 127, 1e-8).astype(np.float32)
