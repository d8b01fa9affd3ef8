"""How surprising each token of a text is to the model (GLTR-style), and where a text repeats.

`TokenScore` is what the engine's `score` hands back per token; `rank_tokens` turns a block of
logits into scores; `repeated_runs` finds token runs that already appeared earlier in the text;
`perplexity` sums scores up. Pure numpy, no model: the generator feeds the logits.

Shapes: S scored positions, V vocab, K alternatives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.engine.events import Alternative

SCORE_ALTERNATIVES = 5  # top alternatives kept per token (the hover shows them)
REPEAT_MIN_TOKENS = 4  # a repeated passage is at least this many tokens long
# GLTR's buckets: the token was in the model's top 10, top 100, top 1000, or beyond.
RANK_BUCKETS = (10, 100, 1000)


@dataclass(frozen=True)
class TokenScore:
    """One token of a scored text: how likely the model found it where it stands."""

    token_id: int
    text: str  # the decoded piece; "" for a token that only begins a multi-byte character
    start: int  # character offsets into the decoded text (Python str indices)
    end: int
    p: float  # the model's probability of this token (softmax of raw logits, in fp32)
    rank: int  # 1 + how many tokens had a strictly higher logit: 1 is the model's first choice
    # The most likely tokens here, best first, as (token id, text, p). Plain tuples rather than
    # Alternatives: a long text has hundreds of thousands of them, and the garbage collector
    # stops walking tuples of numbers and strings, whereas a full pass over as many objects
    # held the GIL 40-116 ms and stalled the window (28,000 tokens scored, 2026-12-02).
    top: tuple[tuple[int, str, float], ...] = ()

    @property
    def alternatives(self) -> tuple[Alternative, ...]:
        return tuple(Alternative(token_id, text, p) for token_id, text, p in self.top)

    @property
    def bucket(self) -> int:
        """0: top 10, 1: top 100, 2: top 1000, 3: beyond (GLTR's green/yellow/red/purple)."""
        return rank_bucket(self.rank)


def rank_bucket(rank: int) -> int:
    return sum(1 for limit in RANK_BUCKETS if rank > limit)


def rank_tokens(logits: np.ndarray, targets: Sequence[int],
                n_alternatives: int = SCORE_ALTERNATIVES,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """[S, V] logits, [S] the tokens that came -> their probabilities [S] and ranks [S], and the
    top alternatives' ids [S, K] and probabilities [S, K], best first."""
    logits = np.asarray(logits, np.float32)
    rows = np.arange(len(targets))
    target_ids = np.asarray(targets, np.int64)
    target_logits = logits[rows, target_ids]  # [S]
    ranks = (logits > target_logits[:, None]).sum(axis=1) + 1  # [S]
    top = logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]  # [S] log-sum-exp
    probabilities = np.exp(target_logits - log_z)
    # K argmax passes, not argpartition: a few alternatives out of 50,257 this way cost a
    # tenth of the time (128 rows: 20 ms against 160 ms here).
    k = min(n_alternatives, logits.shape[1])
    masked = logits.copy()
    top_ids = np.zeros((len(rows), k), np.int64)  # [S, K], best first
    for column in range(k):
        top_ids[:, column] = masked.argmax(axis=1)
        masked[rows, top_ids[:, column]] = -np.inf
    top_probabilities = np.exp(logits[rows[:, None], top_ids] - log_z[:, None])
    return probabilities, ranks, top_ids, top_probabilities


def perplexity(scores: Sequence[TokenScore]) -> float | None:
    """exp of the mean negative log-probability; None for no tokens."""
    if not scores:
        return None
    total = sum(-math.log(max(s.p, 1e-45)) for s in scores)
    return math.exp(total / len(scores))


def repeated_runs(ids: Sequence[int], words: Sequence[bool] | None = None,
                  min_tokens: int = REPEAT_MIN_TOKENS) -> list[tuple[int, int]]:
    """Token ranges [start, end) that repeat a run of `min_tokens` or more tokens appearing
    earlier in `ids`, merged where they touch. `words[i]` says whether token i carries a letter
    or a digit: a run counts only if most of it does, so that punctuation and paragraph breaks
    (".\\n\\nThe") do not count as the text repeating itself."""
    seen: set[tuple[int, ...]] = set()
    marked = [False] * len(ids)
    for i in range(len(ids) - min_tokens + 1):
        gram = tuple(ids[i : i + min_tokens])
        if words is not None and sum(words[i : i + min_tokens]) * 2 <= min_tokens:
            continue
        if gram in seen:
            for j in range(i, i + min_tokens):
                marked[j] = True
        else:
            seen.add(gram)
    runs: list[tuple[int, int]] = []
    for i, on in enumerate(marked):
        if not on:
            continue
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def is_word(text: str) -> bool:
    return any(c.isalnum() for c in text)
