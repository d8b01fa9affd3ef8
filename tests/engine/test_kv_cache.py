"""The KV cache's rows: forking for suggestions copies only what changed, and stays exact."""

from __future__ import annotations

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
