"""A Ghostpen model folder: model.onnx (the graph), model.onnx.data (the weights), tokenizer.json,
config.json and manifest.json, which names the format version, precision, source and the size
and sha256 of every file. Checked at load so that a damaged folder gives one clear line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from app.engine.errors import ModelLoadError

MANIFEST = "manifest.json"
# A Hugging Face checkpoint's weights: one file, or the index transformers' save_pretrained
# writes beside model-0000N-of-0000M.safetensors when a checkpoint is over its shard size (5 GB:
# a fine-tuned gpt2-xl in float32). Named here, in the engine's file format, because both the
# loader (to tell a checkpoint from a model) and the converter (to read it) need them.
CHECKPOINT_WEIGHTS = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"
# The graph file names of the ONNX exports the loader runs as they are, most specific first.
FOREIGN_NAMES = ("model.onnx", "decoder_model_merged.onnx", "decoder_with_past_model.onnx",
                 "model_quantized.onnx")
MANIFEST_FORMAT = "ghostpen-model"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    precision: str
    source: str
    graph_format: str
    files: dict[str, dict[str, Any]]  # name -> {"size": int, "sha256": str}
    n_params: int = 0
    check: dict[str, Any] = field(default_factory=dict)
    version: int = MANIFEST_VERSION
    kv_cache: str = ""  # fp32 / fp16 / int8; the graph's past_key inputs are the authority

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "format_version": self.version,
            "graph_format": self.graph_format,
            "precision": self.precision,
            "source": self.source,
            "n_params": self.n_params,
            "kv_cache": self.kv_cache,
            "files": self.files,
            "check": self.check,
        }


def hash_file(path: Path, digest: Any) -> str:
    """Feed `path` to a hashlib `digest` in 1 MiB blocks (model files run to gigabytes) and
    return its hex digest."""
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return str(digest.hexdigest())


def sha256_of(path: Path) -> str:
    return hash_file(path, hashlib.sha256())


def describe_files(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    return {name: {"size": (folder / name).stat().st_size, "sha256": sha256_of(folder / name)}
            for name in names}


def write_manifest(folder: Path, manifest: Manifest) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2) + "\n", "utf-8")


def is_inside(folder: Path, name: object) -> bool:
    """Whether `name`, a file name read from a file or a server, names something inside `folder`:
    relative (on any system), no `..` part, and not leading out through a link. Such names are
    joined to a folder; unchecked, `../../x` or an absolute path would read or write elsewhere."""
    if not isinstance(name, str) or not name or "\0" in name:
        return False
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            return False
    try:
        root = folder.resolve()
        return (root / name).resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a link loop (RuntimeError before Python 3.13)
        return False


def read_manifest(folder: Path, verify_hashes: bool = False) -> Manifest:
    """Read and check manifest.json: version, every file present with its recorded size."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as error:
        raise ModelLoadError(f"{folder} has no {MANIFEST}; convert the checkpoint with "
                             "`python -m models.export SRC OUT`.") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{path} is damaged; convert the model again with "
                             "`python -m models.export`.") from error
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ModelLoadError(f"{path} is not a Ghostpen manifest; convert the model again.")
    version = data.get("format_version")
    if version != MANIFEST_VERSION:
        raise ModelLoadError(
            f"{folder} is in model format version {version}, this Ghostpen reads version "
            f"{MANIFEST_VERSION}; convert it again with `python -m models.export SRC {folder}`."
        )
    try:
        manifest = Manifest(
            precision=str(data["precision"]), source=str(data.get("source", "")),
            graph_format=str(data["graph_format"]), files=dict(data["files"]),
            n_params=int(data.get("n_params", 0)), check=dict(data.get("check", {})),
            version=version, kv_cache=str(data.get("kv_cache", "")),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(f"{path} lacks {error}; convert the model again.") from error
    for name, entry in manifest.files.items():
        if not is_inside(folder, name):
            raise ModelLoadError(f"{path} names {name!r}, which is not a file in {folder}; "
                                 "convert or download the model again.")
        file = folder / name
        if not file.exists():
            raise ModelLoadError(f"{file} is missing; convert or download the model again.")
        size = file.stat().st_size
        if size != entry.get("size"):
            raise ModelLoadError(
                f"{file} is {size:,} bytes, the manifest says {entry.get('size'):,}: it is "
                "truncated or was replaced; convert or download the model again."
            )
        if verify_hashes and sha256_of(file) != entry.get("sha256"):
            raise ModelLoadError(f"{file} does not match its sha256 in the manifest: it is "
                                 "corrupt; convert or download the model again.")
    return manifest


def has_checkpoint_weights(folder: Path) -> bool:
    """Whether `folder` holds safetensors weights, in one file or in shards."""
    return (folder / CHECKPOINT_WEIGHTS).exists() or (folder / SHARD_INDEX).exists()


def find_onnx(folder: Path) -> Path:
    """The ONNX graph to run from `folder` (or its onnx/ subfolder, as optimum lays it out)."""
    for base in (folder, folder / "onnx"):
        for name in FOREIGN_NAMES:
            if (base / name).exists():
                return base / name
    found = sorted(folder.glob("*.onnx")) + sorted(folder.glob("onnx/*.onnx"))
    if found:
        return found[0]
    if has_checkpoint_weights(folder):
        raise ModelLoadError(f"{folder} is a checkpoint, not a converted model; convert it with "
                             f"`python -m models.export {folder} OUT` or Models → Add from folder.")
    raise ModelLoadError(f"{folder} holds no model.onnx; choose a Ghostpen model folder or an "
                         "ONNX GPT-2 export.")
