"""A draft model: a smaller GPT-2 with the same vocabulary that guesses the next tokens for a
bigger one (speculative decoding; Leviathan et al., arXiv 2211.17192).

The big model checks the guesses in one pass and the Generator keeps a guess only when it is
the token it drew itself, so what is written is the big model's alone; the draft model only
decides how many of the big model's passes are saved. Worth it where the big model's pass
costs many of the draft's: gpt2 (124M) drafting for gpt2-large or gpt2-xl.

The draft keeps its own KV cache and reads only what is new since its last guess: the tokens
the big model wrote (its right guesses are already there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic

import numpy as np

from app.engine.context import common_prefix_length, context_window
from app.engine.runner_protocol import CacheT, Runner

PREFILL_CHUNK = 128  # tokens per pass when the draft catches up with a text


class DraftModel(Generic[CacheT]):
    def __init__(self, runner: Runner[CacheT], name: str) -> None:
        self.runner = runner
        self.name = name
        self.cache = runner.new_cache()

    def guess(self, history: Sequence[int] | np.ndarray, count: int) -> list[int]:
        """The draft's `count` most likely next tokens after `history`, one after another."""
        if count < 1 or not len(history):
            return []
        n_ctx = self.runner.n_ctx
        ids = context_window([int(t) for t in history], n_ctx, count)
        cache = self.cache
        reuse = min(common_prefix_length(cache.tokens, ids), len(ids) - 1)
        cache.rewind(reuse)
        logits: np.ndarray | None = None
        for start in range(reuse, len(ids), PREFILL_CHUNK):
            chunk = ids[start : start + PREFILL_CHUNK]
            logits = self.runner.forward(np.array([chunk]), cache)[0, -1]
            cache.tokens.extend(chunk)
        assert logits is not None
        guesses: list[int] = []
        while True:
            guesses.append(int(np.argmax(logits)))
            if len(guesses) == count or cache.pos >= n_ctx:
                return guesses
            logits = self.runner.forward(np.array([[guesses[-1]]]), cache)[0, -1]
            cache.tokens.append(guesses[-1])
