"""Exports made by others load and give the same greedy text as our own conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.engine.engine import load_engine
from app.engine.sampling_params import GREEDY, SamplingParams
from tests.engine.foreign_export import write_foreign_export


@pytest.mark.parametrize("layout", ["optimum", "ort"])
def test_foreign_export_gives_the_same_greedy_tokens(layout: str, tiny_checkpoint: Path,
                                                     tiny_model: Path, tmp_path: Path) -> None:
    folder = write_foreign_export(tiny_checkpoint, tmp_path / layout, layout)
    foreign = load_engine(folder, device="cpu")
    ours = load_engine(tiny_model, device="cpu")
    assert foreign.info.precision == "foreign"
    assert "slower" in foreign.info.notes[0]
    prompt = "The lighthouse keeper climbed the stairs"
    params = GREEDY.replace(max_new_tokens=32)
    expected = [e.token_id for e in ours.generate(prompt, params)]
    assert [e.token_id for e in foreign.generate(prompt, params)] == expected
    # and again on a longer prompt sharing that prefix: the foreign cache is reused too
    longer = prompt + " every evening"
    assert [e.token_id for e in foreign.generate(longer, params)] == \
        [e.token_id for e in ours.generate(longer, params)]
    assert foreign.last_stats.reused_tokens > 0


def test_foreign_export_serves_batched_suggestions(tiny_checkpoint: Path,
                                                   tmp_path: Path) -> None:
    engine = load_engine(write_foreign_export(tiny_checkpoint, tmp_path / "f", "optimum"),
                         device="cpu")
    suggestions = engine.suggest("Once upon a time", SamplingParams(seed=1), 3, 6)
    assert len(suggestions) == 3
    assert len({s.events[0].token_id for s in suggestions}) == 3
    # after the batch, plain generation on the one-row document still works
    assert len(list(engine.generate("Once upon a time", GREEDY.replace(max_new_tokens=4)))) == 4
    assert np.isfinite(engine.last_stats.decode_tok_s)
