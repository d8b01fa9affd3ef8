"""The surprise lens's engine side: every token's probability and rank, against a direct
computation on the real tiny model, and the repeated-passage finder."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from app.engine.engine import Engine, load_engine
from app.engine.fake import FakeEngine
from app.engine.loader import load_runner
from app.engine.scoring import perplexity, rank_bucket, rank_tokens, repeated_runs
from app.engine.tokenizer import Tokenizer

TEXT = ("The lighthouse keeper climbed the stairs every evening, and every evening the lamp "
        "was lit before the first ship came round the point.")


@pytest.fixture()
def engine(tiny_model: Path) -> Engine:
    return load_engine(tiny_model, device="cpu")


def direct_scores(model: Path, ids: list[int], eos: int,
                  window_start: int | None = None) -> list[tuple[float, int]]:
    """(p, rank) of each token, the runner fed its whole context afresh each time: <|endoftext|>
    for the first token, else the tokens before it from `window_start` (0: all)."""
    runner = load_runner(model, device="cpu")
    out = []
    for i, token in enumerate(ids):
        start = 0 if window_start is None else window_start
        context = [eos] if i == 0 else ids[start:i] if i > start else [eos]
        logits = runner.forward(np.array([context]), runner.new_cache())[0, -1].astype(np.float64)
        log_p = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
        out.append((float(np.exp(log_p[token])), int((logits > logits[token]).sum()) + 1))
    return out


def test_rank_is_one_plus_the_tokens_with_a_higher_logit() -> None:
    logits = np.array([[0.5, 3.0, 1.0, 3.0], [2.0, -1.0, 0.0, 1.0]], np.float32)
    p, ranks, top_ids, top_p = rank_tokens(logits, [2, 0], n_alternatives=2)
    assert ranks.tolist() == [3, 1]  # two tokens tie above token 2; token 0 is the argmax
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert p == pytest.approx([softmax[0, 2], softmax[1, 0]], rel=1e-6)
    assert top_ids[1].tolist() == [0, 3]
    assert top_p[1] == pytest.approx(softmax[1, [0, 3]], rel=1e-6)
    assert [rank_bucket(r) for r in (1, 10, 11, 100, 101, 1000, 1001)] == [0, 0, 1, 1, 2, 2, 3]


def test_scores_equal_the_model_fed_each_whole_prefix(engine: Engine, tiny_model: Path) -> None:
    ids = engine.tokenizer.encode(TEXT)
    scores = engine.score(TEXT)
    assert [s.token_id for s in scores] == ids
    assert "".join(s.text for s in scores) == TEXT
    assert all(TEXT[s.start : s.end] == s.text for s in scores)
    expected = direct_scores(tiny_model, ids, engine.tokenizer.eos_id)
    assert [s.rank for s in scores] == [rank for _, rank in expected]
    assert [s.p for s in scores] == pytest.approx([p for p, _ in expected], rel=1e-4)
    for s in scores:  # the first alternative is the argmax: rank 1 exactly when it came
        assert (s.rank == 1) == (s.alternatives[0].token_id == s.token_id)
        assert s.alternatives[0].p >= s.p
    assert perplexity(scores) == pytest.approx(
        float(np.exp(-np.mean([np.log(p) for p, _ in expected]))), rel=1e-4)


def test_an_edit_rescores_only_from_where_the_texts_differ(engine: Engine,
                                                           tiny_model: Path) -> None:
    engine.score(TEXT)
    runner = engine.generator.runner
    fed: list[int] = []
    forward = runner.forward

    def counting_forward(ids: np.ndarray, cache: object, keep: int = 1) -> np.ndarray:
        fed.append(ids.shape[1])
        return forward(ids, cache, keep)  # type: ignore[arg-type]

    runner.forward = counting_forward  # type: ignore[method-assign]
    edited = TEXT + " The keeper slept."
    scores = engine.score(edited)
    new_tokens = len(engine.tokenizer.encode(edited)) - len(engine.tokenizer.encode(TEXT))
    assert sum(fed) <= new_tokens + 1
    fresh = load_engine(tiny_model, device="cpu").score(edited)
    assert [s.rank for s in scores] == [s.rank for s in fresh]
    assert [s.p for s in scores] == pytest.approx([s.p for s in fresh], rel=1e-4)


def test_cancel_stops_early_and_the_next_call_goes_on(engine: Engine, tiny_model: Path) -> None:
    text = " ".join([TEXT] * 12)  # several chunks
    total = engine.count_tokens(text)
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, of: int) -> None:
        seen.append((done, of))
        if done > 1:
            cancel.set()

    partial = engine.score(text, cancel, progress)
    assert 1 < len(partial) < total
    assert seen[-1] == (len(partial), total)
    whole = engine.score(text)
    assert len(whole) == total
    assert whole[: len(partial)] == partial
    fresh = load_engine(tiny_model, device="cpu").score(text)
    assert [s.rank for s in whole] == [s.rank for s in fresh]


def test_a_text_longer_than_the_context_is_scored_in_sliding_windows(
        engine: Engine, tiny_model: Path) -> None:
    engine.generator.n_ctx = 32  # a small context, so that a short text slides
    ids = engine.tokenizer.encode(" ".join([TEXT] * 3))
    scores = engine.score(" ".join([TEXT] * 3))
    assert len(scores) == len(ids) > 64
    eos = engine.tokenizer.eos_id
    # Tokens 32..47 are scored in the window starting at 16, 48..63 in the one at 32, ...
    for index in (5, 31, 32, 47, 48, 63, len(ids) - 1):
        start = 0 if index < 32 else 16 * ((index - 32) // 16 + 1)
        assert index - start >= 16 or start == 0  # half a context at least
        p, rank = direct_scores(tiny_model, ids[: index + 1], eos, start)[index]
        assert scores[index].rank == rank
        assert scores[index].p == pytest.approx(p, rel=1e-4)


def test_repeated_runs_mark_a_passage_that_appeared_before() -> None:
    tokenizer = Tokenizer.gpt2()
    text = "the cat sat on the mat. Later the cat sat on the rug."
    ids = tokenizer.encode(text)
    words = [any(c.isalnum() for c in tokenizer.token_text(i)) for i in ids]
    runs = repeated_runs(ids, words)
    assert len(runs) == 1
    start, end = runs[0]
    assert tokenizer.decode(ids[start:end]) == " cat sat on the"
    assert repeated_runs(tokenizer.encode("one two three four five six")) == []
    breaks = tokenizer.encode("Hi.\n\nThe end.\n\nThe end of it.\n\nThe")
    marks = [tokenizer.decode(breaks[a:b]) for a, b in
             repeated_runs(breaks, [any(c.isalnum() for c in tokenizer.token_text(i))
                                    for i in breaks])]
    assert ".\n\nThe" not in "".join(marks)  # punctuation and a break are not a repetition


def test_the_fake_engine_scores_every_byte_with_offsets_and_cancel() -> None:
    engine = FakeEngine()
    scores = engine.score("ab C. é")
    assert [s.rank for s in scores] == [1, 1, 1, 50, 500, 1, 5000, 5000]
    assert [(s.start, s.end) for s in scores][-2:] == [(6, 6), (6, 7)]
    cancel = threading.Event()
    cancel.set()
    assert FakeEngine().score("abc", cancel) == []
