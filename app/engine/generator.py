"""Token generation over one runner and one KV cache whose row 0 holds the document.

`generate` is a Python generator of TokenEvents (nanochat style): it makes the cache hold the
prompt, running only the tokens past the longest prefix it already holds, then samples, feeds
and yields one token at a time, checking `cancel` between tokens. Text that could still turn into
a stop string or a banned string is held back; a banned string is undone by rewinding the cache
(and Mirostat's mu) to where it began and forbidding the token that began it there.

Shapes: V vocab.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic

import numpy as np

from app.engine.context import (
    SLIDE_SLACK,
    common_prefix_length,
    context_window,
    window_limit,
    window_step,
)
from app.engine.events import Alternative, Candidate, GenerationStats, Suggestion, TokenEvent
from app.engine.prompt_lookup import lookup_draft
from app.engine.runner_protocol import CacheT, Runner
from app.engine.sampling import (
    MirostatState,
    SamplerContext,
    apply_sampler_chain,
    draw_next_token,
    model_probabilities,
    sample_next_token,
    softmax,
    top_alternatives,
)
from app.engine.sampling_params import SamplingParams
from app.engine.scoring import ScoreTable, rank_tokens
from app.engine.speculation import AcceptanceRate, Guesser, PassTimes
from app.engine.tokenizer import IncrementalDecoder, Tokenizer

# Tokens per prefill run: cancel stays responsive, and attention works on a causal staircase
# instead of a full square (512-token prompt, int8, here: 477 / 521 / 535 ms in chunks of
# 128 / 256 / 512).
PREFILL_CHUNK = 128
MAX_BAN_RETRIES = 16  # per position, before a banned string is let through
SENTENCE_ENDS = (".", "!", "?", "…")
# What may follow a sentence's last mark and still belong to it: GPT-2 has tokens such as '."'
# and '?)', and a suggestion should end after the closing quote, not run on past it.
SENTENCE_CLOSERS = "\"'”’)]»"
ScoreProgress = Callable[[int, int], None]  # (tokens scored, tokens in all)


def ends_sentence(text: str) -> bool:
    """Whether a suggestion's text ends a sentence or a line (after some words: a suggestion
    that is only a line break goes on to the next line's words)."""
    if not text.strip():
        return False
    if text.rstrip(" ").endswith("\n"):
        return True
    return text.rstrip(" ").rstrip(SENTENCE_CLOSERS).endswith(SENTENCE_ENDS)


def score_window_start(index: int, n_ctx: int) -> int:
    """Where the window that scores token `index` begins (see Generator.score).

    Tokens before n_ctx are scored in the first window, from the start of the text. Past it,
    windows start at multiples of half a context and each scores only its last half, so every
    token is scored with at least half a context (and at most n_ctx - 1 tokens) before it, and
    a token's score depends only on the text before it: an edit leaves the scores before it
    valid. The cost is running a long text about twice over (quarter steps would give three
    quarters of a context, at four times the cost).
    """
    if index < n_ctx:
        return 0
    step = max(1, n_ctx // 2)
    return step * ((index - n_ctx) // step + 1)


def decoded_pieces(tokenizer: Tokenizer, ids: Sequence[int]) -> list[str]:
    """Each token's text as the decoded whole splits it: a multi-byte character belongs to the
    token that completes it; the pieces join into `tokenizer.decode(ids)`."""
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(token) for token in ids]
    if pieces:
        pieces[-1] += decoder.flush()
    return pieces


@dataclass
class _Pending:
    """A generated token not yet handed out, and what is needed to take it back."""

    token_id: int
    p: float
    alternatives: tuple[Alternative, ...]
    logits_before: np.ndarray  # [V] the logits it was drawn from
    mu_before: float | None  # Mirostat's mu before its draw; None without Mirostat


@dataclass
class _Run:
    """The state of one generate() call; the text is the decoded generated tokens."""

    tokens: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)
    emitted: int = 0  # tokens handed out
    emitted_chars: int = 0  # length of their text
    text: str = ""
    banned_at: dict[int, set[int]] = field(default_factory=dict)
    mirostat: MirostatState | None = None  # carried from one token to the next


