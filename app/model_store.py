"""The models a person has installed, and the ways to get more: add a folder, download one.

No Qt here (the Models dialog drives this from a worker thread). Every model is a folder under
`models_dir()`; the folder's name is the model's name. Work in progress (conversions, copies,
removals) happens inside hidden `.ghostpen-work-*` folders beside them and is renamed into place
only when complete, so a cancel or a crash never leaves half a model where the app looks.

Downloads go through huggingface_hub (its cache, HF_ENDPOINT and HF_HUB_OFFLINE honoured) and
only when asked. huggingface_hub 2.x no longer resumes across calls (a failed or cancelled
`hf_hub_download` deletes its partial file), so each file's bytes are fetched here into
`blobs/<etag>.incomplete` in the Hub cache with huggingface_hub's own HTTP session, resumed
with an HTTP Range request next time; `hf_hub_download` then files the finished blob into the
cache's snapshot layout as usual.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.engine.errors import GhostpenError, ModelLoadError
from app.engine.model_files import MANIFEST, read_manifest, write_manifest
from app.paths import models_dir

if TYPE_CHECKING:
    import numpy as np
    from huggingface_hub import HfFileMetadata

    from models.checkpoint import GPT2Config

log = logging.getLogger(__name__)


class Cancelled(GhostpenError):
    """The person cancelled the job; nothing half-made was left behind."""


class DownloadCancelled(Cancelled):
    """A download was cancelled; the bytes fetched so far are kept to resume next time."""


class HubUnavailable(GhostpenError):
    """The Hub cannot give the model: offline mode, no such repository, a refusal."""


class HubUnreachable(HubUnavailable):
    """No answer from the Hub (network down, timeout, a 5xx): a cached copy may stand in."""


@dataclass(frozen=True)
class InstalledModel:
    name: str  # the folder's name under models_dir()
    path: Path
    n_params: int  # 0 when unknown (foreign exports)
    precision: str  # fp32 / fp16 / int8 / int4, "" when unknown
    size_bytes: int  # all files in the folder
    foreign: bool  # an ONNX export in someone else's layout: loads, runs slower
    source: str  # where it came from: a checkpoint folder, hf://repo@commit, a copied folder
    problem: str = ""  # one line when the folder is damaged and cannot be loaded

    @property
    def usable(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class HubModel:
    key: str  # short name, also the start of the installed folder's name
    repo_id: str
    label: str  # what a person reads: "GPT-2 (124M)"
    n_params: int
    download_bytes: int  # about: model.safetensors + tokenizer + config


GPT2_FAMILY: tuple[HubModel, ...] = (
    HubModel("distilgpt2", "distilbert/distilgpt2", "DistilGPT-2 (82M)", 81_912_576, 354_000_000),
    HubModel("gpt2", "openai-community/gpt2", "GPT-2 (124M)", 124_439_808, 550_000_000),
    HubModel("gpt2-medium", "openai-community/gpt2-medium", "GPT-2 Medium (355M)", 354_823_168,
             1_520_000_000),
    HubModel("gpt2-large", "openai-community/gpt2-large", "GPT-2 Large (774M)", 774_030_080,
             3_250_000_000),
    HubModel("gpt2-xl", "openai-community/gpt2-xl", "GPT-2 XL (1.5B)", 1_557_611_200,
             6_430_000_000),
)


@dataclass(frozen=True)
class TaskProgress:
    """One step of a long job, for a progress bar: how far when known, else just a message."""

    stage: str  # "download", "convert" or "copy"
    message: str  # one line: "Downloading model.safetensors", "building the int8 graph"
    done: int = 0  # so far: bytes (download, copy) or transformer blocks (convert)
    total: int = 0  # in all; 0 when unknown (show a busy bar)

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total > 0 else None


ProgressCallback = Callable[[TaskProgress], None]

WORK_PREFIX = ".ghostpen-work-"
ORIGIN_FILE = ".ghostpen-origin.json"  # source of a copied foreign export (it has no manifest)
# Weights of other frameworks found beside an ONNX export: never loaded, not worth copying.
_SKIP_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".tflite", ".ot",
                  ".safetensors")
_GPU_PROVIDERS = ("CUDAExecutionProvider", "DmlExecutionProvider")
_CHUNK = 1 << 20


# --- small helpers for people --------------------------------------------------------------


def default_precision(providers: Sequence[str] | None = None) -> str:
    """fp16 where a GPU provider (CUDA, DirectML) is available, else int8 (fastest on CPU)."""
    if providers is None:
        from app.engine.providers import available_providers

        providers = available_providers()
    return "fp16" if any(p in providers for p in _GPU_PROVIDERS) else "int8"


def format_bytes(n: int) -> str:
    """Decimal units, as the Hub shows sizes: 548 MB, 1.52 GB."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
        value /= 1000
    return f"{value:.3g} TB"  # pragma: no cover - the loop returns at GB


