"""The KV cache: one preallocated buffer per layer for keys and one for values.

Shapes: B batch rows, H heads, M max_len, D head dim; buffers are [B, H, M, D]. `pos` is how
many positions every row holds; `tokens` are row 0's tokens, kept for prefix reuse. Rewinding is
setting `pos`: the attention op only ever reads positions below it. Rows 1.. are copies of row
0 below `_forked` (for `_forked_rows` rows), so forking for the next suggestion copies only the
positions that changed since the last one, not the whole document.
"""

from __future__ import annotations

import numpy as np


class KVCache:
    def __init__(self, n_layer: int, n_head: int, head_dim: int, max_len: int,
                 dtype: type = np.float32, batch: int = 1) -> None:
        self.n_layer, self.n_head, self.head_dim, self.max_len = n_layer, n_head, head_dim, max_len
        self.dtype = dtype
        self.batch = 0
        self.keys: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.pos = 0
        self.tokens: list[int] = []
        self._forked = 0
        self._forked_rows = 0
        self._allocate(batch)

    def _allocate(self, batch: int) -> None:
        shape = (batch, self.n_head, self.max_len, self.head_dim)
        old_keys, old_values = self.keys, self.values
        self.keys = [np.zeros(shape, self.dtype) for _ in range(self.n_layer)]
        self.values = [np.zeros(shape, self.dtype) for _ in range(self.n_layer)]
        if old_keys:
            for old, new in zip((*old_keys, *old_values), (*self.keys, *self.values),
                                strict=True):
                new[:1, :, : self.pos] = old[:1, :, : self.pos]
        self.batch = batch
        self._forked = self._forked_rows = 0

    def reset(self) -> None:
        self.pos = 0
        self._forked = 0
        self.tokens = []

    def rewind(self, pos: int) -> None:
        """Forget everything from `pos` on."""
        self.pos = min(self.pos, pos)
        self._forked = min(self._forked, self.pos)
        del self.tokens[self.pos :]

    def fork_row0(self, rows: int) -> None:
        """Give rows 1..rows-1 a copy of row 0's positions, to continue it several ways at once."""
        if rows > self.batch:
            self._allocate(rows)
        start = self._forked if rows == self._forked_rows else 0
        for buffer in (*self.keys, *self.values):
            buffer[1:rows, :, start : self.pos] = buffer[0:1, :, start : self.pos]
        self._forked, self._forked_rows = self.pos, rows

    def shrink(self) -> None:
        """Back to one row (frees the memory that batched suggestions took)."""
        if self.batch > 1:
            self._allocate(1)

    def nbytes(self) -> int:
        return sum(b.nbytes for b in (*self.keys, *self.values))
