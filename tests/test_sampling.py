"""The sampler chain's specs: each sampler's math on small hand-made vectors, the fast paths
against naive references, the chain's order, greedy, bans, mirostat and seeded replay."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from app.engine.errors import InvalidParameterError
from app.engine.sampling import (
    MirostatState,
    SamplerContext,
    apply_dry,
    apply_logit_bias,
    apply_min_p,
    apply_mirostat_v2,
    apply_no_repeat_ngram,
    apply_presence_frequency_penalty,
    apply_repetition_penalty,
    apply_sampler_chain,
    apply_temperature,
    apply_top_k,
    apply_top_p,
    apply_typical_p,
    apply_xtc,
    model_probabilities,
    sample_next_token,
    softmax,
    top_alternatives,
)
from app.engine.sampling_params import SAMPLER_STEPS, SamplingParams

V = 50257  # GPT-2's vocabulary, for the fast paths that only kick in at this size
# Every step off, so a test turns on just what it checks.
PLAIN = SamplingParams(
    temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, seed=0
)
NO_HISTORY = SamplerContext(history=np.zeros(0, dtype=np.int64))


def logits_of(probs: list[float]) -> np.ndarray:
    """Logits [N] whose softmax is `probs`."""
    return np.log(np.asarray(probs, dtype=np.float64)).astype(np.float32)


def kept(logits: np.ndarray) -> set[int]:
    return {int(i) for i in np.flatnonzero(np.isfinite(logits))}


def random_logits(seed: int, size: int = V, scale: float = 3.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(size) * scale).astype(np.float32)


# --- softmax ---------------------------------------------------------------------------------


def test_softmax_is_exp_over_sum_and_cut_tokens_get_zero() -> None:
    probs = softmax(np.array([0.0, math.log(2.0), -np.inf], dtype=np.float32))
    np.testing.assert_allclose(probs, [1 / 3, 2 / 3, 0.0], rtol=1e-6)


@given(
    hnp.arrays(np.float32, st.integers(1, 300), elements=st.floats(-80, 80, width=32)),
    st.data(),
)
@settings(deadline=None)
def test_softmax_sums_to_one_with_zero_for_cut_tokens(logits: np.ndarray,
                                                      data: st.DataObject) -> None:
    cut = data.draw(st.sets(st.integers(0, logits.size - 1), max_size=logits.size - 1))
    logits[list(cut)] = -np.inf
    probs = softmax(logits)
    assert abs(float(probs.sum(dtype=np.float64)) - 1.0) < 1e-5
    assert (probs >= 0).all()
    assert (probs[list(cut)] == 0).all()


# --- penalties -------------------------------------------------------------------------------


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_seen() -> None:
    logits = np.array([2.0, -2.0, 1.0, -1.0, 0.5], dtype=np.float32)
    out = apply_repetition_penalty(logits, np.array([0, 1, 3, 0]), penalty=2.0, last_n=0)
    np.testing.assert_allclose(out, [1.0, -4.0, 1.0, -2.0, 0.5])


def test_repetition_penalty_only_counts_the_last_n_tokens() -> None:
    logits = np.array([2.0, -2.0, 1.0, -1.0], dtype=np.float32)
    out = apply_repetition_penalty(logits, np.array([0, 1, 3]), penalty=2.0, last_n=1)
    np.testing.assert_allclose(out, [2.0, -2.0, 1.0, -2.0])


def test_presence_and_frequency_penalties_subtract_per_seen_token_and_per_count() -> None:
    logits = np.zeros(4, dtype=np.float32)
    out = apply_presence_frequency_penalty(
        logits, np.array([0, 0, 1, 0]), presence=0.5, frequency=0.25
    )
    np.testing.assert_allclose(out, [-(0.5 + 3 * 0.25), -(0.5 + 0.25), 0.0, 0.0])
    out = apply_presence_frequency_penalty(
        logits, np.array([0, 0, 1, 0]), presence=0.5, frequency=0.25, last_n=2
    )
    np.testing.assert_allclose(out, [-0.75, -0.75, 0.0, 0.0])


def test_no_repeat_ngram_bans_exactly_the_token_that_completes_a_seen_ngram() -> None:
    logits = np.zeros(10, dtype=np.float32)
    assert kept(apply_no_repeat_ngram(logits, np.array([5, 6, 7, 5, 6]), 3)) == set(range(10)) - {
        7
    }
    assert kept(apply_no_repeat_ngram(logits, np.array([1, 2, 1, 3, 1]), 2)) == set(range(10)) - {
        2,
        3,
    }
    assert kept(apply_no_repeat_ngram(logits, np.array([4, 4]), 1)) == set(range(10)) - {4}
    assert kept(apply_no_repeat_ngram(logits, np.array([5, 6, 7, 5, 6]), 0)) == set(range(10))


def _no_repeat_reference(history: list[int], n: int) -> set[int]:
    """Hugging Face's rule, spelled out: every n-gram's last token, where its first n - 1
    tokens equal the last n - 1 tokens of history."""
    if len(history) < n - 1:
        return set()
    tail = tuple(history[len(history) - (n - 1) :])
    return {
        history[i + n - 1]
        for i in range(len(history) - n + 1)
        if tuple(history[i : i + n - 1]) == tail
    }


@given(st.lists(st.integers(0, 4), max_size=40), st.integers(1, 5))
def test_no_repeat_ngram_matches_the_reference(history: list[int], n: int) -> None:
    out = apply_no_repeat_ngram(np.zeros(5, dtype=np.float32), np.array(history, np.int64), n)
    assert set(range(5)) - kept(out) == _no_repeat_reference(history, n)


# --- DRY -------------------------------------------------------------------------------------

DRY = {"multiplier": 0.8, "base": 1.75, "allowed_length": 2, "last_n": 0}


def test_dry_penalises_the_token_that_would_extend_a_repeat_and_nothing_else() -> None:
    # The context ends in 1 2 3, which came before followed by 4: 4 would extend the repeat.
    history = np.array([1, 2, 3, 4, 9, 1, 2, 3])
    out = apply_dry(np.zeros(10, dtype=np.float32), history, **DRY)
    expected = np.zeros(10)
    expected[4] = -0.8 * 1.75 ** (3 - 2)  # repeat of length 3, allowed 2
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_dry_spares_repeats_shorter_than_the_allowed_length() -> None:
    history = np.array([7, 3, 4, 9, 1, 2, 3])  # only "3" repeats, length 1 < 2
    out = apply_dry(np.zeros(10, dtype=np.float32), history, **DRY)
    assert (out == 0).all()


@pytest.mark.parametrize(
    ("breaker", "why"),
    [(2, "inside the repeated suffix"), (4, "the token that would follow"), (3, "the last token")],
)
def test_dry_sequence_breakers_stop_the_match(breaker: int, why: str) -> None:
    history = np.array([1, 2, 3, 4, 9, 1, 2, 3])
    out = apply_dry(np.zeros(10, dtype=np.float32), history, **DRY,
                    breaker_ids=frozenset({breaker}))
    assert (out == 0).all(), why


def test_dry_uses_the_longest_repeat_for_each_token_and_only_the_last_n() -> None:
    # After "... 2 3": "3 -> 4" follows a length-2 repeat (2 3) and a length-4 one (0 1 2 3).
    history = np.array([0, 1, 2, 3, 4, 5, 2, 3, 4, 6, 0, 1, 2, 3])
    out = apply_dry(np.zeros(10, dtype=np.float32), history, **DRY)
    assert out[4] == pytest.approx(-0.8 * 1.75 ** (4 - 2))
    assert kept(out) == set(range(10)) and (np.delete(out, 4) == 0).all()
    recent = apply_dry(np.zeros(10, dtype=np.float32), history, **{**DRY, "last_n": 7})
    assert (recent == 0).all()  # the last 7 tokens, 4 6 0 1 2 3 ... hold no earlier "3"


def _dry_reference(history: list[int], multiplier: float, base: float, allowed_length: int,
                   breakers: set[int], vocab: int) -> np.ndarray:
    """text-generation-webui's DRYLogitsProcessor loop, ported as is."""
    penalties = np.zeros(vocab)
    if len(history) < 2 or history[-1] in breakers:
        return penalties
    last = history[-1]
    match_lengths: dict[int, int] = {}
    for i in [i for i, token in enumerate(history[:-1]) if token == last]:
        following = history[i + 1]
        if following in breakers:
            continue
        length = 1
        while length < 50:
            j = i - length
            if j < 0:
                break
            previous = history[-(length + 1)]
            if history[j] != previous or previous in breakers:
                break
            length += 1
        match_lengths[following] = max(length, match_lengths.get(following, 0))
    for token, length in match_lengths.items():
        if length >= allowed_length:
            penalties[token] = multiplier * base ** (length - allowed_length)
    return penalties


