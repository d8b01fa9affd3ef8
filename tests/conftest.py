"""Shared test setup: Qt offscreen, offline Hub; models made once per session (seeded random
checkpoints and their conversions)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from models.export import export_model
from models.random import write_random_checkpoint
from tests.hub_server import GPT2_REPO, FakeHub, go_online

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own settings, data and Hugging Face folders (tmp_path/config, tmp_path/data,
    tmp_path/hf), so that nothing reads or writes the person's own; the real engine, not the
    fake one a parent process may have asked for."""
    monkeypatch.setenv("GHOSTPEN_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GHOSTPEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("GHOSTPEN_FAKE_ENGINE", raising=False)
    return tmp_path


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


@pytest.fixture(scope="session")
def tiny_sharded_checkpoint(tiny_checkpoint: Path,
                            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint as transformers saves one over its shard size: two
    model-0000N-of-00002.safetensors and model.safetensors.index.json."""
    from transformers import GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("sharded")
    GPT2LMHeadModel.from_pretrained(tiny_checkpoint).save_pretrained(folder, max_shard_size="4MB")
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(tiny_checkpoint / name, folder)
    return folder


@pytest.fixture
def hub(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> Iterator[FakeHub]:
    """A stand-in Hub on loopback serving the tiny checkpoint as openai-community/gpt2, with
    huggingface_hub pointed at it (online, its cache in tmp_path)."""
    with FakeHub(lifetime_s=60) as server:
        server.add_repo(GPT2_REPO, tiny_checkpoint)
        go_online(server, monkeypatch, tmp_path / "hf")
        yield server


@pytest.fixture(scope="session")
def standin_fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained stand-in GPT-2 (../shared/standin) converted to fp32 by our converter; the
    test is skipped where the stand-in is absent."""
    from app.bench.common import STANDIN_DIR

    if not (STANDIN_DIR / "model.safetensors").exists():
        pytest.skip(f"the trained stand-in is not in {STANDIN_DIR}")
    out = tmp_path_factory.mktemp("standin") / "standin-fp32"
    export_model(STANDIN_DIR, out, "fp32", progress=lambda _: None)
    return out


@pytest.fixture(scope="module")
def tiny_model_copy(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny model: loading a model writes a verification stamp into its folder,
    which the shared one must not get (other tests read that folder as freshly made)."""
    target = tmp_path_factory.mktemp("copy") / "tiny"
    shutil.copytree(tiny_model, target)
    return target
