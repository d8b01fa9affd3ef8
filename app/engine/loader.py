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

# The prompt graph of an int8 model (models.graph, PROMPT_FORMAT), beside model.onnx.
PROMPT_GRAPH = "prompt.onnx"


def find_config(folder: Path, graph_dir: Path | None = None) -> Path | None:
    """The config.json of the model in `folder`: beside its graph first (`graph_dir`, such as
    the onnx/ subfolder of an optimum export), else in `folder`; never above `folder`."""
    dirs = [graph_dir, folder] if graph_dir is not None and graph_dir != folder else [folder]
    return next((d / "config.json" for d in dirs if (d / "config.json").is_file()), None)


def read_config(folder: Path, graph_dir: Path | None = None) -> dict[str, Any]:
    """What find_config finds, read; {} when there is none."""
    path = find_config(folder, graph_dir)
    if path is None:
        return {}
    try:
        return dict(json.loads(path.read_text("utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError):
        raise ModelLoadError(f"{path} is not valid JSON; restore the model's "
                             "config.json.") from None


def load_runner(folder: Path, device: str = "auto", threads: int | None = None,
                verify: bool = True) -> Runner[Any]:
    """Open the model in `folder` on the best provider; every failure is one ModelLoadError.
    `verify`: check a Ghostpen model's files against the sha256 in its manifest (hashing only
    those changed since they last matched); False for a folder its caller has just written."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder; choose a model folder.")
    threads = threads if threads is not None else default_threads()
    if (folder / MANIFEST).exists():
        return _load_own(folder, device, threads, verify)
    path = find_onnx(folder)
    config = read_config(folder, path.parent)
    config_path = find_config(folder, path.parent) or folder / "config.json"
    n_positions = _config_size(config, "n_positions", config_path, default=1024)
    hint = config.get("n_head")
    session, reason = create_session(path, device, threads)
    contract = detect_contract(session, n_head_hint=hint if type(hint) is int and hint > 0
                               else None)
    return ForeignRunner(session, contract, n_positions, reason)


# GPT-2 reads 1024 positions, gpt2-xl is 48 layers of 25 heads, 1600 wide: a config.json beyond
# these bounds was edited by hand (a KV cache preallocated for 10**12 positions cannot exist).
MAX_POSITIONS = 1 << 16
MAX_SIZE = 1 << 22


def _config_size(config: dict[str, Any], key: str, path: Path, default: int | None = None
                 ) -> int:
    """config[key], a count (of layers, heads, positions...): a whole number above 0."""
    value = config.get(key, default)
    limit = MAX_POSITIONS if key == "n_positions" else MAX_SIZE
    if value is None:
        raise ModelLoadError(f"{path} lacks {key}; restore the model's config.json.")
    if type(value) is not int or not 0 < value <= limit:
        raise ModelLoadError(f"{path} gives {key} as {value!r}, not a whole number from 1 to "
                             f"{limit:,}; restore the model's config.json.")
    return value


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
    manifest = read_manifest(folder, verify_hashes=verify)
    config = read_config(folder)
    session, reason = create_session(folder / "model.onnx", device, threads)
    names = {i.name for i in session.get_inputs()}
    if "seqlens_k" not in names or "past_key_0" not in names:
        raise ModelLoadError(f"{folder / 'model.onnx'} does not follow Ghostpen's graph contract; "
                             "convert the checkpoint again with `python -m models.export`.")
    shape = _graph_shape(session, config, folder / "config.json")
    prompt_session = None
    # Only a prompt graph the manifest lists (and so checked), and only on the CPU, where the
    # cache is host memory; a model converted before it existed runs prompts through model.onnx.
    if PROMPT_GRAPH in manifest.files and \
            session.get_providers()[0] == "CPUExecutionProvider":  # type: ignore[attr-defined]
        prompt_session, _ = create_session(folder / PROMPT_GRAPH, "cpu", threads,
                                           prompt_graph=True)
    return ModelRunner(session, shape, reason, prompt_session)


def _graph_shape(session: Any, config: dict[str, Any], config_path: Path) -> GraphShape:
    """The shape of our graph, from config.json, checked against what the graph declares (the
    layers' past_key inputs, their heads and head size, the logits' width): a config.json that
    disagrees would fail at the first token, in onnxruntime's words."""
    n_embd = _config_size(config, "n_embd", config_path)
    n_head = _config_size(config, "n_head", config_path)
    if n_embd % n_head:
        raise ModelLoadError(f"{config_path} gives n_embd {n_embd}, which n_head {n_head} does "
                             "not divide; restore the model's config.json.")
    shape = GraphShape(
        n_layer=_config_size(config, "n_layer", config_path), n_head=n_head,
        head_dim=n_embd // n_head,
        vocab_size=_config_size(config, "vocab_size", config_path, default=50257),
        n_positions=_config_size(config, "n_positions", config_path, default=1024),
        cache_dtype=_cache_dtype(session),
    )
    inputs = {i.name: i.shape for i in session.get_inputs()}
    logits = next((o.shape for o in session.get_outputs() if o.name == "logits"), [None])
    declared = {"n_layer": sum(name.startswith("past_key_") for name in inputs),
                "n_head": inputs["past_key_0"][1], "head size (n_embd / n_head)":
                inputs["past_key_0"][3], "vocab_size": logits[-1]}
    expected = {"n_layer": shape.n_layer, "n_head": shape.n_head,
                "head size (n_embd / n_head)": shape.head_dim, "vocab_size": shape.vocab_size}
    for key, in_graph in declared.items():
        if isinstance(in_graph, int) and in_graph != expected[key]:
            raise ModelLoadError(f"{config_path} gives {key} {expected[key]}, the graph beside "
                                 f"it has {in_graph}; restore the model's config.json or convert "
                                 "the model again.")
    return shape
