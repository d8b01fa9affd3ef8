"""A fake engine for GUI tests and UI work: printable-ASCII bytes with uniform probabilities.

It honours the same contract as the real engine (seeded replay, cancel between tokens,
max_new_tokens, stop strings) at no compute cost; `token_delay_s` makes streaming visible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from app.engine.events import (
    Alternative,
    Candidate,
    EngineInfo,
    GenerationStats,
    Suggestion,
    TokenEvent,
)
from app.engine.generator import common_prefix_length, decoded_pieces
from app.engine.sampling_params import SamplingParams
from app.engine.scoring import ScoreTable, TokenScore
from app.engine.tokenizer import ByteTokenizer

_ALPHABET = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [" "]


class FakeEngine:
    def __init__(self, token_delay_s: float = 0.0, n_ctx: int = 1024) -> None:
        self.token_delay_s = token_delay_s
        self.info = EngineInfo(
            model_name="fake", precision="fp32", provider="FakeExecutionProvider", n_ctx=n_ctx
        )
        self.last_stats = GenerationStats()
        self._tokenizer = ByteTokenizer()
        self._scored: list[TokenScore] = []  # the last score() call's, for prefix reuse
        self.rescored_from = 0  # where the last score() call began computing

    def count_tokens(self, text: str) -> int:
        return len(text.encode("utf-8"))

    def generate(
        self, prompt: str, params: SamplingParams, cancel: threading.Event | None = None,
        n_alternatives: int = 10,
    ) -> Iterator[TokenEvent]:
        rng = np.random.default_rng(params.seed)
        p = 1.0 / len(_ALPHABET)
        stats = GenerationStats(prompt_tokens=self.count_tokens(prompt))
        self.last_stats = stats
        text = ""
        started = time.perf_counter()
        for _ in range(params.max_new_tokens):
            if cancel is not None and cancel.is_set():
                stats.stop_reason = "cancelled"
                return
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            index = 0 if params.greedy else int(rng.integers(len(_ALPHABET)))
            piece = _ALPHABET[index]
            text += piece
            alternatives = tuple(
                Alternative(token_id=ord(c), text=c, p=p) for c in _ALPHABET[:n_alternatives]
            )
            stats.new_tokens += 1
            elapsed = time.perf_counter() - started
            stats.decode_tok_s = stats.new_tokens / elapsed if elapsed > 0 else 0.0
            yield TokenEvent(token_id=ord(piece), text=piece, p=p, alternatives=alternatives)
            if any(stop in text for stop in params.stop_strings):
                stats.stop_reason = "stop_string"
                return
        stats.stop_reason = "max_new_tokens"

    def suggest(
        self,
        prompt: str,
        params: SamplingParams,
        n_alternatives: int = 3,
        max_tokens: int = 8,
        stop_at_sentence_end: bool = False,
        cancel: threading.Event | None = None,
    ) -> list[Suggestion]:
        suggestions = []
        base_seed = params.seed if params.seed is not None else 0
        for k in range(n_alternatives):
            run = params.replace(max_new_tokens=max_tokens, seed=base_seed + k, temperature=1.0)
            events = tuple(self.generate(prompt, run, cancel))
            if cancel is not None and cancel.is_set():
                return []
            suggestions.append(Suggestion("".join(e.text for e in events), events))
        return suggestions

    def warm(self, prompt: str, room: int, cancel: threading.Event | None = None) -> int:
        return 0  # nothing to cache

    def candidates(self, prompt: str, params: SamplingParams, top_n: int = 20) -> list[Candidate]:
        p = 1.0 / len(_ALPHABET)
        kept_count = len(_ALPHABET) if params.top_k == 0 else min(params.top_k, len(_ALPHABET))
        if params.greedy:
            kept_count = 1
        return [
            Candidate(
                token_id=ord(c),
                text=c,
                p_model=p,
                p_final=1.0 / kept_count if i < kept_count else 0.0,
                kept=i < kept_count,
            )
            for i, c in enumerate(_ALPHABET[:top_n])
        ]

    def score(self, text: str, cancel: threading.Event | None = None,
              progress: Callable[[int, int], None] | None = None) -> ScoreTable:
        """One token per byte, ranked by a fixed rule rather than a model, so each GLTR bucket
        has its own kind of character: a lowercase letter or a space is the first choice,
        a capital ranks 50, a digit or punctuation 500, anything else (a line break, bytes of
        a non-ASCII character) 5000. p = 1 / (rank (rank + 1)), which sums to 1 over ranks."""
        ids = self._tokenizer.encode(text)
        pieces = decoded_pieces(self._tokenizer, ids)
        known = common_prefix_length([s.token_id for s in self._scored], ids)
        scores = self._scored[:known]
        self.rescored_from = known
        offset = scores[-1].end if scores else 0
        alternatives = tuple((ord(c), c, 1.0 / ((r + 1) * (r + 2))) for r, c in enumerate("eta"))
        for i in range(known, len(ids)):
            if cancel is not None and cancel.is_set():
                break
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            rank = _fake_rank(ids[i])
            end = offset + len(pieces[i])
            scores.append(TokenScore(ids[i], pieces[i], offset, end, 1.0 / (rank * (rank + 1)),
                                     rank, alternatives))
            offset = end
            if progress is not None:
                progress(len(scores), len(ids))
        self._scored = scores
        return ScoreTable.of_scores(scores, self._tokenizer.token_text, len(alternatives))

    def close(self) -> None:
        pass


def _fake_rank(byte: int) -> int:
    char = chr(byte)
    if char == " " or "a" <= char <= "z":
        return 1
    if "A" <= char <= "Z":
        return 50
    if byte < 128 and char.isprintable():
        return 500
    return 5000
