"""The interface the UI drives: the real ONNX engine and the fake engine both provide it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from app.engine.events import Candidate, EngineInfo, GenerationStats, Suggestion, TokenEvent
from app.engine.sampling_params import SamplingParams
from app.engine.scoring import ScoreTable


class TextEngine(Protocol):
    info: EngineInfo
    last_stats: GenerationStats

    def count_tokens(self, text: str) -> int:
        """How many tokens `text` is."""
        ...

    def generate(
        self, prompt: str, params: SamplingParams, cancel: threading.Event | None = None,
        n_alternatives: int = 10,
    ) -> Iterator[TokenEvent]:
        """Continue `prompt`, one event per token; returns between tokens once `cancel` is set.
        Each event carries the `n_alternatives` most likely tokens at its step.

        A prompt longer than the context keeps its end. The KV cache keeps the prompt, so a
        later call whose prompt shares a prefix runs only the new tokens.
        """
        ...

    def suggest(
        self,
        prompt: str,
        params: SamplingParams,
        n_alternatives: int = 3,
        max_tokens: int = 8,
        stop_at_sentence_end: bool = False,
        cancel: threading.Event | None = None,
    ) -> list[Suggestion]:
        """Up to `n_alternatives` short continuations computed together; [] when cancelled."""
        ...

    def warm(self, prompt: str, room: int, cancel: threading.Event | None = None) -> int:
        """Read `prompt` into the KV cache ahead of time, as a later call leaving `room` tokens
        of context free will want it (a suggestion: its length + 1), so that call runs only
        what changed since. Returns how many tokens were run."""
        ...

    def candidates(self, prompt: str, params: SamplingParams, top_n: int = 20) -> list[Candidate]:
        """The most likely next tokens after `prompt`, each marked kept or cut by the chain."""
        ...

    def score(self, text: str, cancel: threading.Event | None = None,
              progress: Callable[[int, int], None] | None = None) -> ScoreTable:
        """Every token of `text` with its probability, rank and the model's top alternatives
        where it stands, and its character offsets in `text`; `progress(scored, total)` after
        each chunk. Returns between chunks once `cancel` is set, with the scores of a prefix.
        A text sharing a prefix with the last one scored runs only from where they differ."""
        ...

    def close(self) -> None:
        ...
