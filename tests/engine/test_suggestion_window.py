"""The window through which suggestions (and every other job) read a long document."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.engine.context import SLIDE_SLACK, context_window, window_limit
from app.engine.engine import Engine, load_engine
from app.engine.sampling_params import GREEDY, SamplingParams

N_CTX = 1024
# Rooms the jobs ask for: the preview (1), a suggestion of 8 tokens (9), a Generate of the
# default 128 tokens (128), of a quarter context (256).
ROOMS = (1, 9, 128, 256)


def long_text(n: int) -> list[int]:
    return [100 + (i * 7) % 5000 for i in range(n)]


@pytest.fixture()
def engine(tiny_model: Path) -> Engine:
    return load_engine(tiny_model, device="cpu")


def test_every_job_reads_the_same_window_of_a_long_text() -> None:
    # Otherwise the first suggestion after a Generate, and the first Generate after a
    # suggestion, would re-read the whole window.
    for n in range(700, 3300, 7):
        ids = list(range(n))
        windows = [context_window(ids, N_CTX, room) for room in ROOMS]
        assert all(w == windows[0] for w in windows), n


def test_a_long_text_is_read_through_half_to_three_quarters_of_the_context() -> None:
    for n in range(769, 4000, 13):
        window = context_window(list(range(n)), N_CTX, 9)
        assert window[-1] == n - 1
        assert N_CTX // 2 < len(window) <= 3 * N_CTX // 4, n
    assert context_window(list(range(768)), N_CTX, 9) == list(range(768))  # short: all of it


def test_a_3000_token_document_gets_what_the_model_gives_for_its_window(
        engine: Engine, tiny_model: Path) -> None:
    text = long_text(3000)
    gen = engine.generator
    gen.suggest(text[:2999], GREEDY, 3, 8)  # the keystroke before
    for params in (GREEDY, SamplingParams(seed=4)):
        typed = gen.suggest(text, params, 3, 8)
        assert len(typed) == 3 and all(len(s.events) == 8 for s in typed)
        window = text[-gen.last_stats.prompt_tokens :]
        assert len(window) <= window_limit(N_CTX, 9)
        fresh = load_engine(tiny_model, device="cpu").generator.suggest(window, params, 3, 8)
        assert [s.text for s in typed] == [s.text for s in fresh]
        for a, b in zip(typed, fresh, strict=True):  # up to prefill-vs-step rounding
            assert [e.p for e in a.events] == pytest.approx([e.p for e in b.events], rel=1e-4)


def test_typing_on_reads_the_window_again_once_per_slide_and_never_holds_more(
        engine: Engine) -> None:
    text = long_text(3400)
    gen = engine.generator
    gen.candidates(text[:3000], GREEDY)
    full_reads, longest = [], 0
    for n in range(3001, 3400):  # the preview, one token typed at a time
        gen.candidates(text[:n], GREEDY)
        full_reads += [n] if gen.reused_tokens == 0 else []
        longest = max(longest, gen.cache.pos)
    # 3,000 tokens are read from 2304; the window slides to 2560 SLIDE_SLACK tokens past its
    # limit of 768, and on to 2816 there again.
    assert full_reads == [2304 + 769 + SLIDE_SLACK, 2560 + 769 + SLIDE_SLACK]
    assert longest == window_limit(N_CTX, 1) + SLIDE_SLACK


def test_a_generate_between_suggestions_in_a_long_document_runs_only_what_is_new(
        engine: Engine) -> None:
    text = long_text(3000)
    gen = engine.generator
    gen.suggest(text, SamplingParams(seed=1), 3, 8)
    events = list(gen.generate(text, GREEDY.replace(max_new_tokens=100)))
    assert len(events) == 100
    # all but the last token, run again for the logits after it
    assert gen.last_stats.reused_tokens == gen.last_stats.prompt_tokens - 1
    gen.suggest([*text, *(e.token_id for e in events)], SamplingParams(seed=1), 3, 8)
    assert gen.last_stats.reused_tokens == gen.last_stats.prompt_tokens - 1


def test_a_suggestion_after_a_generate_that_slid_runs_only_what_is_new(engine: Engine) -> None:
    text = long_text(3000)
    gen = engine.generator
    # 696 tokens of window: the context is full after 328 new tokens, and generation slides
    events = list(gen.generate(text, GREEDY.replace(max_new_tokens=350)))
    assert len(events) == 350
    gen.suggest([*text, *(e.token_id for e in events)], SamplingParams(seed=1), 3, 8)
    assert gen.last_stats.reused_tokens == gen.last_stats.prompt_tokens - 1


def test_the_lens_and_suggestions_on_a_long_document_do_not_re_read_each_others_window(
        engine: Engine) -> None:
    """Scoring windows start on a grid of half a context, suggestions' on a quarter: with one
    cache, each keystroke's suggestion re-read ~700 tokens after the lens had scored, and the
    lens ~1,000 after the suggestion."""
    text = long_text(3000)
    gen = engine.generator
    runner = gen.runner
    forward = runner.forward
    fed: list[int] = []

    def counting_forward(ids: np.ndarray, cache: object, keep: int = 1) -> np.ndarray:
        fed.append(ids.shape[1])
        return forward(ids, cache, keep)  # type: ignore[arg-type]

    runner.forward = counting_forward  # type: ignore[method-assign]
    gen.suggest(text, SamplingParams(seed=1), 3, 8)
    gen.score(text)
    for typed in ([*text, 7], [*text, 7, 11]):  # a token typed, then another
        fed.clear()
        gen.suggest(typed, SamplingParams(seed=1), 3, 8)
        assert gen.last_stats.reused_tokens == gen.last_stats.prompt_tokens - 1
        fed.clear()
        scores = gen.score(typed)
        assert len(scores) == len(typed)
        assert sum(fed) <= 2  # the new token, and the one run again for its logits
