"""The KV cache's rows: forking for suggestions copies only what changed, and stays exact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.engine.kv_cache import KVCache


def write_row0(cache: KVCache, start: int, end: int, rng: np.random.Generator) -> None:
    for buffer in (*cache.keys, *cache.values):
        buffer[0, :, start:end] = rng.standard_normal(buffer[0, :, start:end].shape)
    cache.pos = end


def assert_rows_match_row0(cache: KVCache, rows: int) -> None:
    for buffer in (*cache.keys, *cache.values):
        for row in range(1, rows):
            np.testing.assert_array_equal(buffer[row, :, : cache.pos], buffer[0, :, : cache.pos])


def test_forked_rows_always_equal_row0_below_pos() -> None:
    rng = np.random.default_rng(0)
    cache = KVCache(n_layer=2, n_head=2, head_dim=4, max_len=64)
    write_row0(cache, 0, 20, rng)
    cache.fork_row0(3)
    assert_rows_match_row0(cache, 3)
    for buffer in (*cache.keys, *cache.values):  # the batch writes its own tokens after it
        buffer[:3, :, 20:24] = rng.standard_normal(buffer[:3, :, 20:24].shape)
    cache.rewind(18)  # the next keystroke changed the last tokens
    write_row0(cache, 18, 23, rng)
    cache.fork_row0(3)
    assert_rows_match_row0(cache, 3)
    cache.reset()
    write_row0(cache, 0, 5, rng)
    cache.fork_row0(3)
    assert_rows_match_row0(cache, 3)
    cache.rewind(3)
    write_row0(cache, 3, 6, rng)
    cache.fork_row0(2)  # fewer rows than last time
    assert_rows_match_row0(cache, 2)
    cache.fork_row0(3)
    assert_rows_match_row0(cache, 3)


def test_a_cache_kept_as_device_ortvalues_gives_the_same_logits(tiny_model: Path) -> None:
    """The path GPU providers take (OrtValues bound by address, forked through the host),
    exercised on the CPU device: same logits as the numpy cache, batched rows included."""
    from app.engine.loader import load_runner

    runner = load_runner(tiny_model, device="cpu")
    ids = [int(i) for i in np.random.default_rng(5).integers(0, 50256, 40)]
    results = {}
    for device in ("numpy", "cpu"):
        runner.cache_device = device
        cache = runner.new_cache()
        assert cache.on_host == (device == "numpy")
        out = [runner.forward(np.array([ids[:30]]), cache, keep=30)[0].copy()]
        out += [runner.forward(np.array([[t]]), cache)[0, -1].copy() for t in ids[30:35]]
        cache.fork_row0(3)
        out += [runner.forward(np.array([[t], [t + 1], [t + 2]]), cache)[:, -1].copy()
                for t in ids[35:40]]
        results[device] = out
    for numpy_out, device_out in zip(results["numpy"], results["cpu"], strict=True):
        np.testing.assert_array_equal(numpy_out, device_out)


def test_every_new_cache_is_the_one_written(model_cache: Callable[..., Path]) -> None:
    """A fresh cache's buffers can reuse the ids of freed ones; the runner must still bind the
    new buffers (binding stale ones wrote into freed memory and crashed the process)."""
    from app.engine.loader import load_runner

    runner = load_runner(model_cache("tiny", "int8"), device="cpu")
    ids = np.array([[int(i) for i in np.random.default_rng(2).integers(0, 50256, 12)]])
    expected = None
    for rows in (1, 1, 3, 1, 1):
        cache = runner.new_cache()
        logits = runner.forward(ids, cache)[0, -1].copy()
        if rows > 1:
            cache.fork_row0(rows)
            runner.forward(np.repeat(ids[:, -1:], rows, axis=0), cache)
        assert all(np.abs(buffer[0, :, : ids.shape[1]]).sum() > 0 for buffer in cache.keys)
        expected = logits if expected is None else expected
        np.testing.assert_array_equal(logits, expected)
        del cache
