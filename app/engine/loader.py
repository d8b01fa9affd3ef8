"""Find what a model folder holds and open it: our own export first, foreign exports too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.errors import ModelLoadError
from app.engine.foreign_runner import ForeignRunner, detect_contract
from app.engine.model_files import MANIFEST, find_onnx, read_manifest
from app.engine.runner import GraphShape, ModelRunner, create_session, default_threads
from app.engine.runner_protocol import Runner


def read_config(folder: Path) -> dict[str, Any]:
    for candidate in (folder / "config.json", folder.parent / "config.json"):
        if candidate.exists():
            try:
                return dict(json.loads(candidate.read_text("utf-8")))
            except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError):
                raise ModelLoadError(f"{candidate} is not valid JSON; restore the model's "
                                     "config.json.") from None
    return {}


def load_runner(folder: Path, device: str = "auto", threads: int | None = None,
                verify: bool = False) -> Runner[Any]:
    """Open the model in `folder` on the best provider; every failure is one ModelLoadError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder; choose a model folder.")
    threads = threads if threads is not None else default_threads()
    if (folder / MANIFEST).exists():
        return _load_own(folder, device, threads, verify)
    path = find_onnx(folder)
    config = read_config(path.parent)
    session, reason = create_session(path, device, threads)
    contract = detect_contract(session, n_head_hint=config.get("n_head"))
    n_positions = int(config.get("n_positions", 1024))
    return ForeignRunner(session, contract, n_positions, reason)


CACHE_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
                "tensor(int8)": np.int8}


def _cache_dtype(session: Any) -> type:
    """The KV cache's element type, as the graph declares it (fp32, fp16 or int8)."""
    declared = next(i.type for i in session.get_inputs() if i.name == "past_key_0")
    if declared not in CACHE_DTYPES:
        raise ModelLoadError(f"past_key_0 is {declared}, a KV cache type Ghostpen cannot hold; "
                             "convert the model again with `python -m models.export`.")
    return CACHE_DTYPES[declared]


def _load_own(folder: Path, device: str, threads: int | None, verify: bool) -> ModelRunner:
    read_manifest(folder, verify_hashes=verify)
    config = read_config(folder)
    session, reason = create_session(folder / "model.onnx", device, threads)
    names = {i.name for i in session.get_inputs()}
    if "seqlens_k" not in names or "past_key_0" not in names:
        raise ModelLoadError(f"{folder / 'model.onnx'} does not follow Ghostpen's graph contract; "
                             "convert the checkpoint again with `python -m models.export`.")
    try:
        n_head, n_embd = int(config["n_head"]), int(config["n_embd"])
        shape = GraphShape(
            n_layer=int(config["n_layer"]), n_head=n_head, head_dim=n_embd // n_head,
            vocab_size=int(config.get("vocab_size", 50257)),
            n_positions=int(config.get("n_positions", 1024)),
            cache_dtype=_cache_dtype(session),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(f"{folder / 'config.json'} lacks {error}; convert the model "
                             "again.") from error
    return ModelRunner(session, shape, reason)