def format_params(n: int) -> str:
    if n <= 0:
        return "—"
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    return f"{n / 1e3:.0f}K"


def catalogue_entry(key_or_repo: str) -> HubModel | None:
    return next((m for m in GPT2_FAMILY if key_or_repo in (m.key, m.repo_id)), None)


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:80]
    return cleaned or "model"


def _check_cancel(cancel: threading.Event | None, error: type[Cancelled] = Cancelled) -> None:
    if cancel is not None and cancel.is_set():
        raise error("Cancelled.")


# --- the installed models ------------------------------------------------------------------


def _folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_size
    return total


def _foreign_precision(onnx_path: Path) -> str:
    name = onnx_path.name.lower()
    for marker, precision in (("int4", "int4"), ("q4", "int4"), ("quantized", "int8"),
                              ("int8", "int8"), ("fp16", "fp16")):
        if marker in name:
            return precision
    return ""


def _config_params(folder: Path) -> int:
    from app.engine.loader import read_config

    try:
        config = read_config(folder)
        from models.checkpoint import GPT2Config

        return GPT2Config.from_hf_json(config, folder / "config.json").n_params if config else 0
    except GhostpenError:
        return 0


def describe(folder: Path) -> InstalledModel | None:
    """What the folder holds as an InstalledModel, or None when it is no model at all."""
    from app.engine.loader import find_onnx

    folder = Path(folder)
    size = _folder_size(folder)
    if (folder / MANIFEST).exists():
        try:
            manifest = read_manifest(folder)
        except ModelLoadError as error:
            return InstalledModel(folder.name, folder, 0, "", size, False, "", str(error))
        return InstalledModel(folder.name, folder, manifest.n_params, manifest.precision, size,
                              False, manifest.source)
    try:
        onnx_path = find_onnx(folder)
    except ModelLoadError:
        return None
    source = ""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        source = str(json.loads((folder / ORIGIN_FILE).read_text("utf-8")).get("source", ""))
    return InstalledModel(folder.name, folder, _config_params(onnx_path.parent),
                          _foreign_precision(onnx_path), size, True, source)


def list_models(root: Path | None = None) -> list[InstalledModel]:
    """Installed models, by name; damaged ones too (with `problem` set) so they can be removed."""
    root = models_dir() if root is None else Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        model = describe(folder)
        if model is not None:
            found.append(model)
    return sorted(found, key=lambda m: m.name.casefold())


def find_model(name: str, root: Path | None = None) -> InstalledModel | None:
    return next((m for m in list_models(root) if m.name == name), None)


def _work_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=root))


def remove(name: str, root: Path | None = None) -> None:
    """Delete an installed model. It is first moved aside, so a failure leaves no half model."""
    root = models_dir() if root is None else Path(root)
    model = find_model(name, root)
    if model is None:
        raise GhostpenError(f"There is no model called {name!r} in {root}.")
    work = _work_dir(root)
    try:
        model.path.rename(work / model.path.name)
    except OSError as error:
        shutil.rmtree(work, ignore_errors=True)
        raise GhostpenError(f"Could not remove {name} ({_one_line(error.strerror or error)}); "
                            "close whatever uses its files and try again.") from error
    shutil.rmtree(work, ignore_errors=True)


