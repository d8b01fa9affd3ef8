"""Prompt lookup: draft tokens copied from the text and checked by the model in one pass must
never change what is written, only how many passes it takes."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from app.bench.common import STANDIN_DIR, STANDIN_TEXT
from app.engine.engine import Engine, load_engine
from app.engine.prompt_lookup import lookup_draft
from app.engine.sampling_params import GREEDY, SamplingParams

# A text that repeats itself, as documents do: names and phrases come back.
REPEATING = ("Mara walked to the old mill by the river. The old mill by the river was quiet. "
             "Mara walked to the old mill by the river again, and the old mill by the river")


def test_the_draft_is_what_followed_the_latest_earlier_occurrence() -> None:
    history = np.array([5, 6, 7, 1, 2, 5, 6, 7, 3, 4, 9, 5, 6, 7])
    assert lookup_draft(history, 2) == [3, 4]  # the latest "5 6 7", not the first
    assert lookup_draft(history, 10) == [3, 4, 9, 5, 6, 7]  # up to the end of the text


def test_the_longest_ngram_wins_and_no_match_means_no_draft() -> None:
    # "2 3" occurs twice: after "1 2 3" came 4, after "8 2 3" came 9; the text ends "1 2 3".
    history = np.array([1, 2, 3, 4, 8, 2, 3, 9, 1, 2, 3])
    assert lookup_draft(history, 1) == [4]
    assert lookup_draft(np.array([1, 2, 3, 4, 5]), 4) == []  # nothing repeats
    assert lookup_draft(np.array([1, 2, 1, 2]), 0) == []
    assert lookup_draft(np.array([7]), 3) == []


def _generate(engine: Engine, prompt: str, params: SamplingParams,
              lookup: bool) -> tuple[list[int], int, int]:
    """(tokens written, draft tokens checked, draft tokens written)."""
    engine.generator.lookup = lookup
    engine.generator.always_draft = True  # every guess checked: the text must not change
    engine.generator.cache.reset()
    tokens = [event.token_id for event in engine.generate(prompt, params)]
    stats = engine.last_stats
    return tokens, stats.draft_tokens, stats.accepted_draft_tokens


def test_greedy_text_is_the_same_with_and_without_lookup(tiny_model: Path,
                                                         standin_fp32: Path) -> None:
    held_out = (STANDIN_DIR / STANDIN_TEXT).read_text("utf-8")
    prompts = [REPEATING, held_out[:1200], held_out[30_000:31_200]]
    drafts_written = 0
    for folder in (tiny_model, standin_fp32):
        engine = load_engine(folder, device="cpu")
        for prompt in prompts:
            params = replace(GREEDY, max_new_tokens=100)
            plain, _, _ = _generate(engine, prompt, params, lookup=False)
            looked, _, written = _generate(engine, prompt, params, lookup=True)
            assert looked == plain
            assert engine.generator.cache.pos == len(engine.generator.cache.tokens)
            drafts_written += written
    assert drafts_written > 50  # the drafts were used, not only made


def test_sampled_text_is_the_same_for_the_same_seed(standin_fp32: Path) -> None:
    """The model draws every token from its own logits as it would without lookup; a draft is
    only used when it is what was drawn. So a seed writes the same text either way (and the
    text follows the model's distribution exactly, whatever the drafts were)."""
    engine = load_engine(standin_fp32, device="cpu")
    drafts_written = 0
    for seed in range(8):
        for params in (SamplingParams(seed=seed, max_new_tokens=60),  # the app's defaults
                       replace(GREEDY, temperature=0.7, seed=seed, max_new_tokens=60)):
            plain, _, _ = _generate(engine, REPEATING, params, lookup=False)
            looked, _, written = _generate(engine, REPEATING, params, lookup=True)
            assert looked == plain, f"seed {seed}"
            drafts_written += written
    assert drafts_written >= 10  # the path where a draft is used ran


def test_stop_and_banned_strings_cancel_and_what_follows_see_only_the_text(
        tiny_model: Path) -> None:
    """Drafts the model has not written yet never outlive a run: after a stop string, a banned
    string's undo or a cancel, the cache holds exactly the text, and the next suggestion is
    the one a fresh engine makes."""
    engine = load_engine(tiny_model, device="cpu")
    plain, _, _ = _generate(engine, REPEATING, replace(GREEDY, max_new_tokens=60),
                            lookup=False)
    text = engine.tokenizer.decode(plain)
    stop = text[len(text) // 2 : len(text) // 2 + 4]
    banned = text[len(text) // 3 : len(text) // 3 + 3]
    for params in (replace(GREEDY, max_new_tokens=60, stop_strings=(stop,)),
                   replace(GREEDY, max_new_tokens=60, banned_strings=(banned,))):
        with_lookup = engine.generate(REPEATING, params)
        written = "".join(event.text for event in with_lookup)
        cache = engine.generator.cache
        assert cache.pos == len(cache.tokens)
        engine.generator.lookup = False
        engine.generator.cache.reset()
        assert "".join(event.text for event in engine.generate(REPEATING, params)) == written
        engine.generator.lookup = True

    cancel = threading.Event()
    events = engine.generate(REPEATING, replace(GREEDY, max_new_tokens=60), cancel)
    for count, _ in enumerate(events):
        if count == 20:
            cancel.set()
    cache = engine.generator.cache
    assert cache.pos == len(cache.tokens)
    document = REPEATING + " and"
    after = engine.suggest(document, GREEDY)
    fresh = load_engine(tiny_model, device="cpu").suggest(document, GREEDY)
    assert [s.text for s in after] == [s.text for s in fresh]


def test_guessing_rests_where_it_would_cost_more_than_it_saves() -> None:
    from app.engine.speculation import REST_TOKENS, AcceptanceRate, PassTimes

    # GPT-2 124M int8 on 2 threads: a pass over several tokens costs little more than one.
    cheap = PassTimes({1: 4.0, 2: 4.4, 3: 4.5, 4: 5.1, 5: 5.7})
    # The 16M stand-in: overheads dominate, two tokens cost 1.6 times one.
    dear = PassTimes({1: 1.0, 2: 1.6, 3: 1.7, 4: 1.9, 5: 2.0})
    often_right = AcceptanceRate(checked=10, right=6)
    assert often_right.draft_length(cheap) >= 2
    assert often_right.draft_length(dear) >= 1  # 1 + 0.6 + 0.36 tokens are worth 1.7 passes
    rarely_right = AcceptanceRate(checked=10, right=3.5)  # above MIN_ACCEPTANCE
    assert rarely_right.draft_length(cheap) >= 1
    assert rarely_right.draft_length(dear) == 0  # 1.35 tokens are not worth 1.6 passes
    # ... and it rests before trying again, unless every guess is to be checked
    assert [rarely_right.draft_length(cheap) for _ in range(REST_TOKENS)] == [0] * REST_TOKENS
    assert rarely_right.draft_length(cheap) >= 1
    assert rarely_right.draft_length(dear, always=True) >= 1
    # Not measured yet: try, and learn what it costs.
    assert AcceptanceRate().draft_length(PassTimes()) >= 1