@given(
    st.lists(st.integers(0, 5), max_size=60),
    st.sets(st.integers(0, 5), max_size=2),
    st.integers(1, 4),
)
@settings(deadline=None)
def test_dry_matches_the_text_generation_webui_loop(history: list[int], breakers: set[int],
                                                    allowed_length: int) -> None:
    out = apply_dry(np.zeros(6, dtype=np.float64), np.array(history, np.int64), 0.8, 1.75,
                    allowed_length, 0, frozenset(breakers))
    expected = -_dry_reference(history, 0.8, 1.75, allowed_length, breakers, 6)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


# --- logit bias and temperature --------------------------------------------------------------


def test_logit_bias_adds_bans_with_minus_inf_and_keeps_cut_tokens_cut() -> None:
    logits = np.array([0.0, 1.0, 2.0, 3.0, -np.inf], dtype=np.float32)
    out = apply_logit_bias(logits, {1: 2.5, 3: -math.inf, 4: 5.0, 99: 1.0})
    np.testing.assert_array_equal(out, [0.0, 3.5, 2.0, -np.inf, -np.inf])


def test_logit_bias_of_plus_inf_forces_the_token() -> None:
    params = PLAIN.replace(logit_bias={3: math.inf})
    rng = np.random.default_rng(0)
    draws = {sample_next_token(random_logits(i, 100), params, NO_HISTORY, rng) for i in range(50)}
    assert draws == {3}


