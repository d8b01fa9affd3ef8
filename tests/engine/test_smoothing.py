"""SmoothQuant folded into the weights: the same function, a smaller activation range, and the
converter's default for int8 / int4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import models.export as export
from app.engine.tokenizer import Tokenizer
from models.checkpoint import GPT2Config, load_checkpoint
from models.kv_calibration import CALIBRATION_TEXT
from models.reference import gpt2_logits
from models.smoothing import (
    SMOOTH_ALPHA,
    norm_output_max,
    rescale_channels,
    smooth_weights,
    smoothing_scales,
)

OUTLIER_CHANNEL = 3
OUTLIER_SCALE = np.float32(100.0)


def with_outlier(weights: dict[str, np.ndarray], config: GPT2Config) -> dict[str, np.ndarray]:
    """A copy where one output channel of every ln_1 and ln_2 is OUTLIER_SCALE times larger
    (the rows it feeds divided by that): the same function, as trained GPT-2s' outliers are."""
    out = dict(weights)
    channel, scale = np.array([OUTLIER_CHANNEL]), np.array([OUTLIER_SCALE])
    for i in range(config.n_layer):
        rescale_channels(out, f"h.{i}.ln_1", f"h.{i}.attn.c_attn.weight", channel, scale)
        rescale_channels(out, f"h.{i}.ln_2", f"h.{i}.mlp.c_fc.weight", channel, scale)
    return out


@pytest.fixture(scope="module")
def outlier_checkpoint(tiny_checkpoint: Path) -> tuple[GPT2Config, dict[str, np.ndarray]]:
    config, weights = load_checkpoint(tiny_checkpoint)
    return config, with_outlier(weights, config)


@pytest.fixture(scope="module")
def calibration_ids(tiny_checkpoint: Path) -> list[int]:
    return Tokenizer.from_dir(tiny_checkpoint).encode(CALIBRATION_TEXT)


def test_smoothed_weights_compute_the_same_logits_in_fp32(
        outlier_checkpoint: tuple[GPT2Config, dict[str, np.ndarray]],
        calibration_ids: list[int]) -> None:
    config, weights = outlier_checkpoint
    smoothed = smooth_weights(weights, config, calibration_ids)
    ids = calibration_ids[:64]
    original = gpt2_logits(weights, config, ids)
    changed = gpt2_logits(dict(smoothed), config, ids)
    assert not np.array_equal(smoothed["h.0.ln_1.weight"], weights["h.0.ln_1.weight"])
    assert np.abs(changed - original).max() < 1e-4 * np.abs(original).max()


def test_smoothing_lowers_an_outlier_channels_peak(
        outlier_checkpoint: tuple[GPT2Config, dict[str, np.ndarray]],
        calibration_ids: list[int]) -> None:
    config, weights = outlier_checkpoint
    before = norm_output_max(weights, config, calibration_ids)
    after = norm_output_max(smooth_weights(weights, config, calibration_ids), config,
                            calibration_ids)
    for norm in ("h.0.ln_1", "h.1.ln_2"):
        assert before[norm].argmax() == OUTLIER_CHANNEL
        assert after[norm].max() < before[norm].max() / 5, norm
        # the range between channels shrinks too: what a per-block int8 input loses to outliers
        spread_before = before[norm].max() / np.median(before[norm])
        assert after[norm].max() / np.median(after[norm]) < spread_before / 5, norm


def test_int8_and_int4_are_smoothed_by_default_and_checked_against_the_original_weights(
        tiny_checkpoint: Path, tmp_path: Path,
        outlier_checkpoint: tuple[GPT2Config, dict[str, np.ndarray]]) -> None:
    """The manifest says whether SmoothQuant was folded in; --check compares with the
    checkpoint's own weights, and on outlier channels smoothing keeps int8 closer to them."""
    errors: dict[tuple[str, bool], float] = {}
    for precision in ("fp32", "int8", "int4"):
        for smooth in (True, False):
            out = tmp_path / f"{precision}-{smooth}"
            manifest = export.export_model(tiny_checkpoint, out, precision, check=True,
                                           progress=lambda _: None,
                                           checkpoint=outlier_checkpoint, smooth=smooth)
            recorded = json.loads((out / "manifest.json").read_text())["smoothquant"]
            expected = SMOOTH_ALPHA if smooth and precision != "fp32" else None
            assert recorded == manifest.smoothquant == expected
            errors[precision, smooth] = manifest.check["relative_error"]
    assert errors["fp32", True] < 1e-5
    assert errors["int8", True] < errors["int8", False] / 2, errors


def test_no_smooth_flag_converts_without_smoothing(tiny_checkpoint: Path,
                                                   tmp_path: Path) -> None:
    assert export.main([str(tiny_checkpoint), str(tmp_path / "m"), "--precision", "int8",
                        "--no-smooth"]) == 0
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["smoothquant"] is None


def test_smoothing_scales_at_alpha_half_give_activations_and_weights_the_same_range() -> None:
    """s_j = sqrt(max|X_j| / max|W_j|): X_j / s_j and W_j * s_j then peak at the same value,
    so a 100x activation channel leaves a 10x one in each (what the kernel tests measure)."""
    x_max = np.array([1.0, 100.0, 0.5], np.float32)
    w_max = np.array([0.02, 0.02, 0.08], np.float32)
    s = smoothing_scales(x_max, w_max, alpha=0.5)
    np.testing.assert_allclose(x_max / s, w_max * s, rtol=1e-6)
    assert (x_max / s)[1] / (x_max / s)[0] == pytest.approx(10.0)
