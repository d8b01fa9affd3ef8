"""Quality on trained weights: the stand-in GPT-2 (../shared/standin), scored on its held-out
text the way `python -m app bench quality` scores it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.bench.quality import (
    OUTLIER_SCALES,
    STANDIN_DIR,
    STANDIN_TEXT,
    Score,
    add_outliers,
    convert,
    score_runners,
    token_windows,
    write_checkpoint,
)
from app.engine.loader import load_runner
from app.engine.tokenizer import Tokenizer
from models.checkpoint import load_checkpoint
from models.smoothing import norm_output_max

pytestmark = pytest.mark.skipif(not (STANDIN_DIR / "model.safetensors").exists(),
                                reason=f"the trained stand-in is not in {STANDIN_DIR}")
WINDOWS = 2  # of 512 tokens: 1,022 tokens scored
DEFAULT_CPU_PRECISION = "int8"


@pytest.fixture(scope="module")
def windows() -> list[np.ndarray]:
    ids = Tokenizer.from_dir(STANDIN_DIR).encode((STANDIN_DIR / STANDIN_TEXT).read_text("utf-8"))
    return token_windows(ids)[:WINDOWS]


@pytest.fixture(scope="module")
def outlier_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config, weights = load_checkpoint(STANDIN_DIR)
    return write_checkpoint(STANDIN_DIR, tmp_path_factory.mktemp("outliers") / "checkpoint",
                            add_outliers(weights, config.n_layer, config.n_embd, seed=0))


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory,
              outlier_checkpoint: Path) -> dict[str, Path]:
    """Both checkpoints in fp32 and in the default CPU precision, named "stand-in fp32",
    "outlier copy int8" and so on."""
    root = tmp_path_factory.mktemp("quality")
    sources = {"stand-in": STANDIN_DIR, "outlier copy": outlier_checkpoint}
    return {f"{name} {precision}": convert(source, root / f"{name}-{precision}".replace(" ", "-"),
                                           precision)
            for name, source in sources.items() for precision in ("fp32", DEFAULT_CPU_PRECISION)}


def runner(folder: Path) -> Any:
    return load_runner(folder, device="cpu", threads=2)


@pytest.fixture(scope="module")
def scores(converted: dict[str, Path], windows: list[np.ndarray]) -> dict[str, Score]:
    """Each model on the first windows, prompt path, KL against the stand-in's fp32 (as the
    bench scores them)."""
    runners = {name: runner(folder) for name, folder in converted.items()}
    return score_runners(runners, "stand-in fp32", windows, 0, progress=lambda _: None)


def test_our_fp32_scores_the_perplexity_transformers_scores(
        scores: dict[str, Score], windows: list[np.ndarray]) -> None:
    import torch

    from tests.engine.hf_reference import load_hf_model

    model = load_hf_model(STANDIN_DIR)
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for window in windows:
            logits = model(torch.tensor(window[None, :])).logits[0, :-1].float()
            log_p = torch.log_softmax(logits, -1)
            nll -= float(log_p[torch.arange(len(window) - 1), torch.tensor(window[1:])].sum())
            tokens += len(window) - 1
    theirs, ours = math.exp(nll / tokens), scores["stand-in fp32"].ppl
    assert f"{ours:.5g}" == f"{theirs:.5g}", (ours, theirs)


def test_the_decode_path_scores_what_the_prompt_path_scores_in_fp32(
        converted: dict[str, Path], windows: list[np.ndarray]) -> None:
    """Feeding a window token by token through the KV cache, as generation does, gives the
    perplexity of the one-forward whole window: the bench's two columns measure one model."""
    score = score_runners({"fp32": runner(converted["stand-in fp32"])}, "fp32", windows[:1],
                          tbt_windows=1, progress=lambda _: None)["fp32"]
    assert f"{score.tbt_ppl:.5g}" == f"{score.ppl:.5g}", (score.ppl, score.tbt_ppl)


def test_the_outlier_copy_is_the_same_function_with_outlier_channels(
        outlier_checkpoint: Path, scores: dict[str, Score], windows: list[np.ndarray]) -> None:
    config, weights = load_checkpoint(outlier_checkpoint)
    peaks = norm_output_max(weights, config, windows[0][:128])["h.1.ln_2"]
    assert peaks.max() >= OUTLIER_SCALES[0] * np.median(peaks)  # as trained GPT-2s have
    original, copy = scores["stand-in fp32"], scores["outlier copy fp32"]
    assert f"{copy.ppl:.5g}" == f"{original.ppl:.5g}", (original.ppl, copy.ppl)
    assert copy.top1 == 1.0


@pytest.mark.parametrize("checkpoint", ["stand-in", "outlier copy"])
def test_the_default_cpu_precision_keeps_perplexity_within_a_tenth_of_a_percent_of_fp32(
        checkpoint: str, scores: dict[str, Score]) -> None:
    fp32 = scores[f"{checkpoint} fp32"].ppl
    quantised = scores[f"{checkpoint} {DEFAULT_CPU_PRECISION}"].ppl
    assert quantised <= fp32 * 1.001, f"{DEFAULT_CPU_PRECISION} {quantised / fp32 - 1:+.3%}"
