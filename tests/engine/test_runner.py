"""ModelRunner reuses its bound inputs and outputs from pass to pass: whatever ran before, a
pass's logits are those of the tokens before it and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models.checkpoint import load_checkpoint
from models.reference import gpt2_logits


def reference_logits(model_cache: Callable[..., Path], precision: str,
                     ids: list[int]) -> np.ndarray:
    """The logits after each of `ids` [len(ids), V]: fp32 from the plain numpy GPT-2; int8
    from a fresh runner in one pass (int8's own numbers differ from fp32's)."""
    from app.engine.loader import load_runner

    if precision == "fp32":
        config, weights = load_checkpoint(model_cache("tiny"))
        return gpt2_logits(weights, config, ids)
    runner = load_runner(model_cache("tiny", precision), device="cpu")
    return runner.forward(np.array([ids]), runner.new_cache(), keep=len(ids))[0].copy()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_passes_of_every_shape_in_a_row_give_each_its_own_logits(
        model_cache: Callable[..., Path], precision: str) -> None:
    from app.engine.loader import load_runner

    folder = model_cache("tiny", precision)
    ids = [int(i) for i in np.random.default_rng(11).integers(0, 50256, 24)]
    expected = reference_logits(model_cache, precision, ids)
    tolerance = 1e-3 if precision == "fp32" else 0.05  # int8 quantises activations per pass
    runner = load_runner(folder, device="cpu")
    cache = runner.new_cache()
    # (new tokens, logits kept): a prompt, steps, a checked draft, a chunk with no logits
    passes = [(5, 5), (1, 1), (3, 2), (1, 1), (4, 0), (2, 1), (1, 1)]
    start = 0
    for length, keep in passes:
        logits = runner.forward(np.array([ids[start : start + length]]), cache, keep=keep)
        start += length
        assert cache.pos == start
        assert logits.shape == (1, keep, expected.shape[1])
        np.testing.assert_allclose(logits[0], expected[start - keep : start], atol=tolerance)
    # three rows after the same prefix (a suggestion), then one row again
    cache.fork_row0(3)
    row_ids = [ids[start], ids[start + 1], ids[start + 2]]
    batch = runner.forward(np.array([[t] for t in row_ids]), cache)[:, -1].copy()
    for row, token in enumerate(row_ids):
        alone = reference_logits(model_cache, precision, [*ids[:start], token])[-1]
        np.testing.assert_allclose(batch[row], alone, atol=tolerance)
    cache.rewind(start)
    single = runner.forward(np.array([[ids[start]]]), cache)[0, -1]
    np.testing.assert_allclose(single, expected[start], atol=tolerance)
