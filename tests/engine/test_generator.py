"""What generate / suggest / candidates promise, on a real tiny model."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import app.engine.generator as generator_module
from app.engine.engine import Engine, load_engine
from app.engine.events import TokenEvent
from app.engine.generator import context_window, ends_sentence
from app.engine.sampling import MirostatState, SamplerContext
from app.engine.sampling_params import GREEDY, SamplingParams

PROMPT = "The lighthouse keeper climbed the stairs"


@pytest.fixture()
def engine(tiny_model: Path) -> Engine:
    return load_engine(tiny_model, device="cpu")


def text_of(events: Iterable[TokenEvent]) -> str:
    return "".join(e.text for e in events)


def test_same_seed_same_text_other_seed_other_text(engine: Engine) -> None:
    params = SamplingParams(seed=11, max_new_tokens=40, temperature=1.0)
    first = text_of(list(engine.generate(PROMPT, params)))
    again = text_of(list(engine.generate(PROMPT, params)))
    other = text_of(list(engine.generate(PROMPT, params.replace(seed=12))))
    assert first == again
    assert first != other


def test_events_carry_probability_and_alternatives(engine: Engine) -> None:
    events = list(engine.generate(PROMPT, GREEDY.replace(max_new_tokens=5)))
    for event in events:
        assert 0 < event.p <= 1
        assert len(event.alternatives) == 10
        probs = [a.p for a in event.alternatives]
        assert probs == sorted(probs, reverse=True)
        assert event.alternatives[0].token_id == event.token_id  # greedy takes the top one
        assert event.alternatives[0].p == pytest.approx(event.p)


def test_stop_string_ends_generation_before_it(engine: Engine) -> None:
    free = text_of(list(engine.generate(PROMPT, GREEDY.replace(max_new_tokens=30))))
    stop = free[10:14]
    events = list(engine.generate(PROMPT, GREEDY.replace(max_new_tokens=30,
                                                          stop_strings=(stop,))))
    assert text_of(events) == free[: free.index(stop)]
    assert engine.last_stats.stop_reason == "stop_string"


def test_banned_string_never_appears_and_the_rest_is_unchanged(engine: Engine) -> None:
    free = text_of(list(engine.generate(PROMPT, GREEDY.replace(max_new_tokens=30))))
    banned = free.split()[2]  # a word greedy decoding writes
    events = list(engine.generate(PROMPT, GREEDY.replace(max_new_tokens=30,
                                                          banned_strings=(banned,))))
    text = text_of(events)
    assert banned not in text
    # Only the token where the banned word began is replaced (GPT-2 tokens carry the space
    # before a word, so that space may change too); everything before it stays.
    assert text.startswith(free[: free.index(banned)].rstrip())
    assert len(events) == 30


def test_cancel_stops_between_tokens(engine: Engine) -> None:
    cancel = threading.Event()
    got = []
    for event in engine.generate(PROMPT, GREEDY.replace(max_new_tokens=100), cancel):
        got.append(event)
        if len(got) == 3:
            cancel.set()
    assert len(got) == 3
    assert engine.last_stats.stop_reason == "cancelled"


def test_max_new_tokens_and_eos(engine: Engine) -> None:
    assert len(list(engine.generate(PROMPT, GREEDY.replace(max_new_tokens=7)))) == 7
    eos = engine.tokenizer.eos_id
    events = list(engine.generate(PROMPT, GREEDY.replace(logit_bias={eos: 100.0})))
    assert events == [] and engine.last_stats.stop_reason == "eos"


def test_suggestions_are_distinct_batched_and_reuse_the_document(engine: Engine) -> None:
    document = PROMPT + " every evening and"
    list(engine.generate(document, GREEDY.replace(max_new_tokens=1)))
    suggestions = engine.suggest(document + " lit", SamplingParams(seed=5), n_alternatives=3,
                                 max_tokens=8)
    assert len(suggestions) == 3
    assert len({s.events[0].token_id for s in suggestions}) == 3  # differ from the first token
    assert all(1 <= len(s.events) <= 8 for s in suggestions)
    assert all(s.text == text_of(list(s.events)) for s in suggestions)
    # only " lit" was new: the rest of the document came from the cache
    assert engine.last_stats.reused_tokens == engine.count_tokens(document)


def test_greedy_suggestions_start_with_the_most_likely_tokens(engine: Engine) -> None:
    candidates = engine.candidates(PROMPT, GREEDY, top_n=3)
    suggestions = engine.suggest(PROMPT, GREEDY, n_alternatives=3, max_tokens=4)
    assert [s.events[0].token_id for s in suggestions] == [c.token_id for c in candidates]


def test_what_ends_a_sentence_for_a_suggestion() -> None:
    for text in (" the lamp.", " the lamp. ", ' he said."', " (at dawn.)", " why?’", " and\n",
                 " wait…"):
        assert ends_sentence(text), text
    for text in (" the lamp", " Mr", "\n", " ", ' said. "', " 3,5", ""):
        assert not ends_sentence(text), text


def test_suggestions_asked_to_end_at_a_sentence_end_stop_there(engine: Engine) -> None:
    # '."' (id 526) made likely, so most alternatives reach it within a few tokens
    params = SamplingParams(seed=3, temperature=1.0, logit_bias={526: 6.0})
    stopped = engine.suggest(PROMPT, params, n_alternatives=3, max_tokens=12,
                             stop_at_sentence_end=True)
    running = engine.suggest(PROMPT, params, n_alternatives=3, max_tokens=12)
    assert any(s.text.endswith('."') for s in stopped)  # the closing quote is kept
    for suggestion in stopped:
        pieces = [e.text for e in suggestion.events]
        ended = [ends_sentence("".join(pieces[:n])) for n in range(1, len(pieces) + 1)]
        assert not any(ended[:-1]), suggestion.text  # nothing runs past the first end
        assert ended[-1] or len(pieces) == 12, suggestion.text
    # without the option the same alternatives run on to the length asked for
    assert [len(s.events) for s in running] == [12] * 3
    assert min(len(s.events) for s in stopped) < 12


def test_cancelled_suggestion_returns_nothing(engine: Engine) -> None:
    cancel = threading.Event()
    cancel.set()
    assert engine.suggest(PROMPT, SamplingParams(), cancel=cancel) == []


def test_candidates_show_what_the_chain_keeps(engine: Engine) -> None:
    top3 = engine.candidates(PROMPT, SamplingParams(top_k=3, top_p=1.0, min_p=0.0), top_n=10)
    assert [c.kept for c in top3] == [True] * 3 + [False] * 7
    assert sum(c.p_final for c in top3) == pytest.approx(1.0)
    greedy = engine.candidates(PROMPT, GREEDY, top_n=5)
    assert [c.kept for c in greedy] == [True, False, False, False, False]


def test_context_window_keeps_the_end_and_moves_in_quarter_steps() -> None:
    ids = list(range(1500))
    window = context_window(ids, n_ctx=1024, room=100)
    assert window[-1] == 1499 and len(window) <= 924
    assert window[0] % 256 == 0
    # typing a few more tokens keeps the same start, so the cache stays valid
    assert context_window([*ids, 1, 2, 3], 1024, 100)[0] == window[0]
    assert context_window(list(range(10)), 1024, 100) == list(range(10))


def test_generation_past_the_context_slides_instead_of_failing(engine: Engine) -> None:
    prompt = " ".join(["word"] * 1000)
    events = list(engine.generate(prompt, SamplingParams(seed=1, max_new_tokens=300)))
    assert len(events) == 300 or engine.last_stats.stop_reason == "eos"
    assert engine.generator.cache.pos <= engine.info.n_ctx


def test_the_preview_and_suggestions_agree_on_the_window() -> None:
    # They alternate on every keystroke; different windows would re-read the whole context.
    for n in range(900, 3200, 7):
        ids = list(range(n))
        assert context_window(ids, 1024, 1) == context_window(ids, 1024, 9), n


def test_a_suggestion_after_a_keystroke_matches_one_from_scratch(tiny_model: Path) -> None:
    warm, fresh = load_engine(tiny_model, device="cpu"), load_engine(tiny_model, device="cpu")
    document = PROMPT + " every evening and"
    warm.suggest(document, SamplingParams(seed=3), n_alternatives=3, max_tokens=6)
    warm.candidates(document + " l", SamplingParams())
    again = warm.suggest(document + " lit", GREEDY, n_alternatives=3, max_tokens=6)
    assert warm.last_stats.reused_tokens > 0
    scratch = fresh.suggest(document + " lit", GREEDY, n_alternatives=3, max_tokens=6)
    assert [s.text for s in again] == [s.text for s in scratch]
    for a, b in zip(again, scratch, strict=True):  # the same up to prefill-vs-step rounding
        assert [e.p for e in a.events] == pytest.approx([e.p for e in b.events], rel=1e-4)


def test_typing_across_a_slide_point_rereads_the_window_once(engine: Engine) -> None:
    text = [100 + (i * 7) % 5000 for i in range(3200)]
    gen = engine.generator
    gen.suggest(text[:3000], GREEDY, 3, 8)  # the window starts at 2304; at 3073 it would slide
    full_reads = []
    # the length goes back and forth as words grow and are retokenised; the preview runs between
    for n in (3072, 3073, 3072, 3074, 3073, 3090, 3104, 3105, 3104, 3106, 3105, 3110):
        gen.candidates(text[:n], GREEDY)
        full_reads += [n] if gen.reused_tokens == 0 else []
        gen.suggest(text[:n], GREEDY, 3, 8)
        full_reads += [n] if gen.reused_tokens == 0 else []
    assert full_reads == [3105]  # once, SLIDE_SLACK tokens past the window's limit


def test_reading_ahead_leaves_the_next_suggestion_only_the_typed_keys(
        engine: Engine, tiny_model: Path) -> None:
    document = PROMPT + ", counting every step of the way up to the lamp room"
    n_tokens = engine.count_tokens(document)
    assert engine.warm(document, room=9) == n_tokens  # a fresh cache reads it all
    assert engine.warm(document, room=9) == 1  # then only the last token, for its logits
    cancel = threading.Event()
    cancel.set()
    assert engine.warm(PROMPT + " in the dark", room=9, cancel=cancel) == 0  # stopped at once
    assert engine.suggest(document + " and", SamplingParams(seed=3), 3, 8)
    assert engine.last_stats.reused_tokens == n_tokens  # " and" was all that ran
    cold = load_engine(tiny_model, device="cpu")  # without reading ahead: the whole document
    assert cold.suggest(document + " and", SamplingParams(seed=3), 3, 8)
    assert cold.last_stats.reused_tokens == 0


# --- Mirostat ---------------------------------------------------------------------------------

MIROSTAT = SamplingParams(mirostat=2, seed=4, max_new_tokens=30)


@dataclass
class Draw:
    """One call of the sampler, as the generator made it."""

    row_start: int  # address of the history row: which suggestion row drew
    position: int  # tokens of context before the draw (prompt + generated)
    banned_ids: frozenset[int]
    mu_before: float
    mu_after: float


def record_draws(monkeypatch: pytest.MonkeyPatch) -> list[Draw]:
    """Every Mirostat draw the generator makes from now on (generate draws through
    draw_next_token, suggest through sample_next_token); the real sampler still draws."""
    draws: list[Draw] = []

    def recording(draw: Callable[..., Any]) -> Callable[..., Any]:
        def record(logits: np.ndarray, params: SamplingParams, ctx: SamplerContext,
                   rng: np.random.Generator, mirostat: MirostatState | None = None) -> Any:
            assert mirostat is not None
            mu_before = mirostat.mu
            drawn = draw(logits, params, ctx, rng, mirostat)
            draws.append(Draw(ctx.history.ctypes.data, len(ctx.history), ctx.banned_ids,
                              mu_before, mirostat.mu))
            return drawn
        return record

    for name in ("sample_next_token", "draw_next_token"):
        monkeypatch.setattr(generator_module, name, recording(getattr(generator_module, name)))
    return draws


def test_suggestions_work_with_mirostat(engine: Engine) -> None:
    suggestions = engine.suggest(PROMPT, MIROSTAT, n_alternatives=3, max_tokens=8)
    assert len(suggestions) == 3
    assert len({s.events[0].token_id for s in suggestions}) == 3
    assert all(1 <= len(s.events) <= 8 for s in suggestions)


def test_a_one_row_mirostat_suggestion_writes_what_generate_writes(engine: Engine) -> None:
    # Mirostat's mu carried from token to token exactly as in generate, so the same seed
    # gives the same tokens.
    generated = list(engine.generate(PROMPT, MIROSTAT.replace(max_new_tokens=8)))
    (suggestion,) = engine.suggest(PROMPT, MIROSTAT, n_alternatives=1, max_tokens=8)
    assert [e.token_id for e in suggestion.events] == [e.token_id for e in generated]


def test_each_suggestion_row_has_its_own_mirostat_mu(engine: Engine,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    draws = record_draws(monkeypatch)
    engine.suggest(PROMPT, MIROSTAT, n_alternatives=3, max_tokens=8)
    rows: dict[int, list[Draw]] = {}
    for draw in draws:
        rows.setdefault(draw.row_start, []).append(draw)
    assert len(rows) == 3
    initial = MirostatState.initial(MIROSTAT).mu
    first_draws = [row[0].mu_before for row in rows.values()]
    assert first_draws == [initial] * 3  # rows 1.. start fresh: their first tokens were picked
    for row in rows.values():  # each draw starts from the mu its own row's last draw left
        assert [d.mu_before for d in row[1:]] == [d.mu_after for d in row[:-1]]


def test_undoing_a_banned_string_also_undoes_what_mirostat_learnt_from_it(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    free = text_of(list(engine.generate(PROMPT, MIROSTAT)))
    banned = free.split()[2]  # a word this seed writes
    draws = record_draws(monkeypatch)
    text = text_of(list(engine.generate(PROMPT, MIROSTAT.replace(banned_strings=(banned,)))))
    assert banned not in text
    first_mu = {}
    for draw in draws:
        first_mu.setdefault(draw.position, draw.mu_before)
    retries = [d for d in draws if d.banned_ids]
    assert retries
    for retry in retries:  # drawn again with mu as it was before the undone tokens
        assert retry.mu_before == first_mu[retry.position]
