"""A draft model: a smaller GPT-2 with the same vocabulary that guesses the next tokens for a
bigger one (speculative decoding; Leviathan et al., arXiv 2211.17192).

The big model checks the guesses in one pass and the Generator keeps a guess only when it is
the token it drew itself, so what is written is the big model's alone; the draft model only
decides how many of the big model's passes are saved. Worth it where the big model's pass
costs many of the draft's: gpt2 (124M) drafting for gpt2-large or gpt2-xl.

The draft runs through a Generator of its own, whose `feed` keeps its KV cache and reads only
what is new since the last guess: the tokens the big model wrote (its right guesses are
already there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.engine.context import context_window
from app.engine.generator import Generator
from app.engine.runner_protocol import Runner
from app.engine.tokenizer import Tokenizer


class DraftModel:
    def __init__(self, runner: Runner[Any], tokenizer: Tokenizer, name: str) -> None:
        self.generator = Generator(runner, tokenizer)
        self.generator.lookup = False  # it is the one guessing
        self.name = name

    def guess(self, history: Sequence[int] | np.ndarray, count: int) -> list[int]:
        """The draft's `count` most likely next tokens after `history`, one after another."""
        if count < 1 or not len(history):
            return []
        n_ctx = self.generator.n_ctx
        ids = context_window([int(t) for t in history], n_ctx, count)
        guesses: list[int] = []
        while True:
            logits = self.generator.feed(ids)
            assert logits is not None  # feed returns None only when cancelled
            guesses.append(int(np.argmax(logits)))
            if len(guesses) == count or len(ids) >= n_ctx:
                return guesses
            ids.append(guesses[-1])
