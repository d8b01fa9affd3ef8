"""How surprising each token of a text is to the model (GLTR-style), and where a text repeats.

`ScoreTable` is what the engine's `score` hands back: every token's scores as arrays, one row
per token, read as `TokenScore`s one at a time; `rank_tokens` turns a block of logits into
scores; `repeated_runs` finds token runs that already appeared earlier in the text;
`perplexity` sums scores up. Pure numpy, no model: the generator feeds the logits.

Shapes: S scored positions, V vocab, K alternatives, N tokens of a table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import overload

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
    # The most likely tokens here, best first, as (token id, text, p).
    top: tuple[tuple[int, str, float], ...] = ()

    @property
    def alternatives(self) -> tuple[Alternative, ...]:
        return tuple(Alternative(token_id, text, p) for token_id, text, p in self.top)

    @property
    def bucket(self) -> int:
        """0: top 10, 1: top 100, 2: top 1000, 3: beyond (GLTR's green/yellow/red/purple)."""
        return rank_bucket(self.rank)


@dataclass(frozen=True, eq=False)
class ScoreTable(Sequence[TokenScore]):
    """The scores of a text's tokens, one row per token, as arrays: what the engine's `score`
    hands back. Reading one gives a TokenScore, made on demand; a slice is a table.

    Arrays, not an object per token: 20,000 words are ~28,000 tokens, and as TokenScores with
    their alternatives (~200,000 objects) they kept Python's garbage collector busy, whose
    passes hold the GIL and so stalled the window whichever thread ran them (2026-12-02). A
    table is a dozen objects however long the text. Read-only: it is handed between threads."""

    token_ids: np.ndarray  # [N] int64
    texts: list[str]  # [N] decoded pieces ("" for a token that only begins a character)
    starts: np.ndarray  # [N] int64 character offsets into the decoded text (Python str indices)
    ends: np.ndarray  # [N] int64
    probabilities: np.ndarray  # [N] float32: softmax of the raw logits
    ranks: np.ndarray  # [N] int64: 1 + how many tokens had a strictly higher logit
    top_ids: np.ndarray  # [N, K] int64: the most likely tokens there, best first
    top_probabilities: np.ndarray  # [N, K] float32
    token_text: Callable[[int], str]  # an alternative's text from its id

    @staticmethod
    def empty(token_text: Callable[[int], str],
              n_alternatives: int = SCORE_ALTERNATIVES) -> ScoreTable:
        no_ids = np.zeros(0, np.int64)
        return ScoreTable(no_ids, [], no_ids, no_ids, np.zeros(0, np.float32), no_ids,
                          np.zeros((0, n_alternatives), np.int64),
                          np.zeros((0, n_alternatives), np.float32), token_text)

    @staticmethod
    def of_scores(scores: Sequence[TokenScore], token_text: Callable[[int], str],
                  n_alternatives: int = SCORE_ALTERNATIVES) -> ScoreTable:
        """A table of TokenScores (each with n_alternatives alternatives, or none)."""
        if not scores:
            return ScoreTable.empty(token_text, n_alternatives)
        return ScoreTable(
            np.array([s.token_id for s in scores], np.int64), [s.text for s in scores],
            np.array([s.start for s in scores], np.int64),
            np.array([s.end for s in scores], np.int64),
            np.array([s.p for s in scores], np.float32),
            np.array([s.rank for s in scores], np.int64),
            np.array([[t for t, _, _ in s.top] for s in scores], np.int64)
            .reshape(len(scores), -1),
            np.array([[q for _, _, q in s.top] for s in scores], np.float32)
            .reshape(len(scores), -1),
            token_text)

    @staticmethod
    def joined(tables: Sequence[ScoreTable]) -> ScoreTable:
        """One table of several, in order (at least one)."""
        filled = [t for t in tables if len(t)]  # an empty one may keep another K
        if len(filled) <= 1:
            return filled[0] if filled else tables[0]
        tables = filled
        return ScoreTable(
            np.concatenate([t.token_ids for t in tables]), [x for t in tables for x in t.texts],
            np.concatenate([t.starts for t in tables]), np.concatenate([t.ends for t in tables]),
            np.concatenate([t.probabilities for t in tables]),
            np.concatenate([t.ranks for t in tables]),
            np.concatenate([t.top_ids for t in tables]),
            np.concatenate([t.top_probabilities for t in tables]), tables[0].token_text)

    def take(self, rows: np.ndarray) -> ScoreTable:
        """The table of these rows (an array of indices)."""
        return ScoreTable(self.token_ids[rows], [self.texts[i] for i in rows.tolist()],
                          self.starts[rows], self.ends[rows], self.probabilities[rows],
                          self.ranks[rows], self.top_ids[rows], self.top_probabilities[rows],
                          self.token_text)

    def alternatives(self, row: int) -> tuple[Alternative, ...]:
        return tuple(Alternative(t, self.token_text(t), q) for t, q in zip(
            self.top_ids[row].tolist(), self.top_probabilities[row].tolist(), strict=True))

    def __len__(self) -> int:
        return len(self.token_ids)

    @overload
    def __getitem__(self, index: int) -> TokenScore: ...

    @overload
    def __getitem__(self, index: slice) -> ScoreTable: ...

    def __getitem__(self, index: int | slice) -> TokenScore | ScoreTable:
        if isinstance(index, slice):
            return ScoreTable(self.token_ids[index], self.texts[index], self.starts[index],
                              self.ends[index], self.probabilities[index], self.ranks[index],
                              self.top_ids[index], self.top_probabilities[index],
                              self.token_text)
        row = range(len(self))[index]  # a negative index counts from the end; IndexError
        return TokenScore(int(self.token_ids[row]), self.texts[row], int(self.starts[row]),
                          int(self.ends[row]), float(self.probabilities[row]),
                          int(self.ranks[row]),
                          tuple((a.token_id, a.text, a.p) for a in self.alternatives(row)))

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same TokenScores."""
        if not isinstance(other, Sequence) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


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
    return probabilities_perplexity(np.fromiter((s.p for s in scores), np.float64, len(scores)))


def probabilities_perplexity(probabilities: np.ndarray) -> float | None:
    """exp of the mean negative log-probability of tokens with these probabilities; None for
    none."""
    if not len(probabilities):
        return None
    log_p = np.log(np.maximum(np.asarray(probabilities, np.float64), 1e-45))
    return float(np.exp(-log_p.mean()))


def repeated_runs(ids: Sequence[int] | np.ndarray,
                  words: Sequence[bool] | np.ndarray | None = None,
                  min_tokens: int = REPEAT_MIN_TOKENS) -> list[tuple[int, int]]:
    """Token ranges [start, end) that repeat a run of `min_tokens` or more tokens appearing
    earlier in `ids`, merged where they touch. `words[i]` says whether token i carries a letter
    or a digit: a run counts only if most of it does, so that punctuation and paragraph breaks
    (".\\n\\nThe") do not count as the text repeating itself. In numpy: it runs over every
    token of a long text after each edit."""
    ids = np.asarray(ids, np.int64)
    if len(ids) < min_tokens:
        return []
    # Each gram of min_tokens ids as one number, exactly: folded in a column at a time, the
    # number renamed after each fold by its rank among those there are (so it stays below
    # the token count, whatever the vocabulary).
    _, dense = np.unique(ids, return_inverse=True)
    count = len(ids) - min_tokens + 1
    grams = np.zeros(count, np.int64)
    for column in range(min_tokens):
        _, grams = np.unique(grams * len(ids) + dense[column : column + count],
                             return_inverse=True)
    counted = np.ones(count, bool)
    if words is not None:
        word_counts = np.lib.stride_tricks.sliding_window_view(
            np.asarray(words, np.int64), min_tokens).sum(axis=1)
        counted = word_counts * 2 > min_tokens
    candidates = np.flatnonzero(counted)
    # A counted gram repeats when an earlier counted one is the same: all but the first of
    # each (np.unique's index is the first occurrence).
    _, first = np.unique(grams[candidates], return_index=True)
    repeats = np.ones(len(candidates), bool)
    repeats[first] = False
    heads = candidates[repeats]
    # Each repeating gram marks its tokens; touching marks merge into one run.
    cover = np.zeros(len(ids) + 1, np.int64)
    np.add.at(cover, heads, 1)
    np.add.at(cover, heads + min_tokens, -1)
    marked = np.concatenate([[False], np.cumsum(cover[:-1]) > 0, [False]])
    edges = np.diff(marked.astype(np.int8))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(),
                    strict=True))


def is_word(text: str) -> bool:
    return any(c.isalnum() for c in text)