def test_temperature_divides_and_zero_keeps_only_the_argmax() -> None:
    logits = np.array([1.0, 3.0, -2.0], dtype=np.float32)
    np.testing.assert_allclose(apply_temperature(logits, 0.5), [2.0, 6.0, -4.0])
    assert kept(apply_temperature(logits, 0.0)) == {1}


# --- truncation ------------------------------------------------------------------------------


def test_top_k_keeps_the_k_largest() -> None:
    logits = np.array([0.1, 2.0, -1.0, 1.5, 0.3], dtype=np.float32)
    assert kept(apply_top_k(logits, 2)) == {1, 3}
    assert kept(apply_top_k(logits, 0)) == set(range(5))
    assert kept(apply_top_k(logits, 9)) == set(range(5))


@pytest.mark.parametrize("k", [1, 40, 1000, 30000])
@pytest.mark.parametrize("shape", ["normal", "ties", "flat", "mostly cut", "sorted"])
def test_top_k_over_the_vocabulary_matches_a_full_sort(k: int, shape: str) -> None:
    logits = random_logits(k)
    if shape == "flat":  # the fake engine's uniform logits: every token tied
        logits[:] = 0.0
    elif shape == "ties":
        logits = np.round(logits)  # a handful of distinct values, thousands tied
    elif shape == "mostly cut":
        logits[np.random.default_rng(k).random(V) < 0.95] = -np.inf
    elif shape == "sorted":
        logits = np.sort(logits)
    out = apply_top_k(logits, k)
    finite = np.isfinite(logits)
    survivors = np.isfinite(out)
    assert survivors.sum() == min(k, finite.sum())
    if survivors.sum() < finite.sum():  # every kept logit >= every cut one
        assert out[survivors].min() >= logits[finite & ~survivors].max()
    np.testing.assert_array_equal(out[survivors], logits[survivors])


@pytest.mark.parametrize(("p", "expected"), [(0.8, {0, 1}), (0.81, {0, 1, 2}), (0.01, {0}),
                                             (1.0, {0, 1, 2, 3})])
def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(p: float, expected: set[int]) -> None:
    assert kept(apply_top_p(logits_of([0.5, 0.3, 0.15, 0.05]), p)) == expected


def _nucleus_reference(logits: np.ndarray, p: float) -> set[int]:
    probs = softmax(logits)  # float32, as the sampler sees them: the tail is at 1e-7 here
    order = np.argsort(-probs, kind="stable")
    count = int(np.searchsorted(np.cumsum(probs[order], dtype=np.float64), p - 1e-6)) + 1
    return {int(i) for i in order[:count]}


