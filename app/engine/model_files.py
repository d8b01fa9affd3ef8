"""A Ghostpen model folder: model.onnx (the graph), model.onnx.data (the weights), tokenizer.json,
config.json and manifest.json, which names the format version, precision, source and the size
and sha256 of every file. Checked at load so that a damaged folder gives one clear line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engine.errors import ModelLoadError

MANIFEST = "manifest.json"
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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    return {name: {"size": (folder / name).stat().st_size, "sha256": sha256_of(folder / name)}
            for name in names}


def write_manifest(folder: Path, manifest: Manifest) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2) + "\n", "utf-8")


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
