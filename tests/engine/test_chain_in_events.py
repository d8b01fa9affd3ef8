"""Each generated token says what the sampler chain kept at its step (the live distribution
view draws it), on a real tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.engine import Engine, load_engine
from app.engine.sampling_params import SamplingParams

PROMPT = "The lighthouse keeper climbed the stairs"


@pytest.fixture()
def engine(tiny_model: Path) -> Engine:
    return load_engine(tiny_model, device="cpu")


def test_each_alternative_carries_its_probability_after_the_chain(engine: Engine) -> None:
    params = SamplingParams(seed=3, max_new_tokens=12, temperature=1.3, top_k=4, top_p=1.0,
                            min_p=0.0, repetition_penalty=1.0)
    events = list(engine.generate(PROMPT, params))
    for event in events:
        finals = [a.p_final for a in event.alternatives]
        assert all(p is not None for p in finals)
        assert sum(p > 0 for p in finals) == 4  # top_k 4, among the 10 likeliest
        chosen = next(a for a in event.alternatives if a.token_id == event.token_id)
        assert chosen.p_final > 0  # the written token was one the chain kept
    first = {c.token_id: c.p_final for c in engine.candidates(PROMPT, params, top_n=10)}
    assert {a.token_id: a.p_final for a in events[0].alternatives} == pytest.approx(first)


def test_recording_the_chain_does_not_change_what_xtc_writes(engine: Engine) -> None:
    params = SamplingParams(seed=5, max_new_tokens=30, temperature=1.0, xtc_probability=0.5,
                            xtc_threshold=0.01, top_k=0, top_p=1.0, min_p=0.0)
    ids = engine.tokenizer.encode(PROMPT)
    recorded = [e.token_id for e in engine.generator.generate(ids, params, n_alternatives=10)]
    plain = [e.token_id for e in engine.generator.generate(ids, params, n_alternatives=0)]
    assert recorded == plain