@pytest.mark.parametrize("scale", [0.5, 3.0, 12.0])
@pytest.mark.parametrize("p", [0.1, 0.9, 0.95, 0.999])
def test_top_p_over_the_vocabulary_matches_a_full_sort(scale: float, p: float) -> None:
    logits = random_logits(int(scale * 10), scale=scale)
    assert kept(apply_top_p(logits, p)) == _nucleus_reference(logits, p)


def test_min_p_drops_tokens_below_min_p_times_the_top_probability() -> None:
    logits = logits_of([0.5, 0.3, 0.04, 0.16])
    assert kept(apply_min_p(logits, 0.1)) == {0, 1, 3}  # 0.04 < 0.1 * 0.5
    assert kept(apply_min_p(logits, 0.5)) == {0, 1}  # 0.16 < 0.25
    assert kept(apply_min_p(logits, 0.0)) == {0, 1, 2, 3}


def test_typical_p_keeps_tokens_whose_surprise_is_near_the_entropy() -> None:
    # H = 1.33 nats; the likely token's surprise (0.92) is further from H than the others'
    # (1.61), so typical sampling keeps the three 0.2s first and cuts the top token.
    logits = logits_of([0.4, 0.2, 0.2, 0.2])
    assert kept(apply_typical_p(logits, 0.5)) == {1, 2, 3}
    assert kept(apply_typical_p(logits, 0.7)) == {0, 1, 2, 3}
    assert kept(apply_typical_p(logits, 1.0)) == {0, 1, 2, 3}


def _typical_reference(logits: np.ndarray, p: float) -> set[int]:
    probs = softmax(logits.astype(np.float64))
    entropy = -(probs * np.log(probs)).sum()
    order = np.argsort(np.abs(-np.log(probs) - entropy), kind="stable")
    count = int(np.searchsorted(np.cumsum(probs[order]), p - 1e-6)) + 1
    return {int(i) for i in order[:count]}


@pytest.mark.parametrize("p", [0.2, 0.9])
def test_typical_p_over_the_vocabulary_matches_a_full_sort(p: float) -> None:
    logits = random_logits(7, scale=2.0)
    assert kept(apply_typical_p(logits, p)) == _typical_reference(logits, p)


def test_xtc_removes_top_choices_except_the_least_likely_of_them() -> None:
    logits = logits_of([0.4, 0.3, 0.2, 0.1])
    out = apply_xtc(logits, threshold=0.15, probability=1.0, rng=np.random.default_rng(0))
    assert kept(out) == {2, 3}


def test_xtc_never_fires_with_probability_zero_or_a_single_top_choice() -> None:
    logits = logits_of([0.4, 0.3, 0.2, 0.1])
    for seed in range(50):
        rng = np.random.default_rng(seed)
        assert kept(apply_xtc(logits, 0.15, 0.0, rng)) == {0, 1, 2, 3}
        assert kept(apply_xtc(logits, 0.35, 1.0, rng)) == {0, 1, 2, 3}  # only 0.4 is above


def test_xtc_fires_with_the_given_probability() -> None:
    logits = logits_of([0.4, 0.3, 0.2, 0.1])
    rng = np.random.default_rng(0)
    fired = sum(len(kept(apply_xtc(logits, 0.15, 0.3, rng))) == 2 for _ in range(2000))
    assert 0.25 < fired / 2000 < 0.35


# --- mirostat --------------------------------------------------------------------------------


def test_mirostat_starts_at_twice_tau_and_cuts_by_surprise() -> None:
    assert MirostatState.initial(SamplingParams(mirostat=2, mirostat_tau=3.0)).mu == 6.0
    logits = logits_of([0.5, 0.25, 0.125, 0.125])  # surprises 1, 2, 3, 3 bits
    assert kept(apply_mirostat_v2(logits, 2.5)) == {0, 1}
    assert kept(apply_mirostat_v2(logits, 0.0)) == {0}  # always at least the most likely


