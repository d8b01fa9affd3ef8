"""How far to guess ahead: the running acceptance rate of a source of draft tokens.

A pass of S tokens costs little more than one while reading the weights dominates (GPT-2 124M
int8, 2 threads, position 300, 2026-12-02: S = 2 / 4 / 5 / 8 took 1.09 / 1.28 / 1.42 / 1.62
times S = 1; on the 16M stand-in, where overheads dominate, S = 2 took 1.6 times). So a draft
is as long as the run of right guesses the recent acceptance rate a predicts (a / (1 - a)) plus
one, at most MAX_DRAFT; below MIN_ACCEPTANCE (sampled prose, where the model rarely copies: the
stand-in at temperature 0.8 wrote 12% of its prompt-lookup drafts) the source rests for
REST_TOKENS tokens before it tries again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_DRAFT = 8
MIN_ACCEPTANCE = 0.3
REST_TOKENS = 24
MEMORY = 0.8  # weight of what earlier drafts said against the latest one


@dataclass
class AcceptanceRate:
    """Draft tokens checked against what the model wrote, and how many it wrote, counted with
    fading weight. It starts at one in two."""

    checked: float = 2.0
    right: float = 1.0
    resting: int = 0  # tokens since the source last paused for a low rate

    @property
    def rate(self) -> float:
        return self.right / self.checked

    def draft_length(self) -> int:
        """How many tokens to guess now; 0 while the source rests."""
        if self.rate < MIN_ACCEPTANCE and self.resting < REST_TOKENS:
            self.resting += 1
            return 0
        self.resting = 0
        rate = min(self.rate, 0.95)
        return min(MAX_DRAFT, 1 + math.ceil(rate / (1 - rate)))

    def count(self, right: int, wrong: int) -> None:
        """Fold a finished draft in: `right` tokens written, then `wrong` (0 or 1) where the
        model wrote something else."""
        self.checked = MEMORY * self.checked + right + wrong
        self.right = MEMORY * self.right + right