class Generator(Generic[CacheT]):
    def __init__(self, runner: Runner[CacheT], tokenizer: Tokenizer) -> None:
        self.runner = runner
        self.tokenizer = tokenizer
        self.n_ctx = runner.n_ctx
        self.cache = runner.new_cache()
        self.last_stats = GenerationStats()
        self.reused_tokens = 0  # of the last feed(): tokens the cache already held
        self.reuse_prefix = True  # off only to measure what prefix reuse saves
        self._breakers: dict[tuple[str, ...], frozenset[int]] = {}
        # The last score() call's tokens and their scores (a prefix when it was cancelled):
        # the next call keeps the scores of the tokens the two texts share.
        self._scored_ids: list[int] = []
        self._scores = ScoreTable.empty(self.tokenizer.token_text)
        self._start_logits: np.ndarray | None = None  # [V] after <|endoftext|> alone
        # score()'s own KV cache, made the first time it runs: its windows start on a grid of
        # half a context, suggestions' on a grid of a quarter (context_window), so with one
        # cache each re-read the other's window after every edit of a long document (~0.5 s
        # at GPT-2 124M on 2 cores: the lens and ghost text on together). Costs one more cache:
        # 19 MB at 124M int8, 157 MB at gpt2-xl int8.
        self._score_cache: CacheT | None = None
        # Speculative decoding while generating: draft tokens the cache holds past row 0's
        # `tokens`, with the logits after each ([len(draft), V]), guessed by prompt lookup
        # (`lookup`; off only to measure what it saves) or else by a draft model, if set.
        self.lookup = True
        self.always_draft = False  # check every guess whatever it costs: for tests of exactness
        self.draft_model: Guesser | None = None  # a DraftModel (draft_model.py)
        self._draft: list[int] = []
        self._draft_logits: np.ndarray | None = None
        self._draft_size = 0  # tokens the current draft had when it was made
        self._draft_source: AcceptanceRate | None = None  # whose guess it is
        self._lookup_rate = AcceptanceRate()
        self._draft_model_rate = AcceptanceRate()
        self._pass_times = PassTimes()  # what this model's passes of S tokens take
        self._runner_keeps_all = True  # False once a runner returned only the last logits

    # -- the cache -------------------------------------------------------------------------
    def _window(self, prompt_ids: Sequence[int], room: int) -> list[int]:
        """context_window, except that the window the cache holds is kept until the text runs
        SLIDE_SLACK tokens past its limit: near a slide point, retokenising a word as it grows
        moves the length back and forth, and each move would re-read the whole window. Not
        further: every token the window grows by is attended at every step of a suggestion."""
        ids = list(prompt_ids) or [self.tokenizer.eos_id]
        window = context_window(ids, self.n_ctx, room)
        earlier = len(ids) - len(window) - window_step(self.n_ctx)
        longest = min(window_limit(self.n_ctx, room) + SLIDE_SLACK, self.n_ctx - room)
        if earlier < 0 or len(ids) - earlier > longest or not self.reuse_prefix:
            return window
        held = ids[earlier:]
        if len(held) - common_prefix_length(self.cache.tokens, held) < len(window):
            return held  # fewer tokens to run than the new window would need
        return window

    def feed(self, ids: Sequence[int], cancel: threading.Event | None = None) -> np.ndarray | None:
        """Make the cache hold exactly `ids`; the logits after the last one ([V]), or None when
        cancelled. Only tokens past the prefix the cache already holds are run."""
        assert 0 < len(ids) <= self.n_ctx
        cache = self.cache
        reuse = min(common_prefix_length(cache.tokens, ids), len(ids) - 1)
        if not self.reuse_prefix:
            reuse = 0
        if cancel is not None and cancel.is_set():
            return None  # before the rewind: what the cache holds stays usable
        cache.rewind(reuse)
        logits = None
        for start in range(reuse, len(ids), PREFILL_CHUNK):
            if cancel is not None and cancel.is_set():
                return None
            chunk = list(ids[start : start + PREFILL_CHUNK])
            # Only the last chunk's logits are read: the others ask for none, which lets an int8
            # model run them whole through its prompt graph (runner.py).
            last = start + PREFILL_CHUNK >= len(ids)
            out = self.runner.forward(np.array([chunk]), cache, keep=1 if last else 0)
            if last:
                logits = out[0, -1]
            cache.tokens.extend(chunk)
        self.reused_tokens = reuse
        assert logits is not None
        return logits.copy()

    def _step(self, token_id: int) -> np.ndarray:
        logits = self.runner.forward(np.array([[token_id]]), self.cache)[0, -1]
        self.cache.tokens.append(token_id)
        return logits.copy()

    def _breaker_ids(self, breakers: tuple[str, ...]) -> frozenset[int]:
        if breakers not in self._breakers:
            self._breakers[breakers] = self.tokenizer.ids_containing(breakers)
        return self._breakers[breakers]

    # -- generation ------------------------------------------------------------------------
    def generate(self, prompt_ids: Sequence[int], params: SamplingParams,
                 cancel: threading.Event | None = None,
                 n_alternatives: int = 10) -> Iterator[TokenEvent]:
        stats = GenerationStats()
        self.last_stats = stats
        room = min(params.max_new_tokens, self.n_ctx // 4)
        window = self._window(prompt_ids, room)
        stats.prompt_tokens = len(window)
        started = time.perf_counter()
        logits = self.feed(window, cancel)
        stats.reused_tokens = self.reused_tokens
        stats.prefill_ms = (time.perf_counter() - started) * 1000
        if logits is None:
            stats.stop_reason = "cancelled"
            return
        history = np.zeros(len(window) + params.max_new_tokens, np.int64)
        history[: len(window)] = window
        base = len(window)
        run = _Run(mirostat=_new_mirostat(params))
        decoder = IncrementalDecoder(self.tokenizer)
        decode_started = time.perf_counter()

        def finish(reason: str) -> None:
            stats.stop_reason = reason
            elapsed = time.perf_counter() - decode_started
            stats.decode_tok_s = stats.new_tokens / elapsed if elapsed > 0 else 0.0

        try:
            yield from self._decode(run, logits, params, cancel, n_alternatives, history, base,
                                    decoder, stats, finish)
        finally:
            # However the run ended (a stop, cancel, the caller closing the iterator), the
            # cache holds exactly the text: no unchecked draft tokens.
            self._drop_draft()

    def _decode(self, run: _Run, logits: np.ndarray, params: SamplingParams,
                cancel: threading.Event | None, n_alternatives: int, history: np.ndarray,
                base: int, decoder: IncrementalDecoder, stats: GenerationStats,
                finish: Callable[[str], None]) -> Iterator[TokenEvent]:
        """generate()'s token loop: draw, hand out what is safe, feed the token back."""
        rng = np.random.default_rng(params.seed)
        breakers = self._breaker_ids(params.dry_sequence_breakers)
        watched = (*params.stop_strings, *params.banned_strings)
        while len(run.tokens) < params.max_new_tokens:
            if cancel is not None and cancel.is_set():
                finish("cancelled")
                return
            position = len(run.tokens)
            ctx = SamplerContext(history=history[: base + position], dry_breaker_ids=breakers,
                                 banned_ids=frozenset(run.banned_at.get(position, ())))
            mu_before = run.mirostat.mu if run.mirostat is not None else None
            drawn = draw_next_token(logits, params, ctx, rng, run.mirostat)
            token = drawn.token
            alt_ids, alt_probs, p_token = model_probabilities(logits, n_alternatives, token)
            # Each alternative's chance after the chain too, for the distribution view.
            alternatives = tuple(
                Alternative(i, self.tokenizer.token_text(i), p, p_final)
                for i, p, p_final in zip(alt_ids.tolist(), alt_probs.tolist(),
                                         drawn.probabilities(alt_ids).tolist(), strict=True))
            if token == self.tokenizer.eos_id:
                yield from self._release(run, len(run.tokens))
                finish("eos")
                return
            run.tokens.append(token)
            run.pending.append(_Pending(token, p_token, alternatives, logits, mu_before))
            piece = decoder.push(token)
            run.pieces.append(piece)
            run.text += piece
            history[base + position] = token
            stats.new_tokens = len(run.tokens)

            stop_at = _find_any(run.text, params.stop_strings, run.emitted_chars)
            if stop_at is not None:
                yield from self._release(run, len(run.tokens), cut_text_at=stop_at)
                finish("stop_string")
                return
            banned_at = _find_any(run.text, params.banned_strings, run.emitted_chars)
            if banned_at is not None:
                undone = self._undo_from(run, banned_at, base)
                if undone is not None:
                    logits, decoder = undone
                    stats.new_tokens = len(run.tokens)
                    continue
            yield from self._release(run, self._safe_count(run, watched))
            if len(run.tokens) >= params.max_new_tokens:
                break
            if len(self.cache.tokens) >= self.n_ctx:
                logits = self._slide(history[: base + len(run.tokens)])
                stats.prompt_tokens = self.cache.pos - len(run.tokens)
            else:
                logits = self._advance(token, history[: base + len(run.tokens)], stats)
        yield from self._release(run, len(run.tokens))
        finish("max_new_tokens")

    def _advance(self, token: int, history: np.ndarray, stats: GenerationStats) -> np.ndarray:
        """Feed the drawn `token` (the last of `history`); the logits after it ([V]).

        When it is the next draft token, the cache already holds it and its logits are known:
        no pass at all. Otherwise the drafts are dropped and the token runs with a new draft
        guessed from the text (prompt lookup), all in one pass that keeps every position's
        logits, so that the next tokens drawn may be found in it too."""
        cache = self.cache
        if self._draft and self._draft[0] == token:
            assert self._draft_logits is not None
            logits, self._draft_logits = self._draft_logits[0], self._draft_logits[1:]
            del self._draft[0]
            cache.tokens.append(token)
            stats.accepted_draft_tokens += 1
            if not self._draft and self._draft_source is not None:
                self._draft_source.count(self._draft_size, wrong=0)
            return logits
        if self._draft and self._draft_source is not None:
            self._draft_source.count(self._draft_size - len(self._draft), wrong=1)
        self._drop_draft()
        draft = self._next_draft(history) if self._runner_keeps_all else []
        started = time.perf_counter()
        if not draft:
            logits = self._step(token)
            self._pass_times.add(1, time.perf_counter() - started)
            return logits
        ids = [token, *draft]
        before = cache.pos
        logits = self.runner.forward(np.array([ids]), cache, keep=len(ids))[0]
        self._pass_times.add(len(ids), time.perf_counter() - started)
        if logits.shape[0] != len(ids):  # a foreign export that returns the last position only
            self._runner_keeps_all = False
            cache.rewind(before)
            return self._step(token)
        cache.tokens.append(token)
        self._draft, self._draft_logits = draft, logits[1:].copy()
        self._draft_size = len(draft)
        stats.draft_tokens += len(draft)
        return logits[0].copy()

    def _next_draft(self, history: np.ndarray) -> list[int]:
        """The draft to check with the next token (the last of `history`): prompt lookup's
        guess, else the draft model's; [] when neither guesses now."""
        room = self.n_ctx - len(self.cache.tokens) - 1  # the token itself takes one position
        sources: list[tuple[AcceptanceRate, Callable[[np.ndarray, int], list[int]]]] = \
            [(self._lookup_rate, lookup_draft)] if self.lookup else []
        if self.draft_model is not None:
            sources.append((self._draft_model_rate, self.draft_model.guess))
        for source, guess in sources:
            length = min(room, source.draft_length(self._pass_times, self.always_draft))
            if length <= 0:
                continue
            started = time.perf_counter()
            draft = guess(history, length)
            source.add_guess_time(time.perf_counter() - started)
            if draft:
                self._draft_source = source
                return draft
        return []

    def _drop_draft(self) -> None:
        """Forget the draft tokens the cache holds past the text."""
        if self._draft:
            self.cache.rewind(len(self.cache.tokens))
        self._draft, self._draft_logits = [], None

    def _safe_count(self, run: _Run, watched: tuple[str, ...]) -> int:
        """How many generated tokens can be handed out: none whose text might begin a watched
        string that later tokens could complete."""
        hold = 0
        for s in watched:
            for k in range(min(len(s) - 1, len(run.text)), hold, -1):
                if run.text.endswith(s[:k]):
                    hold = k
                    break
        limit = len(run.text) - hold
        count, offset = run.emitted, run.emitted_chars
        while count < len(run.tokens) and offset + len(run.pieces[count]) <= limit:
            offset += len(run.pieces[count])
            count += 1
        return count

    def _release(self, run: _Run, upto: int,
                 cut_text_at: int | None = None) -> Iterator[TokenEvent]:
        offset = run.emitted_chars
        while run.emitted < upto:
            pending = run.pending[run.emitted - (len(run.tokens) - len(run.pending))]
            text = run.pieces[run.emitted]
            if cut_text_at is not None and offset + len(text) > cut_text_at:
                text = text[: max(0, cut_text_at - offset)]
                run.emitted = upto
                if text:
                    yield TokenEvent(pending.token_id, text, pending.p, pending.alternatives)
                break
            offset += len(text)
            run.emitted += 1
            run.emitted_chars = offset
            yield TokenEvent(pending.token_id, text, pending.p, pending.alternatives)
        # Handed-out tokens can no longer be undone: drop what was kept to undo them.
        keep_from = len(run.pending) - (len(run.tokens) - run.emitted)
        del run.pending[:keep_from]

    def _undo_from(self, run: _Run, char_index: int, base: int) -> tuple[np.ndarray,
                                                                     IncrementalDecoder] | None:
        """Take back the tokens from the one where a banned string begins, and what their
        draws taught Mirostat; None if it was already handed out or has been retried too
        often."""
        offset, index = 0, 0
        while index < len(run.pieces) and offset + len(run.pieces[index]) <= char_index:
            offset += len(run.pieces[index])
            index += 1
        first_pending = len(run.tokens) - len(run.pending)
        if index < run.emitted or index < first_pending:
            return None
        banned = run.banned_at.setdefault(index, set())
        if len(banned) >= MAX_BAN_RETRIES:
            return None
        banned.add(run.tokens[index])
        first_undone = run.pending[index - first_pending]
        if run.mirostat is not None and first_undone.mu_before is not None:
            run.mirostat.mu = first_undone.mu_before
        logits = first_undone.logits_before
        del run.tokens[index:], run.pieces[index:], run.pending[index - first_pending :]
        run.text = "".join(run.pieces)
        self._drop_draft()
        self.cache.rewind(base + index)
        decoder = IncrementalDecoder(self.tokenizer)
        for token in run.tokens:
            decoder.push(token)
        return logits, decoder

    def _slide(self, all_ids: np.ndarray) -> np.ndarray:
        """The context is full: go on from the window a quarter context of room leaves (at most
        its last three quarters). Its start moves in the same steps as every window, so the
        suggestion after a long Generate finds the text it ends with already in the cache."""
        keep = context_window([int(t) for t in all_ids], self.n_ctx, window_step(self.n_ctx))
        self._drop_draft()
        self.cache.reset()
        logits = self.feed(keep)
        assert logits is not None
        return logits

    # -- autocomplete and the distribution view -------------------------------------------
    def suggest(self, prompt_ids: Sequence[int], params: SamplingParams, n_alternatives: int = 3,
                max_tokens: int = 8, stop_at_sentence_end: bool = False,
                cancel: threading.Event | None = None) -> list[Suggestion]:
        """`n_alternatives` continuations decoded together as one batch; [] when cancelled.

        Each starts from a different first token (the sampled one, then the next most likely
        kept ones), so the alternatives differ from the first word on.
        """
        window = self._window(prompt_ids, max_tokens + 1)
        started = time.perf_counter()
        logits = self.feed(window, cancel)
        self.last_stats = GenerationStats(
            prompt_tokens=len(window), reused_tokens=self.reused_tokens,
            prefill_ms=(time.perf_counter() - started) * 1000,
            stop_reason="cancelled" if logits is None else "suggested")
        if logits is None:
            return []
        rng = np.random.default_rng(params.seed)
        rows = max(1, n_alternatives)
        history = np.zeros((rows, len(window) + max_tokens), np.int64)
        history[:, : len(window)] = window
        base = len(window)
        breakers = self._breaker_ids(params.dry_sequence_breakers)
        ctx = SamplerContext(history=history[0, :base], dry_breaker_ids=breakers)
        # Each row is a generation of its own: its own Mirostat mu, learnt from its own draws.
        # Rows 1.. start from a fresh mu: their first tokens are picked, not drawn.
        mirostats = [_new_mirostat(params) for _ in range(rows)]
        shaped = apply_sampler_chain(logits, params, ctx, rng, mirostats[0])
        first = [sample_next_token(logits, params, ctx, rng, mirostats[0])]
        kept = np.flatnonzero(np.isfinite(shaped))
        kept = kept[np.argsort(-shaped[kept])]
        first += [int(t) for t in kept if int(t) != first[0]][: rows - 1]
        if len(first) < rows:  # greedy or a narrow chain: widen to the model's next best
            by_model, _ = top_alternatives(logits, rows + len(first))  # not a sort of all V
            first += [int(t) for t in by_model if int(t) not in first][: rows - len(first)]
        probs = softmax(logits)
        decoders = [IncrementalDecoder(self.tokenizer) for _ in range(rows)]
        tokens: list[list[int]] = [[] for _ in range(rows)]
        events: list[list[TokenEvent]] = [[] for _ in range(rows)]
        done = [False] * rows
        texts = [""] * rows

        def take(row: int, token: int, p: float) -> None:
            if token == self.tokenizer.eos_id:
                done[row] = True
                return
            piece = decoders[row].push(token)
            tokens[row].append(token)
            texts[row] += piece
            events[row].append(TokenEvent(token, piece, p))
            history[row, base + len(tokens[row]) - 1] = token
            if len(tokens[row]) >= max_tokens or (stop_at_sentence_end
                                                   and ends_sentence(texts[row])):
                done[row] = True

        for row, token in enumerate(first):
            take(row, token, float(probs[token]))
        if rows > 1:
            self.cache.fork_row0(rows)
        step_ids = np.array([[t] for t in first], np.int64)
        while not all(done):
            if cancel is not None and cancel.is_set():
                self.cache.rewind(base)
                return []
            if self.cache.pos >= self.n_ctx:
                break
            batch_logits = self.runner.forward(step_ids, self.cache)[:, -1]
            for row in range(rows):
                if done[row]:
                    continue
                row_ctx = SamplerContext(history=history[row, : base + len(tokens[row])],
                                         dry_breaker_ids=breakers)
                token = sample_next_token(batch_logits[row], params, row_ctx, rng,
                                          mirostats[row])
                take(row, token, model_probabilities(batch_logits[row], 0, token)[2])
                step_ids[row, 0] = token
        # Row 0 of the cache holds the window and the first alternative's tokens as far as they
        # were fed: keep them as the cached prefix (a suggestion is often accepted next).
        valid = min(self.cache.pos - base, len(tokens[0]))
        self.cache.tokens.extend(tokens[0][:valid])
        self.cache.rewind(base + valid)
        return [Suggestion(texts[row] + decoders[row].flush(), tuple(events[row]))
                for row in range(rows) if events[row]]

    def warm(self, prompt_ids: Sequence[int], room: int,
             cancel: threading.Event | None = None) -> int:
        """Make the cache hold the window a later call with `room` would use, and nothing else:
        that call then runs only what was typed since. How many tokens were run."""
        window = self._window(prompt_ids, room)
        if self.feed(window, cancel) is None:
            return 0  # cancelled: what was read so far stays cached
        return len(window) - self.reused_tokens

    # -- the surprise lens -------------------------------------------------------------------
    def score(self, ids: Sequence[int], cancel: threading.Event | None = None,
              progress: ScoreProgress | None = None) -> ScoreTable:
        """How likely the model found each token of `ids` where it stands; when cancelled, the
        scores of a prefix (the next call goes on from there).

        Token i is ranked against the logits after ids[window start .. i-1] (see
        score_window_start); the first token against the logits after <|endoftext|>, as GPT-2
        starts a text. Tokens run in chunks that keep every position's logits, through the
        KV cache of its own (see _score_cache): a text that shares a prefix with the last
        scored one runs only from where they differ.
        """
        if self._score_cache is None:
            self._score_cache = self.runner.new_cache()
        # What score() calls (feed, _hold, _all_logits) reads self.cache: it is the score
        # cache until score() returns.
        own_cache, self.cache = self.cache, self._score_cache
        try:
            return self._score(list(ids), cancel, progress)
        finally:
            self._score_cache, self.cache = self.cache, own_cache

    def _score(self, ids: list[int], cancel: threading.Event | None,
               progress: ScoreProgress | None) -> ScoreTable:
        pieces = decoded_pieces(self.tokenizer, ids)
        offsets = np.zeros(len(ids) + 1, np.int64)
        np.cumsum([len(piece) for piece in pieces], out=offsets[1:])
        known = common_prefix_length(self._scored_ids, ids) if self.reuse_prefix else 0
        # A table per chunk, joined once at the end: no object per token (see ScoreTable).
        parts = [self._scores[:known]]
        scored = known

        def add(logits: np.ndarray, first: int) -> None:
            """Score ids[first : first + len(logits)] from their logits [S, V]."""
            nonlocal scored
            end = first + len(logits)
            p, ranks, top_ids, top_p = rank_tokens(logits, ids[first:end])
            parts.append(ScoreTable(np.array(ids[first:end], np.int64), pieces[first:end],
                                    offsets[first:end], offsets[first + 1 : end + 1], p, ranks,
                                    top_ids, top_p, self.tokenizer.token_text))
            scored = end
            if progress is not None:
                progress(scored, len(ids))

        def cancelled() -> bool:
            return cancel is not None and cancel.is_set()

        try:
            if ids and not scored and not cancelled():
                add(self._first_token_logits()[None, :], 0)
            while scored < len(ids) and not cancelled():
                first = scored
                window = score_window_start(first, self.n_ctx)
                end = min(window + self.n_ctx, len(ids))  # this window scores [first, end)
                if not self._hold(ids[window : first - 1], cancel):
                    break
                for start in range(first - 1, end - 1, PREFILL_CHUNK):
                    if cancelled():
                        break
                    chunk = ids[start : min(start + PREFILL_CHUNK, end - 1)]
                    add(self._all_logits(chunk), start + 1)
        finally:
            self._scored_ids, self._scores = ids[:scored], ScoreTable.joined(parts)
        return self._scores

    def _first_token_logits(self) -> np.ndarray:
        if self._start_logits is None:
            logits = self.feed([self.tokenizer.eos_id])
            assert logits is not None
            self._start_logits = logits
        return self._start_logits

    def _hold(self, ids: Sequence[int], cancel: threading.Event | None) -> bool:
        """Make the cache hold exactly `ids` (no logits wanted); False when cancelled."""
        cache = self.cache
        reuse = common_prefix_length(cache.tokens, ids) if self.reuse_prefix else 0
        cache.rewind(reuse)
        for start in range(reuse, len(ids), PREFILL_CHUNK):
            if cancel is not None and cancel.is_set():
                return False
            chunk = list(ids[start : start + PREFILL_CHUNK])
            self.runner.forward(np.array([chunk]), self.cache, keep=0)  # no logits: see feed()
            cache.tokens.extend(chunk)
        return True

    def _all_logits(self, chunk: Sequence[int]) -> np.ndarray:
        """Feed `chunk`; the logits after each of its tokens [S, V]. A foreign export that
        returns the last position's only is fed one token at a time instead."""
        before = self.cache.pos
        logits = self.runner.forward(np.array([list(chunk)]), self.cache, keep=len(chunk))[0]
        if logits.shape[0] == len(chunk):
            self.cache.tokens.extend(chunk)
            return logits.copy()
        self.cache.rewind(before)
        return np.stack([self._step(token) for token in chunk])

    def candidates(self, prompt_ids: Sequence[int], params: SamplingParams,
                   top_n: int = 20) -> list[Candidate]:
        window = self._window(prompt_ids, 1)
        logits = self.feed(window)
        assert logits is not None
        ctx = SamplerContext(history=np.asarray(window, np.int64),
                             dry_breaker_ids=self._breaker_ids(params.dry_sequence_breakers))
        rng = np.random.default_rng(params.seed if params.seed is not None else 0)
        final = softmax(apply_sampler_chain(logits, params, ctx, rng))
        model = softmax(logits)
        ids, _ = top_alternatives(model, top_n)
        return [Candidate(int(i), self.tokenizer.token_text(int(i)), float(model[i]),
                          float(final[i]), bool(final[i] > 0)) for i in ids]


def _new_mirostat(params: SamplingParams) -> MirostatState | None:
    """A generation's Mirostat state at its start; None when Mirostat is off."""
    return MirostatState.initial(params) if params.mirostat else None


def _find_any(text: str, needles: Sequence[str], start: int) -> int | None:
    """Where the earliest of `needles` begins in text[start - longest:], or None."""
    if not needles:
        return None
    from_index = max(0, start - max(len(n) for n in needles))
    hits = [i for n in needles if (i := text.find(n, from_index)) >= 0]
    return min(hits) if hits else None