def _install(built: Path, root: Path, name: str) -> InstalledModel:
    """Move a finished folder into place as root/name, replacing what was there."""
    final = root / name
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=root))
        final.rename(old / name)
        built.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        built.rename(final)
    model = describe(final)
    if model is None:  # pragma: no cover - callers only install model folders
        raise ModelLoadError(f"{final} holds no model after installing it.")
    return model


def _unique_name(root: Path, wanted: str) -> str:
    name, n = wanted, 2
    while (root / name).exists():
        name, n = f"{wanted}-{n}", n + 1
    return name


def _convert(src: Path, root: Path, name: str, precision: str, source: str,
             progress: ProgressCallback, cancel: threading.Event | None,
             cancelled: type[Cancelled],
             checkpoint: tuple[GPT2Config, dict[str, np.ndarray]] | None = None) -> InstalledModel:
    from models.export import export_model

    def report(message: str) -> None:
        _check_cancel(cancel, cancelled)
        progress(TaskProgress("convert", message))

    def on_layer(done: int, total: int) -> None:
        _check_cancel(cancel, cancelled)
        progress(TaskProgress("convert", f"Converting to {precision}", done, total))

    work = _work_dir(root)
    try:
        progress(TaskProgress("convert", f"Converting to {precision}"))
        manifest = export_model(src, work / name, precision, check=False, progress=report,
                                on_layer=on_layer, checkpoint=checkpoint)
        write_manifest(work / name, replace(manifest, source=source))
        _check_cancel(cancel, cancelled)
        return _install(work / name, root, name)
    except OSError as error:  # the disk: full, read-only, permissions
        raise GhostpenError(f"Could not write the converted model in {root} "
                            f"({_one_line(error, 100)}); free some space and try again.") \
            from error
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _copy_tree(src: Path, dst: Path, files: list[Path], progress: ProgressCallback,
               cancel: threading.Event | None) -> None:
    total = sum(f.stat().st_size for f in files)
    done = 0
    for file in files:
        target = dst / file.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        with file.open("rb") as reader, target.open("wb") as writer:
            while block := reader.read(_CHUNK):
                _check_cancel(cancel)
                writer.write(block)
                done += len(block)
                progress(TaskProgress("copy", f"Copying {file.name}", done, total))
    progress(TaskProgress("copy", "Copied", total, total))


def _foreign_files(src: Path) -> list[Path]:
    files = []
    for dirpath, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files.extend(Path(dirpath) / n for n in names
                     if not n.startswith(".") and not n.lower().endswith(_SKIP_SUFFIXES))
    return sorted(files)


