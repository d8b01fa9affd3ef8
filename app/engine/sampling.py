"""The sampler chain: pure numpy functions that turn one logits vector into the next token.

Glossary: V = vocabulary size (50257 for GPT-2), T = tokens of context so far, K = tokens still
in the running after truncation (K <= V).

Every `apply_*` sampler takes logits [V] and returns new logits [V], -inf where a token is cut;
none mutates its input. The only randomness is the `numpy.random.Generator` passed in, so a
seed replays a generation exactly. `apply_sampler_chain` runs the steps in
`params.sampler_order`; `sample_next_token` runs the chain and draws.

Speed: the decode step budget is a few ms, and a full sort or argpartition of V costs 0.4-2 ms,
so the chain narrows to the K survivors as soon as a truncation step runs and works on [K]
from then on. Truncation steps only look at values, so they run unchanged on the narrowed
vector; steps that need token ids (penalties, DRY, logit bias) widen it back to [V] first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from app.engine.errors import InvalidParameterError
from app.engine.sampling_params import SamplingParams

# A hand-set p equal to a partial sum (top_p=0.8 over probs 0.5, 0.3, ...) must count as
# reached, but probabilities recovered from float32 logits are off by ~1e-7.
_MASS_TOLERANCE = 1e-6
# Below this size a plain argpartition or sort is already cheap.
_SMALL = 4096
# Mass-based cuts over all of V (top-p, typical-p) bucket tokens by a key in nats instead of
# sorting V: 8 buckets per nat, and one last bucket for everything beyond 40 nats (e^-40).
_BUCKETS_PER_NAT = 8
_BUCKETS = 40 * _BUCKETS_PER_NAT + 1
# The dense draw sums blocks of this many probabilities first, then walks one block.
_DRAW_BLOCK = 256
# text-generation-webui caps DRY matches at 50 so base ** length cannot overflow.
_DRY_MAX_MATCH = 50
# A logit bias of +inf means "force this token"; +inf itself would turn into NaN when softmax
# subtracts the max, and 1e4 already leaves every other token with probability exactly 0.
_FORCE_BIAS = 1e4
_LN2 = math.log(2.0)
# Tiny temperatures make x / T overflow float32 or divide by a float32 zero (T < ~1e-38);
# from 1e-6 down the distribution is one-hot in practice, so it is treated as greedy.
_MIN_TEMPERATURE = 1e-6


@dataclass
class SamplerContext:
    """What the chain needs beyond the logits."""

    history: np.ndarray  # [T] int64 token ids of the context so far (prompt + generated)
    dry_breaker_ids: frozenset[int] = frozenset()  # ids whose text holds a DRY sequence breaker
    banned_ids: frozenset[int] = frozenset()  # ids forbidden at this step (banned strings)


@dataclass
class MirostatState:
    """Mirostat's running surprise target; one per generation, updated after each draw."""

    mu: float

    @classmethod
    def initial(cls, params: SamplingParams) -> MirostatState:
        # Basu et al. start mu at twice the target surprise.
        return cls(mu=2.0 * params.mirostat_tau)

    def update(self, surprise: float, tau: float, eta: float) -> None:
        """mu -= eta * (s - tau): raise the cut after a dull token, lower it after a surprise."""
        self.mu -= eta * (surprise - tau)


# --------------------------------------------------------------------------------------------
# Helpers


def _as_logits(logits: np.ndarray) -> np.ndarray:
    """The input as a 1-D float array, without copying when it already is one."""
    x = np.asarray(logits)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    if x.ndim != 1:
        raise ValueError(f"logits must be one vector [V], got shape {x.shape}")
    return x


def _as_ids(values: Iterable[int] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.int64, copy=False).ravel()
    return np.fromiter(values, dtype=np.int64)


def _last(history: np.ndarray, last_n: int) -> np.ndarray:
    """The last `last_n` tokens of history [T]; 0 means all of it."""
    h = _as_ids(history)
    return h[-last_n:] if last_n > 0 else h