def test_mirostat_updates_mu_from_the_observed_surprise() -> None:
    params = PLAIN.replace(mirostat=2, mirostat_tau=5.0, mirostat_eta=0.1)
    # mu = 1 keeps only the 0.9 token: renormalised p = 1, surprise 0, mu += eta * tau.
    state = MirostatState(mu=1.0)
    token = sample_next_token(logits_of([0.9, 0.1]), params, NO_HISTORY,
                              np.random.default_rng(0), state)
    assert token == 0
    assert state.mu == pytest.approx(1.0 - 0.1 * (0.0 - 5.0))
    # mu = 100 keeps both: the surprise is -log2 of the drawn token's probability.
    state = MirostatState(mu=100.0)
    token = sample_next_token(logits_of([0.75, 0.25]), params, NO_HISTORY,
                              np.random.default_rng(3), state)
    surprise = -math.log2([0.75, 0.25][token])
    assert state.mu == pytest.approx(100.0 - 0.1 * (surprise - 5.0), rel=1e-6)


def test_mirostat_replaces_the_truncation_samplers() -> None:
    params = PLAIN.replace(top_k=1, mirostat=2)
    rng = np.random.default_rng(0)
    state = MirostatState(mu=50.0)  # a cut that keeps everything, so top_k=1 would show
    logits = logits_of([0.4, 0.3, 0.2, 0.1])
    draws = {sample_next_token(logits, params, NO_HISTORY, rng, state) for _ in range(50)}
    assert len(draws) > 1


def test_mirostat_without_a_state_is_refused() -> None:
    with pytest.raises(ValueError, match="MirostatState"):
        sample_next_token(logits_of([0.5, 0.5]), PLAIN.replace(mirostat=2), NO_HISTORY,
                          np.random.default_rng(0))


# --- the chain -------------------------------------------------------------------------------


def test_chain_does_not_mutate_its_input() -> None:
    logits = random_logits(0)
    before = logits.copy()
    ctx = SamplerContext(history=np.arange(300), banned_ids=frozenset({1, 2}))
    apply_sampler_chain(logits, SamplingParams(), ctx, np.random.default_rng(0))
    sample_next_token(logits, SamplingParams(), ctx, np.random.default_rng(0))
    np.testing.assert_array_equal(logits, before)


def test_greedy_takes_the_argmax_after_penalties_and_leaves_rng_alone() -> None:
    logits = np.array([3.0, 2.9, 0.0], dtype=np.float32)
    ctx = SamplerContext(history=np.array([0]))  # 3.0 / 1.1 = 2.73 < 2.9
    params = SamplingParams(temperature=0.0, repetition_penalty=1.1, xtc_probability=1.0)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert kept(apply_sampler_chain(logits, params, ctx, rng)) == {1}
    assert sample_next_token(logits, params, ctx, rng) == 1
    assert rng.bit_generator.state == state


def test_banned_ids_are_never_drawn() -> None:
    logits = np.zeros(50, dtype=np.float32)
    logits[7] = 20.0  # the banned token would be drawn almost every time
    ctx = SamplerContext(history=np.zeros(0, np.int64), banned_ids=frozenset({7, 8}))
    rng = np.random.default_rng(0)
    for params in (SamplingParams(top_k=1), SamplingParams(), PLAIN,
                   SamplingParams(temperature=0.0)):
        draws = {sample_next_token(logits, params, ctx, rng) for _ in range(300)}
        assert not draws & {7, 8}


def test_banning_every_token_is_an_error_a_person_can_act_on() -> None:
    ctx = SamplerContext(history=np.zeros(0, np.int64), banned_ids=frozenset({0, 1}))
    with pytest.raises(InvalidParameterError, match="every token"):
        sample_next_token(np.zeros(2, np.float32), SamplingParams(), ctx,
                          np.random.default_rng(0))


def test_sampler_order_matters_for_min_p_and_top_p() -> None:
    # min_p first cuts the 0.1s, so 0.4 alone is > 0.5 of what is left: top_p keeps 1.
    # top_p first keeps 0.4 + 0.3, and min_p (0.3 * 0.4 = 0.12) keeps both.
    logits = logits_of([0.4, 0.3, 0.1, 0.1, 0.1])
    params = PLAIN.replace(top_p=0.5, min_p=0.3)
    rng = np.random.default_rng(0)
    first_min = apply_sampler_chain(logits, params.replace(sampler_order=("min_p", "top_p")),
                                    NO_HISTORY, rng)
    first_top = apply_sampler_chain(logits, params.replace(sampler_order=("top_p", "min_p")),
                                    NO_HISTORY, rng)
    assert kept(first_min) == {0}
    assert kept(first_top) == {0, 1}


