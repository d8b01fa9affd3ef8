"""Shared test setup: Qt offscreen, offline Hub; models made once per session (seeded random
checkpoints and their conversions)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from models.export import export_model
from models.random import write_random_checkpoint

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """make(preset, precision=None) -> a checkpoint folder, or a converted model folder."""
    root = tmp_path_factory.mktemp("models")
    made: dict[tuple[str, str | None], Path] = {}

    def make(preset: str, precision: str | None = None) -> Path:
        key = (preset, precision)
        if key not in made:
            if precision is None:
                made[key] = root / f"{preset}-checkpoint"
                write_random_checkpoint(preset, made[key], seed=7)
            else:
                made[key] = root / f"{preset}-{precision}"
                export_model(make(preset), made[key], precision, progress=lambda _: None)
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(model_cache: Callable[..., Path]) -> Path:
    return model_cache("tiny")


@pytest.fixture(scope="session")
def tiny_model(model_cache: Callable[..., Path]) -> Path:
    return model_cache("tiny", "fp32")
