"""What the Generator needs of a runner and its KV cache.

ModelRunner (Ghostpen's own graphs, KVCache) and ForeignRunner (others' exports, ForeignCache)
both provide it. A runner's `forward` takes only the kind of cache its own `new_cache` makes, so
the protocol is generic in that kind. Shapes: B rows, S new tokens, V vocab.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import numpy as np


class TokenCache(Protocol):
    """A KV cache as the Generator moves it; `tokens` are row 0's, kept for prefix reuse."""

    pos: int  # positions every row holds
    tokens: list[int]

    def reset(self) -> None: ...

    def rewind(self, pos: int) -> None:
        """Forget everything from `pos` on."""
        ...

    def fork_row0(self, rows: int) -> None:
        """Give rows 1..rows-1 a copy of row 0, to continue it several ways at once."""
        ...


CacheT = TypeVar("CacheT", bound=TokenCache)


class Runner(Protocol[CacheT]):
    provider: str  # the onnxruntime execution provider that runs the model
    fallback_reason: str  # why a requested GPU provider was not used; "" when none

    @property
    def n_ctx(self) -> int: ...

    def new_cache(self, batch: int = 1) -> CacheT: ...

    def forward(self, ids: np.ndarray, cache: CacheT, keep: int = 1) -> np.ndarray:
        """[B, S] new token ids -> [B, keep, V] logits; advances cache.pos by S. keep=0: no
        logits ([B, 0, V]), for a chunk of a prompt whose logits nobody reads."""
        ...