def test_sampler_order_matters_for_temperature_and_min_p_but_not_top_k() -> None:
    logits = logits_of([0.5, 0.3, 0.04, 0.16])
    params = PLAIN.replace(temperature=2.0, min_p=0.1, top_k=3)
    rng = np.random.default_rng(0)

    def survivors(*order: str) -> set[int]:
        return kept(apply_sampler_chain(logits, params.replace(sampler_order=order),
                                        NO_HISTORY, rng))

    assert survivors("min_p", "temperature") == {0, 1, 3}  # 0.04 / 0.5 < 0.1
    assert survivors("temperature", "min_p") == {0, 1, 2, 3}  # sqrt(0.08) > 0.1
    assert survivors("top_k", "temperature") == survivors("temperature", "top_k") == {0, 1, 3}


def test_steps_left_out_of_the_order_do_not_run() -> None:
    params = PLAIN.replace(top_k=1, temperature=0.5, sampler_order=("temperature",))
    out = apply_sampler_chain(logits_of([0.4, 0.3, 0.2, 0.1]), params, NO_HISTORY,
                              np.random.default_rng(0))
    assert kept(out) == {0, 1, 2, 3}


def test_id_steps_after_truncation_see_the_right_tokens() -> None:
    # top_k cuts 2 and 3 first; the bias then lifts 1 and cannot revive 2.
    params = PLAIN.replace(top_k=2, logit_bias={1: 10.0, 2: 10.0},
                           sampler_order=("top_k", "logit_bias"))
    out = apply_sampler_chain(np.array([5.0, 4.0, 3.0, 0.0], np.float32), params, NO_HISTORY,
                              np.random.default_rng(0))
    np.testing.assert_array_equal(out, [5.0, 14.0, -np.inf, -np.inf])


def test_the_dense_draw_follows_the_probabilities() -> None:
    # Nothing truncates, so the draw walks all of V: tokens in different and shared blocks.
    logits = np.full(V, -np.inf, dtype=np.float32)
    logits[[100, 40000, 40001]] = np.log([0.3, 0.2, 0.5])
    rng = np.random.default_rng(0)
    draws = [sample_next_token(logits, PLAIN, NO_HISTORY, rng) for _ in range(3000)]
    assert set(draws) == {100, 40000, 40001}
    for token, p in [(100, 0.3), (40000, 0.2), (40001, 0.5)]:
        assert abs(draws.count(token) / 3000 - p) < 0.04


def _generate(seed: int, steps: int = 200) -> list[int]:
    """A 200-token run on changing logits, the history growing as a generator's does."""
    params = SamplingParams(xtc_probability=0.3, dry_multiplier=0.5)
    rng = np.random.default_rng(seed)
    history = list(range(20))
    for step in range(steps):
        ctx = SamplerContext(history=np.array(history, np.int64))
        history.append(sample_next_token(random_logits(step, 2000), params, ctx, rng))
    return history[20:]


def test_a_seed_replays_the_same_tokens_and_another_seed_does_not() -> None:
    assert _generate(1) == _generate(1)
    assert _generate(1) != _generate(2)


chain_params = st.builds(
    SamplingParams,
    temperature=st.one_of(st.just(0.0), st.floats(0.05, 3.0)),
    top_k=st.integers(0, 50),
    top_p=st.floats(0.01, 1.0),
    min_p=st.floats(0.0, 0.99),
    typical_p=st.floats(0.01, 1.0),
    repetition_penalty=st.floats(0.5, 2.0),
    presence_penalty=st.floats(-1.0, 1.0),
    dry_multiplier=st.floats(0.0, 2.0),
    xtc_threshold=st.floats(0.0, 0.5),
    xtc_probability=st.floats(0.0, 1.0),
    sampler_order=st.permutations(SAMPLER_STEPS),
)
chain_logits = hnp.arrays(np.float32, st.integers(1, 300), elements=st.floats(-30, 30, width=32))


