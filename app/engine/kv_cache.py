"""The KV cache: one preallocated buffer per layer for keys and one for values.

Shapes: B batch rows, H heads, M max_len, D head dim; buffers are [B, H, M, D]. `pos` is how
many positions every row holds; `tokens` are row 0's tokens, kept for prefix reuse. Rewinding is
setting `pos`: the attention op only ever reads positions below it. Rows 1.. are copies of row
0 below `_forked` (for `_forked_rows` rows), so forking for the next suggestion copies only the
positions that changed since the last one, not the whole document.

Where the buffers live: `device="numpy"` keeps them as host arrays (the CPU provider reads and
writes them in place). An onnxruntime device name ("cuda", "dml", or "cpu" to test that path)
keeps them as OrtValues on that device, so a GPU provider also updates them in place instead of
copying the whole cache across the bus twice a token. Forking then goes through the host, which
only suggestions do.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

Buffer = Any  # np.ndarray, or onnxruntime.OrtValue on a device
_buffer_sets = itertools.count()  # never reused, unlike id() of freed buffers


class KVCache:
    def __init__(self, n_layer: int, n_head: int, head_dim: int, max_len: int,
                 dtype: type = np.float32, batch: int = 1, device: str = "numpy") -> None:
        self.n_layer, self.n_head, self.head_dim, self.max_len = n_layer, n_head, head_dim, max_len
        self.dtype = dtype
        self.device = device
        self.batch = 0
        self.keys: list[Buffer] = []
        self.values: list[Buffer] = []
        self.pos = 0
        self.tokens: list[int] = []
        self._forked = 0
        self._forked_rows = 0
        self._allocate(batch)

    @property
    def on_host(self) -> bool:
        return self.device == "numpy"

    def _new_buffer(self, shape: tuple[int, ...]) -> Buffer:
        if self.on_host:
            return np.zeros(shape, self.dtype)
        from onnxruntime import OrtValue

        return OrtValue.ortvalue_from_numpy(np.zeros(shape, self.dtype), self.device, 0)

    def host_array(self, buffer: Buffer) -> np.ndarray:
        """The buffer itself when it lives in numpy, else a host copy (write it back with
        `_store`)."""
        return buffer if self.on_host else buffer.numpy()

    def _store(self, buffer: Buffer, array: np.ndarray) -> None:
        if not self.on_host:
            buffer.update_inplace(array)

    def pointer(self, buffer: Buffer) -> int:
        """The address to bind: rows 0..r-1 are the buffer's first r rows."""
        return int(buffer.ctypes.data if self.on_host else buffer.data_ptr())

    def _allocate(self, batch: int) -> None:
        shape = (batch, self.n_head, self.max_len, self.head_dim)
        old_keys, old_values = self.keys, self.values
        self.keys = [self._new_buffer(shape) for _ in range(self.n_layer)]
        self.values = [self._new_buffer(shape) for _ in range(self.n_layer)]
        if old_keys:
            for old, new in zip((*old_keys, *old_values), (*self.keys, *self.values),
                                strict=True):
                target = self.host_array(new)
                target[:1, :, : self.pos] = self.host_array(old)[:1, :, : self.pos]
                self._store(new, target)
        self.batch = batch
        self.buffers_id = next(_buffer_sets)  # changes whenever the buffers are replaced
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
            host = self.host_array(buffer)
            host[1:rows, :, start : self.pos] = host[0:1, :, start : self.pos]
            self._store(buffer, host)
        self._forked, self._forked_rows = self.pos, rows

    def shrink(self) -> None:
        """Back to one row (frees the memory that batched suggestions took)."""
        if self.batch > 1:
            self._allocate(1)

    def nbytes(self) -> int:
        per_buffer = self.batch * self.n_head * self.max_len * self.head_dim
        return 2 * self.n_layer * per_buffer * np.dtype(self.dtype).itemsize
