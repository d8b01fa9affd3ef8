"""Our fp32 graph against Hugging Face transformers on the same random weights."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.engine.engine import load_engine
from app.engine.loader import load_runner
from app.engine.sampling_params import GREEDY
from models.export import export_model
from tests.engine.hf_reference import hf_greedy, hf_logits, load_hf_model

PRESETS = ["tiny", pytest.param("gpt2", marks=pytest.mark.slow)]


def prompt_ids(n: int, seed: int = 0) -> list[int]:
    return [int(i) for i in np.random.default_rng(seed).integers(0, 50256, n)]


@pytest.mark.parametrize("preset", PRESETS)
def test_logits_match_transformers_on_short_medium_and_long_prompts(
        preset: str, model_cache: Callable[..., Path]) -> None:
    hf = load_hf_model(model_cache(preset))
    runner = load_runner(model_cache(preset, "fp32"), device="cpu")
    for length in (5, 200, 900):
        ids = prompt_ids(length, seed=length)
        cache = runner.new_cache()
        ours = runner.forward(np.array([ids]), cache, keep=length)[0]
        theirs = hf_logits(hf, ids)
        assert np.abs(ours - theirs).max() <= 1e-3, f"{length} tokens"
        assert (ours.argmax(-1) == theirs.argmax(-1)).all()


@pytest.mark.parametrize("preset", PRESETS)
def test_64_greedy_tokens_equal_transformers(preset: str,
                                             model_cache: Callable[..., Path]) -> None:
    hf = load_hf_model(model_cache(preset))
    engine = load_engine(model_cache(preset, "fp32"), device="cpu")
    ids = prompt_ids(12, seed=1)
    ours = [e.token_id for e in engine.generator.generate(ids, GREEDY.replace(max_new_tokens=64))]
    assert ours == hf_greedy(hf, ids, 64)
    assert len(set(ours)) > 3, "the random weights should not repeat one token"


def test_prefix_reuse_gives_the_same_tokens_as_a_fresh_run(tiny_model: Path) -> None:
    params = GREEDY.replace(max_new_tokens=24)
    first, second = prompt_ids(40, seed=2), prompt_ids(10, seed=3)
    reused = load_engine(tiny_model, device="cpu")
    list(reused.generator.generate(first, params))
    with_reuse = [e.token_id for e in reused.generator.generate(first + second, params)]
    assert reused.last_stats.reused_tokens == 40  # only the 10 new tokens ran
    fresh = load_engine(tiny_model, device="cpu")
    without = [e.token_id for e in fresh.generator.generate(first + second, params)]
    assert fresh.last_stats.reused_tokens == 0
    assert with_reuse == without


def test_single_token_steps_match_one_long_prefill(tiny_model: Path) -> None:
    """The KV cache written step by step gives the same logits as one pass over all tokens."""
    runner = load_runner(tiny_model, device="cpu")
    ids = prompt_ids(30, seed=4)
    whole = runner.forward(np.array([ids]), runner.new_cache(), keep=30)[0].copy()
    cache = runner.new_cache()
    runner.forward(np.array([ids[:10]]), cache)
    runner.forward(np.array([ids[10:17]]), cache)  # a chunk on top of a cache
    steps = [runner.forward(np.array([[t]]), cache)[0, -1].copy() for t in ids[17:]]
    np.testing.assert_allclose(np.array(steps), whole[17:], atol=1e-4)


@pytest.mark.parametrize("switch", [{"scale_attn_by_inverse_layer_idx": True},
                                    {"scale_attn_weights": False},
                                    {"activation_function": "gelu_pytorch_tanh"}],
                         ids=["by-layer", "unscaled", "gelu-tanh"])
def test_config_switches_of_fine_tunes_match_transformers(
        switch: dict[str, bool], tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Fine-tunes such as Stanford CRFM's GPT-2s scale attention by the layer too; converted as
    plain GPT-2 they would run, quietly wrong. gelu_pytorch_tanh is gelu_new by another name."""
    checkpoint = tmp_path / "fine-tune"
    shutil.copytree(tiny_checkpoint, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, **switch}))
    manifest = export_model(checkpoint, tmp_path / "fp32", "fp32", check=True,
                            progress=lambda _: None)
    assert manifest.check["max_abs_dlogit"] <= 1e-3  # the numpy reference agrees
    ids = prompt_ids(60, seed=4)
    runner = load_runner(tmp_path / "fp32", device="cpu")
    ours = runner.forward(np.array([ids]), runner.new_cache(), keep=len(ids))[0]
    theirs = hf_logits(load_hf_model(checkpoint), ids)
    plain = hf_logits(load_hf_model(tiny_checkpoint), ids)
    if "activation_function" not in switch:  # the same function: nothing to tell apart
        assert np.abs(theirs - plain).max() > 10 * np.abs(ours - theirs).max()  # it matters
    assert np.abs(ours - theirs).max() <= 1e-3