def add_from_folder(src: Path, precision: str | None = None,
                    progress: ProgressCallback | None = None,
                    cancel: threading.Event | None = None, *, name: str | None = None,
                    root: Path | None = None) -> InstalledModel:
    """Install what `src` holds: a Hugging Face GPT-2 checkpoint (config.json +
    model.safetensors), or a foreign ONNX export that kept the checkpoint's weight names, is
    converted to `precision` (default_precision() when None); a Ghostpen model folder or any
    other ONNX export is copied. Pickle checkpoints are refused."""
    from app.engine.loader import find_onnx
    from models.checkpoint import has_weights, load_checkpoint

    src = Path(src).expanduser()
    root = models_dir() if root is None else Path(root)
    progress = progress or (lambda _p: None)
    if not src.is_dir():
        raise ModelLoadError(f"{src} is not a folder; choose a model or checkpoint folder.")
    root.mkdir(parents=True, exist_ok=True)
    if src.resolve().parent == root.resolve():
        raise GhostpenError(f"{src.name} is already in the models folder.")

    checkpoint = None  # an export's weights, once read
    if (src / MANIFEST).exists():  # ours: copy exactly what the manifest names
        manifest = read_manifest(src)
        files = [src / n for n in (*manifest.files, MANIFEST)]
        kind = "ours"
    elif (has_weights(src) and (src / "config.json").exists()) or (
            _has_onnx(src) and (checkpoint := _export_checkpoint(src, progress)) is not None):
        # a checkpoint, or an export holding GPT-2's own weights (~6× faster converted)
        precision = precision or default_precision()
        target = _unique_name(root, _safe_name(name or f"{src.name}-{precision}"))
        return _convert(src, root, target, precision, str(src.resolve()), progress, cancel,
                        Cancelled, checkpoint)
    elif _has_onnx(src):
        find_onnx(src)
        files = _foreign_files(src)
        kind = "foreign"
    else:  # load_checkpoint words every refusal: pickle only, sharded, no weights, no config
        load_checkpoint(src)
        raise ModelLoadError(f"{src} holds neither a model nor a checkpoint.")

    target = _unique_name(root, _safe_name(name or src.name))
    work = _work_dir(root)
    try:
        _copy_tree(src, work / target, files, progress, cancel)
        if kind == "ours":
            read_manifest(work / target)  # every file arrived whole
        else:
            (work / target / ORIGIN_FILE).write_text(
                json.dumps({"source": str(src.resolve())}), "utf-8")
        _check_cancel(cancel)
        return _install(work / target, root, target)
    except OSError as error:
        raise GhostpenError(f"Could not copy {src} ({_one_line(error)}).") from error
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _export_checkpoint(src: Path, progress: ProgressCallback
                       ) -> tuple[GPT2Config, dict[str, np.ndarray]] | None:
    """The checkpoint inside a foreign ONNX export (models/onnx_weights.py), or None when it
    cannot be converted and is to be used as it is: quantised, an untied LM head, weights under
    other names, no config.json or tokenizer to convert with."""
    from app.engine.tokenizer import has_tokenizer_files
    from models.checkpoint import load_checkpoint

    if not has_tokenizer_files(src):  # load_checkpoint says what else is missing
        return None
    progress(TaskProgress("convert", "Reading the export's weights"))
    try:
        return load_checkpoint(src)
    except ModelLoadError as why:
        log.info("%s is used as it is: %s", src, why)
        return None


def _has_onnx(folder: Path) -> bool:
    return any(folder.glob("*.onnx")) or any(folder.glob("onnx/*.onnx"))


# --- downloads from the Hugging Face Hub ---------------------------------------------------


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _quiet_hub() -> None:
    """Ghostpen asks the Hub for the files and nothing else. huggingface_hub's telemetry (its
    user agent detects AI agents by fetching {HF_ENDPOINT}/api/agent-harnesses) stays off
    unless the person turned it on with HF_HUB_DISABLE_TELEMETRY=0."""
    from huggingface_hub import constants

    wanted = os.environ.get("HF_HUB_DISABLE_TELEMETRY", "1").strip().upper()
    constants.HF_HUB_DISABLE_TELEMETRY = wanted not in ("0", "OFF", "NO", "FALSE")


def hub_endpoint() -> str:
    """HF_ENDPOINT as it is now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    from huggingface_hub import constants

    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE") or \
        constants.is_offline_mode()


def hub_cache_dir() -> Path:
    """huggingface_hub's cache (HF_HUB_CACHE, else HF_HOME/hub), read now rather than at
    import, so a changed environment is honoured."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


@dataclass
class _RemoteFile:
    filename: str
    metadata: HfFileMetadata
    blob: Path

    @property
    def size(self) -> int:
        return int(self.metadata.size or 0)


def _network_error(endpoint: str, error: BaseException) -> HubUnreachable:
    reason = _one_line(error, 100) or type(error).__name__
    return HubUnreachable(f"Could not reach the Hugging Face Hub ({endpoint}: {reason}); check "
                          "the connection or use Add from folder.")