def _cut(logits: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """A copy of logits [V] with everything outside `keep` (indices) set to -inf."""
    if keep is None:
        return logits.copy()
    out = np.full_like(logits, -np.inf)
    out[keep] = logits[keep]
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities [V] from logits [V]: exp(x - max) / sum; -inf gives 0.

    Keeps a floating input's dtype: float32 exp over V is about twice as fast as float64. All
    -inf gives all zeros rather than NaN.
    """
    x = _as_logits(logits)
    if x.size == 0:
        return x.copy()
    top = x.max()
    if top == -np.inf:
        return np.zeros_like(x)
    e = np.exp(x - top)  # shifting by the max keeps exp from overflowing
    return e / e.sum()


def _all_cut(x: np.ndarray) -> bool:
    """Nothing left to cut: the mass-based samplers would compute -inf - -inf = NaN."""
    return x.size == 0 or x.max() == -np.inf


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """log p [V] = x - logsumexp(x); -inf stays -inf."""
    top = x.max()
    return x - (top + np.log(np.exp(x - top).sum()))


def _top_k_indices(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries of x [N], in no particular order (ties: any of them).

    argpartition over all of V costs ~0.4 ms, most of a decode step. A cut-off read from a
    strided sample of x leaves a few hundred candidates to partition instead. The result is
    still exact: if at least k entries are above the cut-off, the k-th largest value is too,
    so every top-k entry is among them; if not, the k-th largest equals the cut-off. Only a
    cut-off that turns out too high (rare) falls back to the full argpartition.
    """
    n = x.size
    if k >= n:
        return np.arange(n)
    if k <= 0:
        return np.arange(0)
    if n <= _SMALL:
        return np.argpartition(x, n - k)[n - k :]
    stride = n // 1024
    sample = x[::stride]  # [~1024], a view
    rank = 3 * k // stride + 4  # ~3k + 200 entries expected above the cut-off
    if 4 * rank > sample.size:  # k is a large share of x: nothing to gain
        return np.argpartition(x, n - k)[n - k :]
    cutoff = np.partition(sample, sample.size - rank)[sample.size - rank]
    above = np.flatnonzero(x > cutoff)
    if above.size >= k:
        if above.size == k:
            return above
        return above[np.argpartition(x[above], above.size - k)[above.size - k :]]
    tied = np.flatnonzero(x == cutoff)
    if above.size + tied.size >= k:
        return np.concatenate([above, tied[: k - above.size]])
    return np.argpartition(x, n - k)[n - k :]


def _keep_smallest_keys(key: np.ndarray, probs: np.ndarray, mass: float) -> np.ndarray:
    """Ascending indices of the entries with the smallest key [N] (nats, >= 0, inf allowed)
    whose probs [N] add up to `mass`: the fewest such entries, and at least one.

    Sorting all of V costs ~2-5 ms, so for large N the keys go into narrow buckets first:
    bucket masses (one bincount) locate the bucket where the mass is reached, every bucket
    before it is kept whole, and only that one bucket is sorted. Same result as the sort.
    """
    target = mass - _MASS_TOLERANCE
    if key.size <= _SMALL:
        order = np.argsort(key, kind="stable")
        reached = np.cumsum(probs[order], dtype=np.float64)
        count = int(np.searchsorted(reached, target, side="left")) + 1
        return np.sort(order[:count])
    scaled = key * _BUCKETS_PER_NAT  # [N]
    np.minimum(scaled, _BUCKETS - 1, out=scaled)  # inf (cut tokens) goes to the last bucket
    # float32 -> int32 -> intp is 2x faster than straight to intp, and bincount is 6x slower
    # on int32 than on intp.
    bucket = scaled.astype(np.int32).astype(np.intp)  # [N]
    reached = np.cumsum(np.bincount(bucket, weights=probs, minlength=_BUCKETS))  # [buckets]
    last = min(int(np.searchsorted(reached, target, side="left")), _BUCKETS - 1)
    members = np.flatnonzero(bucket == last)
    members = members[np.argsort(key[members], kind="stable")]
    inside = (reached[last - 1] if last else 0.0) + np.cumsum(probs[members], dtype=np.float64)
    count = int(np.searchsorted(inside, target, side="left")) + 1
    keep = bucket < last  # [N]
    keep[members[:count]] = True
    kept = np.flatnonzero(keep)
    return kept if kept.size else np.array([int(np.argmin(key))])


def _draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    """Index drawn from probs [K] (need not sum to exactly 1) with one uniform from rng.

    Inverse CDF rather than rng.choice: one rng call per token and several times faster. For a
    dense [V] a cumsum over V is itself ~0.2 ms, so find the block of 256 first, then walk it.
    """
    u = rng.random()
    if probs.size <= _SMALL:
        return _inverse_cdf(probs, u)
    starts = np.arange(0, probs.size, _DRAW_BLOCK)
    blocks = np.add.reduceat(probs, starts, dtype=np.float64)  # [V / 256]
    block = _inverse_cdf(blocks, u)
    cdf = np.cumsum(blocks)
    before = cdf[block - 1] if block else 0.0
    share = (u * cdf[-1] - before) / blocks[block]  # where u falls inside this block, in [0, 1)
    within = probs[starts[block] : starts[block] + _DRAW_BLOCK]
    return int(starts[block]) + _inverse_cdf(within, min(max(share, 0.0), _BELOW_ONE))


_BELOW_ONE = float(np.nextafter(1.0, 0.0))


def _inverse_cdf(probs: np.ndarray, u: float) -> int:
    """The index whose slice of the cumulative probs [K] holds u * total, u in [0, 1).

    side="right" never lands on a zero-probability entry.
    """
    cdf = np.cumsum(probs, dtype=np.float64)  # [K]
    index = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    if index >= probs.size:  # u * total rounded up to total
        index = int(np.flatnonzero(probs)[-1])
    return index


# --------------------------------------------------------------------------------------------
# Penalties: they need token ids and act on raw logits.


def apply_repetition_penalty(
    logits: np.ndarray, history: np.ndarray, penalty: float, last_n: int
) -> np.ndarray:
    """CTRL (Keskar et al. 2019): for each token seen in the last `last_n` tokens (0 = all),
    x / penalty if x > 0 else x * penalty, so penalty > 1 always makes it less likely."""
    out = _as_logits(logits).copy()
    _penalize_repeats(out, history, penalty, last_n)
    return out


def _penalize_repeats(x: np.ndarray, history: np.ndarray, penalty: float, last_n: int) -> None:
    """apply_repetition_penalty in place, on an array the caller owns."""
    if penalty == 1.0:
        return
    # No np.unique: a repeated id reads the same original value and writes the same result.
    # (After a decode step even numpy's code is out of the CPU caches: unique alone took
    # ~90 µs there.)
    seen = _last(history, last_n)
    seen = seen[seen < x.size]
    values = x[seen]
    x[seen] = np.where(values > 0, values / penalty, values * penalty)


def apply_presence_frequency_penalty(
    logits: np.ndarray,
    history: np.ndarray,
    presence: float,
    frequency: float,
    last_n: int = 0,
) -> np.ndarray:
    """OpenAI style: x -= presence * [count > 0] + frequency * count, counting the last
    `last_n` tokens of history (0 = all)."""
    x = _as_logits(logits)
    out = x.copy()
    if presence == 0.0 and frequency == 0.0:
        return out
    # np.unique on the (short) range beats bincount(minlength=V), which touches all of V.
    seen, counts = np.unique(_last(history, last_n), return_counts=True)
    inside = seen < x.size
    seen, counts = seen[inside], counts[inside]
    out[seen] -= (presence + frequency * counts).astype(out.dtype)
    return out


def apply_no_repeat_ngram(logits: np.ndarray, history: np.ndarray, n: int) -> np.ndarray:
    """Ban (-inf) every token that would complete an n-gram already in history (as in
    Hugging Face's no_repeat_ngram_size): the tokens that followed earlier copies of the last
    n - 1 tokens. n = 0 is off; n = 1 bans every token seen."""
    x = _as_logits(logits)
    out = x.copy()
    h = _as_ids(history)
    if n <= 0 or h.size < n:  # no whole n-gram seen yet
        return out
    if n == 1:
        banned = np.unique(h)
    else:
        prefix = h[h.size - (n - 1) :]  # [n-1] the n-gram's start, now at the end
        # windows[i] = h[i : i + n - 1], each followed by h[i + n - 1]
        windows = np.lib.stride_tricks.sliding_window_view(h[:-1], n - 1)  # [T-n+1, n-1]
        starts = np.flatnonzero((windows == prefix).all(axis=1))
        banned = h[starts + n - 1]
    out[banned[banned < x.size]] = -np.inf
    return out


def apply_dry(
    logits: np.ndarray,
    history: np.ndarray,
    multiplier: float,
    base: float,
    allowed_length: int,
    last_n: int,
    breaker_ids: frozenset[int] = frozenset(),
) -> np.ndarray:
    """DRY, "Don't Repeat Yourself" (text-generation-webui / koboldcpp).

    For each earlier occurrence of the last token, L = the length of the longest suffix of
    the context that repeats there (capped at 50); the token that followed that occurrence
    would extend the repeat to L + 1. Each such token with L >= allowed_length gets
    x -= multiplier * base ** (L - allowed_length), using its longest L. A sequence breaker
    (e.g. a newline) ends a match: no match extends across one, and no penalty falls on a
    breaker or after one. Only the last `last_n` tokens count (0 = all).

    Vectorised over occurrences and looped over L, so O(T + occurrences * L).
    """
    x = _as_logits(logits)
    out = x.copy()
    h = _last(history, last_n)  # [T']
    n = h.size
    if multiplier == 0.0 or n < 2 or int(h[-1]) in breaker_ids:
        return out
    # How far back the suffix may reach: to the first breaker, the cap, or the start.
    longest = 1
    while longest < min(_DRY_MAX_MATCH, n) and int(h[n - 1 - longest]) not in breaker_ids:
        longest += 1
    starts = np.flatnonzero(h[:-1] == h[-1])  # [M] earlier copies of the last token
    following = h[starts + 1]  # [M] the token that came after each
    if breaker_ids:
        keep = ~np.isin(following, np.fromiter(breaker_ids, dtype=np.int64))
        starts, following = starts[keep], following[keep]
    lengths = np.ones(starts.size, dtype=np.int64)  # [M] the last token matches by itself
    active = np.arange(starts.size)
    for length in range(1, longest):
        back = starts[active] - length  # compare h[start - length] with h[n - 1 - length]
        ok = back >= 0
        ok[ok] = h[back[ok]] == h[n - 1 - length]
        active = active[ok]
        if active.size == 0:
            break
        lengths[active] += 1
    long_enough = lengths >= allowed_length
    if not long_enough.any():
        return out
    tokens, which = np.unique(following[long_enough], return_inverse=True)
    longest_per_token = np.zeros(tokens.size, dtype=np.int64)
    np.maximum.at(longest_per_token, which, lengths[long_enough])
    inside = tokens < x.size
    penalty = multiplier * base ** (longest_per_token[inside] - allowed_length).astype(np.float64)
    out[tokens[inside]] -= penalty.astype(out.dtype)
    return out


def apply_logit_bias(logits: np.ndarray, bias: Mapping[int, float]) -> np.ndarray:
    """x[id] += bias[id]. -inf bans a token, +inf forces it (stored as +1e4); tokens already
    cut stay cut; ids outside the vocabulary are ignored."""
    x = _as_logits(logits)
    out = x.copy()
    if not bias:
        return out
    ids = np.fromiter(bias.keys(), dtype=np.int64, count=len(bias))
    add = np.minimum(np.fromiter(bias.values(), dtype=np.float64, count=len(bias)), _FORCE_BIAS)
    inside = ids < x.size
    out[ids[inside]] += add[inside]  # -inf + anything finite or -inf stays -inf: cut stays cut
    return out


def apply_banned(logits: np.ndarray, banned_ids: Iterable[int]) -> np.ndarray:
    """-inf for every banned id (ids outside the vocabulary are ignored)."""
    x = _as_logits(logits)
    out = x.copy()
    ids = _as_ids(banned_ids)
    out[ids[ids < x.size]] = -np.inf
    return out


# --------------------------------------------------------------------------------------------
# Temperature and truncation: these look at values only, so they also run on a narrowed [K].


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """x / T: T < 1 sharpens, T > 1 flattens. T = 0 is greedy: all but the argmax is cut
    (and so is any T below 1e-6, where x / T would overflow)."""
    x = _as_logits(logits)
    if temperature < _MIN_TEMPERATURE:
        return _cut(x, np.array([int(np.argmax(x))]))
    return x / x.dtype.type(temperature)


def _keep_top_k(x: np.ndarray, k: int) -> np.ndarray | None:
    if k <= 0 or k >= x.size:
        return None
    return np.sort(_top_k_indices(x, k))


def apply_top_k(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the k largest logits (ties broken arbitrarily, exactly k kept); 0 = off."""
    x = _as_logits(logits)
    return _cut(x, _keep_top_k(x, k))


def _keep_top_p(x: np.ndarray, p: float) -> np.ndarray | None:
    if p >= 1.0 or _all_cut(x):
        return None
    # Most likely first is smallest (max - x) first: the key is in nats, as buckets want.
    return _keep_smallest_keys(x.max() - x, softmax(x), p)


def apply_top_p(logits: np.ndarray, p: float) -> np.ndarray:
    """Nucleus sampling (Holtzman et al.): keep the smallest set of most likely tokens whose
    probability mass reaches p (at least one); 1.0 = off."""
    x = _as_logits(logits)
    return _cut(x, _keep_top_p(x, p))


def _keep_min_p(x: np.ndarray, min_p: float) -> np.ndarray | None:
    if min_p <= 0.0:
        return None
    # p_i >= min_p * p_max  <=>  x_i >= x_max + log(min_p): no softmax needed.
    return np.flatnonzero(x >= x.max() + math.log(min_p))


def apply_min_p(logits: np.ndarray, min_p: float) -> np.ndarray:
    """Drop tokens whose probability is below min_p times the top token's; 0 = off."""
    x = _as_logits(logits)
    return _cut(x, _keep_min_p(x, min_p))


def _keep_typical_p(x: np.ndarray, p: float) -> np.ndarray | None:
    if p >= 1.0 or _all_cut(x):
        return None
    log_p = _log_softmax(x.astype(np.float64))
    probs = np.exp(log_p)
    finite = probs > 0
    entropy = -(probs[finite] * log_p[finite]).sum()  # H = -sum p log p, in nats
    distance = np.abs(-log_p - entropy)  # |surprise - H|; inf for cut tokens, so last
    return _keep_smallest_keys(distance, probs, p)


def apply_typical_p(logits: np.ndarray, p: float) -> np.ndarray:
    """Locally typical sampling (Meister et al. 2022): rank tokens by how close their
    surprise -log p is to the entropy H of the distribution, and keep the closest ones until
    their mass reaches p (at least one). The most likely token can be cut when it is far less
    surprising than typical. 1.0 = off."""
    x = _as_logits(logits)
    return _cut(x, _keep_typical_p(x, p))


def _keep_xtc(
    x: np.ndarray, threshold: float, probability: float, rng: np.random.Generator
) -> np.ndarray | None:
    if probability <= 0.0:
        return None  # no rng draw, so turning XTC off does not shift the seed's sequence
    if rng.random() >= probability:
        return None
    probs = softmax(x)
    # Tokens already cut have p = 0 >= a threshold of 0, and must not be the one spared.
    above = np.flatnonzero((probs >= threshold) & (x > -np.inf))
    if above.size < 2:
        return None
    spared = above[np.argmin(probs[above])]
    keep = probs < threshold
    keep[spared] = True
    return np.flatnonzero(keep)


def apply_xtc(
    logits: np.ndarray, threshold: float, probability: float, rng: np.random.Generator
) -> np.ndarray:
    """Exclude Top Choices: with the given probability, cut every token with p >= threshold
    except the least likely of them, steering away from the obvious without leaving the
    plausible. A no-op when fewer than two tokens reach the threshold. Draws one uniform from
    rng when probability > 0."""
    x = _as_logits(logits)
    return _cut(x, _keep_xtc(x, threshold, probability, rng))


def _keep_mirostat(x: np.ndarray, mu: float) -> np.ndarray | None:
    if _all_cut(x):
        return None
    # surprise -log2 p <= mu, kept as log p >= -mu * ln 2
    keep = np.flatnonzero(_log_softmax(x) >= -mu * _LN2)
    return keep if keep.size else np.array([int(np.argmax(x))])


def apply_mirostat_v2(logits: np.ndarray, mu: float) -> np.ndarray:
    """Mirostat v2's cut (Basu et al. 2021): keep tokens whose surprise -log2 p is at most mu
    (at least the most likely). The draw then updates mu: see MirostatState.update."""
    x = _as_logits(logits)
    return _cut(x, _keep_mirostat(x, mu))


# --------------------------------------------------------------------------------------------
# The chain

def _step_is_on(name: str, params: SamplingParams) -> bool:
    """Whether a step would change anything, so the chain can skip the rest."""
    if name == "penalties":
        return (
            params.repetition_penalty != 1.0
            or params.presence_penalty != 0.0
            or params.frequency_penalty != 0.0
            or params.no_repeat_ngram_size > 0
        )
    if name == "dry":
        return params.dry_multiplier > 0.0
    if name == "logit_bias":
        return bool(params.logit_bias)
    if name == "temperature":
        return params.temperature != 1.0
    if name == "top_k":
        return params.top_k > 0
    if name == "typical_p":
        return params.typical_p < 1.0
    if name == "top_p":
        return params.top_p < 1.0
    if name == "min_p":
        return params.min_p > 0.0
    if name == "xtc":
        return params.xtc_probability > 0.0
    raise ValueError(f"unknown sampler step {name!r}")


def _penalties(x: np.ndarray, params: SamplingParams, ctx: SamplerContext) -> np.ndarray:
    # Repetition then presence/frequency, like llama.cpp, all over the same range. `x` is the
    # chain's own copy, so the repetition penalty goes in place: no second [V] array.
    _penalize_repeats(x, ctx.history, params.repetition_penalty,
                      params.repetition_penalty_range)
    if params.presence_penalty != 0.0 or params.frequency_penalty != 0.0:
        x = apply_presence_frequency_penalty(
            x, ctx.history, params.presence_penalty, params.frequency_penalty,
            params.repetition_penalty_range,
        )
    if params.no_repeat_ngram_size > 0:
        x = apply_no_repeat_ngram(x, ctx.history, params.no_repeat_ngram_size)
    return x


_ID_STEPS: dict[str, Callable[[np.ndarray, SamplingParams, SamplerContext], np.ndarray]] = {
    "penalties": _penalties,
    "dry": lambda x, params, ctx: apply_dry(
        x, ctx.history, params.dry_multiplier, params.dry_base, params.dry_allowed_length,
        params.dry_penalty_last_n, ctx.dry_breaker_ids,
    ),
    "logit_bias": lambda x, params, ctx: apply_logit_bias(x, params.logit_bias),
}


def _keep_for(
    name: str, x: np.ndarray, params: SamplingParams, rng: np.random.Generator
) -> np.ndarray | None:
    if name == "top_k":
        return _keep_top_k(x, params.top_k)
    if name == "typical_p":
        return _keep_typical_p(x, params.typical_p)
    if name == "top_p":
        return _keep_top_p(x, params.top_p)
    if name == "min_p":
        return _keep_min_p(x, params.min_p)
    return _keep_xtc(x, params.xtc_threshold, params.xtc_probability, rng)


def _narrow(
    ids: np.ndarray | None, values: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Survivors of a cut: ids [K'] and their logits [K'], without any that were already -inf.

    `keep` is ascending (every _keep_* returns it so), which keeps ids ascending: the draw then
    walks tokens in id order whether the chain narrowed or not, as apply_sampler_chain does.
    """
    keep = keep[values[keep] > -np.inf]
    return (keep if ids is None else ids[keep]), values[keep]


def _run_chain(
    logits: np.ndarray,
    params: SamplingParams,
    ctx: SamplerContext,
    rng: np.random.Generator,
    mirostat: MirostatState | None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """(ids [K] or None for all of V, logits [K]) of the tokens left after the chain."""
    values = np.array(logits, dtype=np.float32)  # [V] a copy: the caller's vector stays as is
    if values.ndim != 1:
        raise ValueError(f"logits must be one vector [V], got shape {values.shape}")
    vocab = values.size
    if ctx.banned_ids:
        # First, so that truncation spends its budget (top_k's k, top_p's mass) on tokens
        # that can actually be drawn.
        values = apply_banned(values, ctx.banned_ids)
    ids: np.ndarray | None = None
    truncate = not params.greedy and params.mirostat == 0
    # Temperature waits until a step needs the scaled values: top_k keeps the same k either
    # way, so "temperature, top_k" divides k values instead of all V (one pass less over V,
    # which costs a trip to memory right after a decode step).
    pending_temperature = 0.0
    for name in params.sampler_order:
        if not _step_is_on(name, params):
            continue
        if name == "temperature":
            if not params.greedy:
                pending_temperature = params.temperature
            continue
        scale_blind = name == "top_k" and truncate
        if pending_temperature and not scale_blind:
            values = apply_temperature(values, pending_temperature)
            pending_temperature = 0.0
        if name in _ID_STEPS:
            if ids is not None:  # widen back to [V]: these steps address tokens by id
                values = _widen(ids, values, vocab)
                ids = None
            values = _ID_STEPS[name](values, params, ctx)
        elif truncate:
            # All cut: the mass-based steps would compute NaN. top_k over all of V needs no
            # check (it keeps only -inf, which _narrow drops); the narrowed check is cheap.
            if (ids is not None or not scale_blind) and _all_cut(values):
                break
            keep = _keep_for(name, values, params, rng)
            if keep is not None:
                ids, values = _narrow(ids, values, keep)
    if pending_temperature:
        values = apply_temperature(values, pending_temperature)
    if _all_cut(values):
        return ids, values  # everything is cut; sample_next_token says so
    if params.greedy:
        ids, values = _narrow(ids, values, np.array([int(np.argmax(values))]))
    elif params.mirostat == 2:
        mu = (mirostat or MirostatState.initial(params)).mu
        keep = _keep_mirostat(values, mu)
        if keep is not None:
            ids, values = _narrow(ids, values, keep)
    return ids, values


def _widen(ids: np.ndarray, values: np.ndarray, vocab: int) -> np.ndarray:
    """Logits [V] from the survivors' ids [K] and logits [K]; -inf elsewhere."""
    out = np.full(vocab, -np.inf, dtype=values.dtype)
    out[ids] = values
    return out


def apply_sampler_chain(
    logits: np.ndarray,
    params: SamplingParams,
    ctx: SamplerContext,
    rng: np.random.Generator,
    mirostat: MirostatState | None = None,
) -> np.ndarray:
    """New logits [V] after the steps in params.sampler_order, -inf where cut. Does not draw
    and does not mutate `logits` (float32 out whatever comes in).

    Banned ids go first. Greedy (temperature 0) runs only penalties, DRY and logit bias, then
    cuts all but the argmax. With mirostat 2 the truncation steps are replaced by mirostat's
    cut at `mirostat.mu` (a fresh state's mu when None). XTC draws from rng, exactly as
    sample_next_token would with the same rng state.
    """
    ids, values = _run_chain(logits, params, ctx, rng, mirostat)
    return values if ids is None else _widen(ids, values, np.size(logits))


@dataclass(frozen=True)
class Draw:
    """A drawn token and what the chain kept at that step: the kept ids (None for all of V,
    ascending otherwise) and their probabilities after the chain."""

    token: int
    kept_ids: np.ndarray | None
    kept_probs: np.ndarray

    def probabilities(self, token_ids: np.ndarray) -> np.ndarray:
        """The chances after the chain [K] of `token_ids` [K], 0 where the chain cut one: one
        call for a token's ten alternatives (a call for each cost ~30 µs a token)."""
        if self.kept_ids is None:
            return self.kept_probs[token_ids]
        index = np.minimum(np.searchsorted(self.kept_ids, token_ids), self.kept_ids.size - 1)
        found = self.kept_ids[index] == token_ids
        return np.where(found, self.kept_probs[index], 0.0).astype(self.kept_probs.dtype)


def sample_next_token(
    logits: np.ndarray,
    params: SamplingParams,
    ctx: SamplerContext,
    rng: np.random.Generator,
    mirostat: MirostatState | None = None,
) -> int:
    """Run the chain on logits [V] and draw one token id (draw_next_token, the token only)."""
    return draw_next_token(logits, params, ctx, rng, mirostat).token


def draw_next_token(
    logits: np.ndarray,
    params: SamplingParams,
    ctx: SamplerContext,
    rng: np.random.Generator,
    mirostat: MirostatState | None = None,
) -> Draw:
    """Run the chain on logits [V] and draw one token id; the Draw also holds what the chain
    kept, so a caller that shows it (the distribution view) needs no second run of the chain.

    Greedy takes the argmax and leaves rng untouched. With params.mirostat == 2, mirostat v2
    replaces the truncation steps and `mirostat.mu` is updated from the drawn token's surprise
    (its probability among the tokens mirostat kept).
    """
    if params.mirostat == 2 and not params.greedy and mirostat is None:
        raise ValueError("mirostat=2 needs a MirostatState carried from one token to the next")
    ids, values = _run_chain(logits, params, ctx, rng, mirostat)
    if _all_cut(values):
        raise InvalidParameterError(
            "logit bias and banned strings rule out every token; remove some of them."
        )
    probs = softmax(values)  # [K]; greedy's chain kept the argmax alone
    if params.greedy:
        index = int(np.argmax(values))
    else:
        index = _draw(probs, rng)
        if params.mirostat == 2 and mirostat is not None:
            surprise = -math.log2(float(probs[index]) / float(probs.sum(dtype=np.float64)))
            mirostat.update(surprise, params.mirostat_tau, params.mirostat_eta)
    token = index if ids is None else int(ids[index])
    return Draw(token, ids, probs)


def model_probabilities(logits: np.ndarray, k: int,
                        token: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The k likeliest ids under softmax(logits) [V], best first, their probabilities, and the
    probability of `token`: what every token event reports, without building all of softmax.

    Right after a decode step the weights have pushed the logits out of the CPU caches, and each
    pass over V costs a trip to memory: this takes the max, one exp and one sum (softmax then
    top-k took two more passes and a second array), ~110 µs less a token in that state.
    """
    x = _as_logits(logits)
    ids, _ = top_alternatives(x, k)  # the same order as by probability
    top = x[ids[0]] if ids.size else x.max()
    # One array of [V] for exp(x - top), made in place, and numpy's pairwise sum in float32 (or
    # x's wider dtype; relative error ~1e-6): a second [V] temporary and a float64 sum cost ~80
    # µs a token (16M stand-in, right after a decode step, 2026-12-02).
    e = np.subtract(x, top, dtype=np.result_type(x.dtype, np.float32))
    np.exp(e, out=e)
    total = float(e.sum())
    return ids, (e[ids] / total).astype(x.dtype), float(e[token]) / total


def top_alternatives(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids [k] and probabilities [k] of the k most likely tokens in probs [V], best first."""
    p = np.asarray(probs)
    top = _top_k_indices(p, min(k, p.size))
    top = top[np.argsort(-p[top], kind="stable")]
    return top, p[top]
