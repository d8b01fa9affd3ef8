"""A Ghostpen model folder: model.onnx (the graph), model.onnx.data (the weights), tokenizer.json,
config.json and manifest.json, which names the format version, precision, source and the size
and sha256 of every file. Checked at load so that a damaged folder gives one clear line.

Hashing gpt2-large's 1.6 GB takes seconds, so a file is hashed on the first load and again only
when it changed: VERIFIED keeps, per file, the size, mtime and inode it had when its sha256
last matched. A file rewritten in place with its size and mtime restored (os.utime) keeps its
stamp: the trade-off make and rsync make too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from app.engine.errors import ModelLoadError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# Per file, what it was when its sha256 last matched the manifest (see verify_files).
VERIFIED = ".verified.json"
VERIFIED_FORMAT = "ghostpen-verified"
# What every model folder of this format holds; the weights file model.onnx.data too where there
# is one (models converted before the weights always went there hold them in model.onnx).
REQUIRED_FILES = ("model.onnx", "tokenizer.json", "config.json")
EXTERNAL_DATA = "model.onnx.data"
_SHA256 = re.compile(r"[0-9a-f]{64}")
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
    smoothquant: float | None = None  # the alpha SmoothQuant was folded in with, or None
    # The converter's quality gate (models/quality_gate.py): the figures measured against fp32,
    # and "asked" / "fallback" when it converted a safer precision than the one asked for.
    # {} when not measured (fp32, --no-gate, models converted before the gate).
    quality: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "format_version": self.version,
            "graph_format": self.graph_format,
            "precision": self.precision,
            "source": self.source,
            "n_params": self.n_params,
            "kv_cache": self.kv_cache,
            "smoothquant": self.smoothquant,
            "files": self.files,
            "check": self.check,
            "quality": self.quality,
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
    """Read and check manifest.json: version, every file present with its recorded size and,
    with `verify_hashes`, its sha256 (verify_files: hashed only when changed since)."""
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
    if type(version) is not int or version != MANIFEST_VERSION:  # true == 1 in Python
        raise ModelLoadError(
            f"{folder} is in model format version {version}, this Ghostpen reads version "
            f"{MANIFEST_VERSION}; convert it again with `python -m models.export SRC {folder}`."
        )
    manifest = _parse_manifest(path, data)
    for name, entry in manifest.files.items():
        if not is_inside(folder, name):
            raise ModelLoadError(f"{path} names {name!r}, which is not a file in {folder}; "
                                 "convert or download the model again.")
        if not _is_file_entry(entry):
            raise ModelLoadError(f"{path} gives no valid size and sha256 for {name!r}; "
                                 "convert or download the model again.")
    wanted = (*REQUIRED_FILES, *([EXTERNAL_DATA] if (folder / EXTERNAL_DATA).exists() else []))
    for name in wanted:
        if name not in manifest.files:
            raise ModelLoadError(f"{path} does not list {name}; convert or download the model "
                                 "again.")
    for name, entry in manifest.files.items():
        file = folder / name
        if not file.is_file():
            raise ModelLoadError(f"{file} is missing; convert or download the model again.")
        size = file.stat().st_size
        if size != entry["size"]:
            raise ModelLoadError(
                f"{file} is {size:,} bytes, the manifest says {entry['size']:,}: it is "
                "truncated or was replaced; convert or download the model again."
            )
    if verify_hashes:
        verify_files(folder, manifest)
    return manifest


def _parse_manifest(path: Path, data: dict[str, Any]) -> Manifest:
    """The Manifest in `data`, read from `path`; a missing or mistyped field is one line."""
    try:
        files, check, quality = data["files"], data.get("check", {}), data.get("quality", {})
        if not all(isinstance(part, dict) for part in (files, check, quality)):
            raise TypeError("'files', 'check' and 'quality' must be objects")
        n_params = data.get("n_params", 0)
        if type(n_params) is not int:
            raise TypeError("'n_params' must be a whole number")
        smoothquant = data.get("smoothquant")
        if smoothquant is not None and type(smoothquant) not in (int, float):
            raise TypeError("'smoothquant' must be a number or null")
        return Manifest(
            precision=str(data["precision"]), source=str(data.get("source", "")),
            graph_format=str(data["graph_format"]), files=dict(files), n_params=n_params,
            check=dict(check), version=MANIFEST_VERSION, kv_cache=str(data.get("kv_cache", "")),
            smoothquant=None if smoothquant is None else float(smoothquant), quality=dict(quality),
        )
    except KeyError as error:
        raise ModelLoadError(f"{path} lacks {error}; convert the model again.") from error
    except TypeError as error:
        raise ModelLoadError(f"{path} is damaged ({error}); convert the model again.") from error


def _is_file_entry(entry: object) -> bool:
    """Whether a manifest's entry for one file is {"size": bytes, "sha256": 64 hex digits}."""
    if not isinstance(entry, dict):
        return False
    size, digest = entry.get("size"), entry.get("sha256")
    return type(size) is int and size >= 0 and isinstance(digest, str) \
        and _SHA256.fullmatch(digest) is not None


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Check each file of `manifest` against its sha256, except one whose size, mtime and inode
    are still those recorded in VERIFIED when it last matched; then record them all. A file of
    the right size with damaged bytes loads, and its NaNs would surface only as a confusing
    failure of every generation."""
    trusted = _read_stamps(folder)
    stamps: dict[str, dict[str, Any]] = {}
    for name, entry in manifest.files.items():
        file = folder / name
        # stat before hashing: a file changed while it is hashed then no longer fits its stamp
        stamp = _stamp(file, entry["sha256"])
        if trusted.get(name) != stamp and sha256_of(file) != entry["sha256"]:
            raise ModelLoadError(f"{file} does not match its sha256 in {MANIFEST}: it is "
                                 "damaged; download or convert the model again.")
        stamps[name] = stamp
    if stamps != trusted:
        _write_stamps(folder, stamps)


def _stamp(file: Path, sha256: str) -> dict[str, Any]:
    info = file.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "inode": info.st_ino,
            "sha256": sha256}


def _read_stamps(folder: Path) -> dict[str, Any]:
    """VERIFIED's stamps; none when it is missing, damaged or not a plain small file (a link
    would read outside the folder)."""
    path = folder / VERIFIED
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > 1 << 20:
            return {}
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != VERIFIED_FORMAT:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _write_stamps(folder: Path, stamps: dict[str, dict[str, Any]]) -> None:
    """Write VERIFIED whole or not at all (a temporary file renamed over it). A folder that
    cannot be written (read-only media) is verified again at every load instead."""
    text = json.dumps({"format": VERIFIED_FORMAT, "files": stamps}, indent=1) + "\n"
    temp = ""
    try:
        handle, temp = tempfile.mkstemp(prefix=VERIFIED + ".", suffix=".tmp", dir=folder)
        with os.fdopen(handle, "w", encoding="utf-8") as writer:
            writer.write(text)
        os.replace(temp, folder / VERIFIED)
    except OSError as error:
        log.info("could not record the verified files in %s: %s", folder, error)
        if temp:
            with contextlib.suppress(OSError):
                os.unlink(temp)


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
                             f"`python -m models.export {folder} OUT` or Models ▸ Manage "
                             "Models… ▸ Add from Folder.")
    raise ModelLoadError(f"{folder} holds no model.onnx; choose a Ghostpen model folder or an "
                         "ONNX GPT-2 export.")
