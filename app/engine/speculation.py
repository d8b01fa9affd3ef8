"""How far to guess ahead: the running acceptance rate of a source of draft tokens, weighed
against what a pass of several tokens costs.

A pass of S tokens costs little more than one while reading the weights dominates (GPT-2 124M
int8, 2 threads, position 300, 2026-12-02: S = 2 / 4 / 5 / 8 took 1.09 / 1.28 / 1.42 / 1.62
times S = 1), and much more where overheads dominate (the 16M stand-in: S = 2 took 1.6 times).
So both are measured as the text is written: a draft is as long as the run of right guesses
the acceptance rate a predicts (a / (1 - a)) plus one, at most MAX_DRAFT, shortened while the
tokens one pass is expected to give (1 + a + … + a^k) are worth less than its time, counted
in single-token passes. When no length pays, the source rests for REST_TOKENS tokens before
it tries again (sampled prose, where the model rarely copies: the stand-in at temperature 0.8
wrote 1–12% of its prompt-lookup drafts, and there two tokens cost 1.6 passes; on GPT-2 124M,
where they cost 1.0–1.1, a draft pays from about one right guess in ten).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

MAX_DRAFT = 8
MIN_ACCEPTANCE = 0.05  # below it nothing pays: even a free pass would rarely save one
REST_TOKENS = 24
MEMORY = 0.8  # weight of what earlier measurements said against the latest one


class Guesser(Protocol):
    """What guesses a text's next tokens for the model to check: a draft model."""

    name: str

    def guess(self, history: Sequence[int] | np.ndarray, count: int) -> list[int]:
        """Up to `count` tokens likely to follow `history`."""
        ...


def _fade(old: float | None, new: float) -> float:
    return new if old is None else MEMORY * old + (1 - MEMORY) * new


@dataclass
class PassTimes:
    """Running mean seconds of a model's pass over S new tokens, by S."""

    seconds: dict[int, float] = field(default_factory=dict)

    def add(self, tokens: int, seconds: float) -> None:
        self.seconds[tokens] = _fade(self.seconds.get(tokens), seconds)


@dataclass
class AcceptanceRate:
    """Draft tokens checked against what the model wrote, and how many it wrote, counted with
    fading weight (it starts at one in two); and what making a draft costs (0 for a lookup,
    the draft model's passes for a draft model)."""

    checked: float = 2.0
    right: float = 1.0
    rest_left: int = 0  # tokens to go before the source tries again
    guess_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.right / self.checked

    def draft_length(self, passes: PassTimes, always: bool = False) -> int:
        """How many tokens to guess now; 0 while the source rests. `always`: guess whatever
        it costs (to check that guessing never changes the text)."""
        rate = min(self.rate, 0.95)
        length = min(MAX_DRAFT, 1 + math.ceil(rate / (1 - rate)))
        if always:
            return length
        if self.rest_left > 0:
            self.rest_left -= 1
            return 0
        if rate < MIN_ACCEPTANCE:
            length = 0
        single = passes.seconds.get(1)
        while length > 0 and single is not None and (length + 1) in passes.seconds:
            expected_tokens = sum(rate**i for i in range(length + 1))
            cost = passes.seconds[length + 1] + (self.guess_seconds or 0.0)
            if expected_tokens * single >= cost:
                break
            length -= 1
        if length == 0:
            self.rest_left = REST_TOKENS
        return length

    def count(self, right: int, wrong: int) -> None:
        """Fold a finished draft in: `right` tokens written, then `wrong` (0 or 1) where the
        model wrote something else."""
        self.checked = MEMORY * self.checked + right + wrong
        self.right = MEMORY * self.right + right

    def add_guess_time(self, seconds: float) -> None:
        self.guess_seconds = _fade(self.guess_seconds, seconds)