@given(chain_logits, chain_params, st.integers(0, 2**32))
@settings(deadline=None)
def test_the_chain_always_leaves_a_token_and_draws_one_it_left(
    logits: np.ndarray, params: SamplingParams, seed: int
) -> None:
    ctx = SamplerContext(history=np.arange(seed % 50) % logits.size)
    out = apply_sampler_chain(logits, params, ctx, np.random.default_rng(seed))
    assert np.isfinite(out).any()
    token = sample_next_token(logits, params, ctx, np.random.default_rng(seed))
    assert np.isfinite(out[token])  # the same rng state makes XTC decide the same way


def _chain_reference(logits: np.ndarray, params: SamplingParams, ctx: SamplerContext,
                     rng: np.random.Generator) -> np.ndarray:
    """The chain spelled out: every sampler on the whole [V] vector, one after another."""
    x = logits
    for name in params.sampler_order:
        if name == "penalties":
            last_n = params.repetition_penalty_range
            x = apply_repetition_penalty(x, ctx.history, params.repetition_penalty, last_n)
            x = apply_presence_frequency_penalty(x, ctx.history, params.presence_penalty,
                                                 params.frequency_penalty, last_n)
            x = apply_no_repeat_ngram(x, ctx.history, params.no_repeat_ngram_size)
        elif name == "dry":
            x = apply_dry(x, ctx.history, params.dry_multiplier, params.dry_base,
                          params.dry_allowed_length, params.dry_penalty_last_n)
        elif name == "logit_bias":
            x = apply_logit_bias(x, params.logit_bias)
        elif params.greedy:
            continue
        elif name == "temperature":
            x = apply_temperature(x, params.temperature)
        elif name == "top_k":
            x = apply_top_k(x, params.top_k)
        elif name == "typical_p":
            x = apply_typical_p(x, params.typical_p)
        elif name == "top_p":
            x = apply_top_p(x, params.top_p)
        elif name == "min_p":
            x = apply_min_p(x, params.min_p)
        elif name == "xtc":
            x = apply_xtc(x, params.xtc_threshold, params.xtc_probability, rng)
    return apply_temperature(x, 0.0) if params.greedy else x


@given(
    chain_params,
    st.integers(0, 2**32),
    st.integers(1, 3000),
    st.dictionaries(st.integers(0, 50), st.floats(-5, 5), max_size=3),
)
@settings(deadline=None)
def test_the_narrowing_chain_equals_the_samplers_run_on_the_whole_vocabulary(
    params: SamplingParams, seed: int, size: int, bias: dict[int, float]
) -> None:
    # Random normal logits: no ties, so top_k has one right answer to compare.
    logits = random_logits(seed, size)
    params = params.replace(logit_bias=bias, no_repeat_ngram_size=seed % 4)
    ctx = SamplerContext(history=np.random.default_rng(seed).integers(0, size, seed % 400))
    out = apply_sampler_chain(logits, params, ctx, np.random.default_rng(seed))
    expected = _chain_reference(logits, params, ctx, np.random.default_rng(seed))
    assert kept(out) == kept(expected)
    np.testing.assert_allclose(out[np.isfinite(out)], expected[np.isfinite(expected)],
                               rtol=1e-5)


# --- alternatives ----------------------------------------------------------------------------


def test_top_alternatives_are_the_most_likely_best_first() -> None:
    ids, probs = top_alternatives(np.array([0.1, 0.5, 0.05, 0.35]), 3)
    np.testing.assert_array_equal(ids, [1, 3, 0])
    np.testing.assert_allclose(probs, [0.5, 0.35, 0.1])
    assert len(top_alternatives(np.array([0.6, 0.4]), 5)[0]) == 2


def test_top_alternatives_over_the_vocabulary_match_a_full_sort() -> None:
    probs = softmax(random_logits(5))
    ids, top = top_alternatives(probs, 10)
    np.testing.assert_array_equal(ids, np.argsort(-probs, kind="stable")[:10])
    np.testing.assert_array_equal(top, probs[ids])


def test_model_probabilities_are_softmax_without_building_it() -> None:
    logits = np.random.default_rng(4).normal(0, 3, 50257).astype(np.float32)
    ids, probs, p_token = model_probabilities(logits, 10, 1234)
    full = softmax(logits)
    best = np.argsort(-full, kind="stable")[:10]
    assert list(ids) == list(best)
    np.testing.assert_allclose(probs, full[best], rtol=1e-5)
    assert p_token == pytest.approx(float(full[1234]), rel=1e-5)
    assert model_probabilities(logits, 0, 7)[0].size == 0