def _hub_call(endpoint: str, repo_id: str, call: Callable[[], Any]) -> Any:
    """Run one huggingface_hub call; its failures become one-line GhostpenErrors."""
    import httpx2
    from huggingface_hub.errors import (
        FileMetadataError,
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return call()
    except OfflineModeIsEnabled as error:
        raise HubUnavailable("Downloads are off (HF_HUB_OFFLINE is set); unset it or use Add "
                             "from folder.") from error
    except GatedRepoError as error:
        raise HubUnavailable(f"{repo_id} is gated on the Hub; download it in a browser and use "
                             "Add from folder.") from error
    except RepositoryNotFoundError as error:
        raise HubUnavailable(f"{repo_id} is not on the Hugging Face Hub ({endpoint}).") from error
    except RevisionNotFoundError as error:
        raise HubUnavailable(f"{repo_id} has no such revision on the Hub.") from error
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else 0
        kind = HubUnreachable if status >= 500 or status in (408, 429) else HubUnavailable
        raise kind(f"The Hugging Face Hub answered HTTP {status or '?'} for {repo_id}; try "
                   "again later or use Add from folder.") from error
    except FileMetadataError as error:
        raise HubUnavailable(f"{endpoint} does not answer like the Hugging Face Hub (check "
                             "HF_ENDPOINT); use Add from folder.") from error
    except (httpx2.TransportError, ConnectionError, TimeoutError) as error:
        raise _network_error(endpoint, error) from error
    except OSError as error:  # the disk: full, read-only, permissions
        raise GhostpenError(f"Could not save {repo_id} in the Hugging Face cache "
                            f"({_one_line(error, 100)}); free some space or set HF_HOME.") \
            from error


def _head(repo_id: str, filename: str, revision: str, endpoint: str) -> HfFileMetadata:
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    return get_hf_file_metadata(url, token=False, endpoint=endpoint,
                                timeout=constants.HF_HUB_ETAG_TIMEOUT,
                                library_name="ghostpen")


def _resolve_files(repo_id: str, revision: str, endpoint: str,
                   cache: Path) -> tuple[str, list[_RemoteFile]]:
    """HEAD the files to fetch, pinned to one commit: config, weights and a tokenizer."""
    from huggingface_hub.errors import RemoteEntryNotFoundError
    from huggingface_hub.file_download import repo_folder_name

    from models.checkpoint import SHARD_INDEX, WEIGHTS, shard_names

    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")

    def head(filename: str, rev: str) -> _RemoteFile | None:
        try:
            meta = _head(repo_id, filename, rev, endpoint)
        except RemoteEntryNotFoundError:
            return None
        if not meta.etag or not meta.commit_hash:
            raise HubUnavailable(f"{endpoint} gave no ETag or commit for {filename}: it does not "
                                 "answer like the Hugging Face Hub (check HF_ENDPOINT).")
        return _RemoteFile(filename, meta, storage / "blobs" / meta.etag)

    config = _hub_call(endpoint, repo_id, lambda: head("config.json", revision))
    if config is None:
        raise HubUnavailable(f"{repo_id} has no config.json on the Hub: it is not a "
                             "Transformers model.")
    commit = str(config.metadata.commit_hash)
    weights = _hub_call(endpoint, repo_id, lambda: head(WEIGHTS, commit))
    index = None if weights else _hub_call(endpoint, repo_id, lambda: head(SHARD_INDEX, commit))
    if weights is not None:
        files = [config, weights]
    elif index is not None:  # sharded: the index (a few kB) says which shards to fetch
        _hub_call(endpoint, repo_id, lambda: _fetch_blob(index, lambda _n: None, None, repo_id))
        files = [config, index]
        for name in shard_names(index.blob):
            shard = _hub_call(endpoint, repo_id, lambda n=name: head(n, commit))
            if shard is None:
                raise HubUnavailable(f"{repo_id} lacks {name} on the Hub, a shard its "
                                     f"{SHARD_INDEX} names; the repository is incomplete.")
            files.append(shard)
    else:
        raise HubUnavailable(f"{repo_id} has no model.safetensors on the Hub; Ghostpen converts "
                             "only safetensors checkpoints (pickle files can run code).")
    tokenizer = _hub_call(endpoint, repo_id, lambda: head("tokenizer.json", commit))
    if tokenizer is not None:
        files.append(tokenizer)
    else:
        for name in ("vocab.json", "merges.txt"):
            found = _hub_call(endpoint, repo_id, lambda n=name: head(n, commit))
            if found is None:
                raise HubUnavailable(f"{repo_id} has neither tokenizer.json nor {name} on the "
                                     "Hub, so its tokenizer is unknown.")
            files.append(found)
    return commit, files


def _fetch_blob(file: _RemoteFile, on_bytes: Callable[[int], None],
                cancel: threading.Event | None, repo_id: str) -> None:
    """Download one file into its cache blob, resuming `<blob>.incomplete` with a Range
    request. Bytes arrive through huggingface_hub's HTTP session (offline hook, proxies)."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import (
        WeakFileLock,
        build_hf_headers,
        get_session,
        hf_raise_for_status,
    )

    partial = file.blob.with_name(file.blob.name + ".incomplete")
    partial.parent.mkdir(parents=True, exist_ok=True)
    lock = file.blob.parent.parent.parent / ".locks" / file.blob.parent.parent.name / \
        f"{file.blob.name}.ghostpen.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    headers = build_hf_headers(token=False, library_name="ghostpen")
    headers["Accept-Encoding"] = "identity"  # byte offsets must be the file's own
    url = file.metadata.location
    attempts_left = 3
    with WeakFileLock(lock):
        if file.blob.exists():  # in the cache already (another download, another program)
            on_bytes(file.size)
            return
        while True:
            have = partial.stat().st_size if partial.exists() else 0
            if file.size and have > file.size:
                partial.unlink()
                have = 0
            on_bytes(have)  # what is on disk already counts as done
            if file.size and have == file.size:
                break
            request_headers = dict(headers)
            if have:
                request_headers["Range"] = f"bytes={have}-"
            got_data = False
            try:
                with get_session().stream("GET", url, headers=request_headers,
                                          timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as response:
                    if response.status_code == 416 and have:  # the partial is stale
                        partial.unlink()
                        continue
                    hf_raise_for_status(response)
                    if have and response.status_code != 206:  # Range ignored: start again
                        have = 0
                    with partial.open("r+b" if have else "wb") as out:
                        out.seek(have)
                        out.truncate()
                        for chunk in response.iter_bytes(256 * 1024):
                            _check_cancel(cancel, DownloadCancelled)
                            out.write(chunk)
                            have += len(chunk)
                            got_data = True
                            on_bytes(have)
                if not file.size or have >= file.size:
                    break
                raise httpx2.RemoteProtocolError("the server ended the file early")
            except httpx2.TransportError as error:
                attempts_left = 3 if got_data else attempts_left - 1
                if attempts_left <= 0:
                    raise
                if (cancel or threading.Event()).wait(1.0):  # a pause, cut short by Cancel
                    raise DownloadCancelled("Cancelled.") from error
                continue
        _check_integrity(partial, file, repo_id)
        os.replace(partial, file.blob)


def _check_integrity(path: Path, file: _RemoteFile, repo_id: str) -> None:
    """The Hub's ETag is the sha256 of an LFS file and the git blob sha1 of any other: check
    it, so a resumed download that went wrong is never converted."""
    etag, size = file.metadata.etag or "", path.stat().st_size
    if file.size and size != file.size:
        path.unlink()
        raise HubUnavailable(f"{file.filename} of {repo_id} arrived with {size:,} of "
                             f"{file.size:,} bytes; download it again.")
    if re.fullmatch(r"[0-9a-f]{64}", etag):
        digest = hashlib.sha256()
    elif re.fullmatch(r"[0-9a-f]{40}", etag):
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(f"blob {size}\0".encode())
    else:
        return  # some mirror's own ETag: nothing to check against
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    if digest.hexdigest() != etag:
        path.unlink()
        raise HubUnavailable(f"{file.filename} of {repo_id} arrived damaged (checksum "
                             "mismatch); download it again.")


def _cached_snapshot(repo_id: str, revision: str, cache: Path) -> Path | None:
    """The cached snapshot of `repo_id` when it holds everything a conversion needs."""
    from huggingface_hub import try_to_load_from_cache

    from models.checkpoint import SHARD_INDEX, WEIGHTS, shard_names

    def cached(name: str) -> Path | None:
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache, revision=revision)
        return Path(found) if isinstance(found, str) else None

    config, weights, index = cached("config.json"), cached(WEIGHTS), cached(SHARD_INDEX)
    if weights is None and index is not None:
        try:
            if all(cached(name) is not None for name in shard_names(index)):
                weights = index
        except ModelLoadError:
            weights = None  # a damaged index: not a usable snapshot
    if config is None or weights is None:
        return None
    if cached("tokenizer.json") is None and (cached("vocab.json") is None
                                             or cached("merges.txt") is None):
        return None
    return config.parent


def download(repo_id: str, progress: ProgressCallback | None = None,
             cancel: threading.Event | None = None, revision: str = "main") -> tuple[Path, str]:
    """Fetch config, weights and tokenizer of `repo_id` into the Hub cache; return the
    snapshot folder and the commit. Offline, or with the Hub out of reach, a complete cached
    snapshot is used instead; without one the error is a single line."""
    from huggingface_hub import hf_hub_download

    progress = progress or (lambda _p: None)
    _quiet_hub()
    endpoint, cache = hub_endpoint(), hub_cache_dir()
    if hub_offline():
        snapshot = _cached_snapshot(repo_id, revision, cache)
        if snapshot is None:
            raise HubUnavailable(f"Downloads are off (HF_HUB_OFFLINE is set) and {repo_id} is not "
                                 "in the Hugging Face cache; unset HF_HUB_OFFLINE or use Add "
                                 "from folder.")
        return snapshot, snapshot.name
    progress(TaskProgress("download", f"Asking {endpoint} for {repo_id}"))
    try:
        commit, files = _resolve_files(repo_id, revision, endpoint, cache)
    except HubUnreachable:
        snapshot = _cached_snapshot(repo_id, revision, cache)
        if snapshot is None:
            raise
        return snapshot, snapshot.name

    total = sum(f.size for f in files)
    finished = 0
    for file in files:
        _check_cancel(cancel, DownloadCancelled)

        def on_bytes(have: int, name: str = file.filename, base: int = finished) -> None:
            progress(TaskProgress("download", f"Downloading {name}", base + have, total))

        _hub_call(endpoint, repo_id,
                  lambda f=file, report=on_bytes: _fetch_blob(f, report, cancel, repo_id))
        finished += file.size
    progress(TaskProgress("download", "Downloaded", total, total))
    snapshot: Path | None = None
    for file in files:  # huggingface_hub files the finished blobs into its snapshot layout
        pointer = _hub_call(endpoint, repo_id, lambda f=file: hf_hub_download(
            repo_id, f.filename, revision=commit, cache_dir=cache, endpoint=endpoint,
            token=False, library_name="ghostpen"))
        snapshot = Path(pointer).parent
    assert snapshot is not None
    if revision != commit:  # remember what "main" is, for offline use (as hf_hub_download does)
        ref = snapshot.parent.parent / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return snapshot, commit


def download_and_convert(repo_id: str, precision: str | None = None,
                         progress: ProgressCallback | None = None,
                         cancel: threading.Event | None = None, *, name: str | None = None,
                         revision: str = "main", root: Path | None = None) -> InstalledModel:
    """Download a GPT-2 checkpoint from the Hub and install it converted to `precision`
    (default_precision() when None) as `name` (default "<key>-<precision>", replacing an
    older copy of the same name). Cancelling keeps the downloaded bytes for next time."""
    precision = precision or default_precision()
    root = models_dir() if root is None else Path(root)
    progress = progress or (lambda _p: None)
    snapshot, commit = download(repo_id, progress, cancel, revision)
    _check_cancel(cancel, DownloadCancelled)
    entry = catalogue_entry(repo_id)
    target = _safe_name(name or f"{entry.key if entry else repo_id.split('/')[-1]}-{precision}")
    return _convert(snapshot, root, target, precision, f"hf://{repo_id}@{commit}", progress,
                    cancel, DownloadCancelled)
