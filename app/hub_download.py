"""Downloads from the Hugging Face Hub: what it offers (the GPT-2 family), fetching a
checkpoint into the Hub cache, and installing it converted (app/model_store.py does the rest).

No Qt here, and huggingface_hub is imported only when a download is asked for. Its cache,
HF_ENDPOINT and HF_HUB_OFFLINE are honoured. huggingface_hub 2.x no longer resumes across calls
(a failed or cancelled `hf_hub_download` deletes its partial file), so each file's bytes are
fetched here into `blobs/<etag>.incomplete` in the Hub cache with huggingface_hub's own HTTP
session, resumed with an HTTP Range request next time, checked, and filed into the cache's
snapshot layout as `hf_hub_download` files it (`snapshots/<commit>/<name>` -> `blobs/<etag>`).

What the server says is checked before it is used: the ETag and the commit become file names in
the cache, so each must be a plain name inside its folder; every file's size is checked, and its
hash where the ETag is one (the Hub's are: sha256 for LFS files, the git blob sha1 otherwise).
A file with neither a hash nor a size is refused, since nothing could tell it arrived whole.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from app.engine.errors import GhostpenError, ModelLoadError, first_line
from app.engine.model_files import hash_file, is_inside
from app.model_store import (
    Cancelled,
    InstalledModel,
    ProgressCallback,
    TaskProgress,
    check_cancel,
    convert,
    default_precision,
    safe_name,
)
from app.paths import models_dir

if TYPE_CHECKING:
    from huggingface_hub import HfFileMetadata


class DownloadCancelled(Cancelled):
    """A download was cancelled; the bytes fetched so far are kept to resume next time."""


class HubUnavailable(GhostpenError):
    """The Hub cannot give the model: offline mode, no such repository, a refusal."""


class HubUnreachable(HubUnavailable):
    """No answer from the Hub (network down, timeout, a 5xx): a cached copy may stand in."""


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


def catalogue_entry(key_or_repo: str) -> HubModel | None:
    return next((m for m in GPT2_FAMILY if key_or_repo in (m.key, m.repo_id)), None)



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
    reason = first_line(error, 100) or type(error).__name__
    return HubUnreachable(f"Could not reach the Hugging Face Hub ({endpoint}: {reason}); check "
                          "the connection or use Add from Folder.")


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
                             "from Folder.") from error
    except GatedRepoError as error:
        raise HubUnavailable(f"{repo_id} is gated on the Hub; download it in a browser and use "
                             "Add from Folder.") from error
    except RepositoryNotFoundError as error:
        raise HubUnavailable(f"{repo_id} is not on the Hugging Face Hub ({endpoint}).") from error
    except RevisionNotFoundError as error:
        raise HubUnavailable(f"{repo_id} has no such revision on the Hub.") from error
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else 0
        kind = HubUnreachable if status >= 500 or status in (408, 429) else HubUnavailable
        raise kind(f"The Hugging Face Hub answered HTTP {status or '?'} for {repo_id}; try "
                   "again later or use Add from Folder.") from error
    except FileMetadataError as error:
        raise HubUnavailable(f"{endpoint} does not answer like the Hugging Face Hub (check "
                             "HF_ENDPOINT); use Add from Folder.") from error
    except (httpx2.TransportError, ConnectionError, TimeoutError) as error:
        raise _network_error(endpoint, error) from error
    except OSError as error:  # the disk: full, read-only, permissions
        raise GhostpenError(f"Could not save {repo_id} in the Hugging Face cache "
                            f"({first_line(error, 100)}); free some space or set HF_HOME.") \
            from error


def _head(repo_id: str, filename: str, revision: str, endpoint: str) -> HfFileMetadata:
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    return get_hf_file_metadata(url, token=False, endpoint=endpoint,
                                timeout=constants.HF_HUB_ETAG_TIMEOUT,
                                library_name="ghostpen")


def _storage(cache: Path, repo_id: str) -> Path:
    """The folder of `repo_id` in the Hub cache: blobs/, snapshots/ and refs/."""
    from huggingface_hub.file_download import repo_folder_name

    return cache / repo_folder_name(repo_id=repo_id, repo_type="model")


def _resolve_files(repo_id: str, revision: str, endpoint: str,
                   storage: Path) -> tuple[str, list[_RemoteFile]]:
    """HEAD the files to fetch, pinned to one commit: config, weights and a tokenizer."""
    from huggingface_hub.errors import RemoteEntryNotFoundError

    from models.checkpoint import SHARD_INDEX, WEIGHTS, shard_names

    def head(filename: str, rev: str) -> _RemoteFile | None:
        if not is_inside(storage / "snapshots", filename):  # a shard name from the index
            raise HubUnavailable(f"{repo_id} names the file {filename!r} on the Hub, which is not "
                                 "a file name in a repository; the repository is damaged.")
        try:
            meta = _head(repo_id, filename, rev, endpoint)
        except RemoteEntryNotFoundError:
            return None
        if not meta.etag or not meta.commit_hash:
            raise HubUnavailable(f"{endpoint} gave no ETag or commit for {filename}: it does not "
                                 "answer like the Hugging Face Hub (check HF_ENDPOINT).")
        for what, name, folder in (("ETag", meta.etag, storage / "blobs"),
                                   ("commit", meta.commit_hash, storage / "snapshots")):
            if not _is_entry_of(folder, name):
                raise HubUnavailable(f"{endpoint} gave {filename} the {what} {name!r}, which is "
                                     "not a file name: it does not answer like the Hugging Face "
                                     "Hub (check HF_ENDPOINT).")
        if _etag_digest(meta.etag) is None and meta.size is None:
            raise HubUnavailable(f"{endpoint} gave {filename} neither a checksum (its ETag "
                                 f"{meta.etag!r} is none) nor a size, so its download could not "
                                 "be checked; check HF_ENDPOINT or use Add from Folder.")
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
                    if response.status_code == 416 and have:  # nothing from `have` on
                        if file.size and have < file.size:  # shorter than it announced
                            break  # the size check below refuses it
                        partial.unlink()  # the partial is stale
                        continue
                    hf_raise_for_status(response)
                    if have and response.status_code != 206:  # Range ignored: start again
                        have = 0
                    with partial.open("r+b" if have else "wb") as out:
                        out.seek(have)
                        out.truncate()
                        for chunk in response.iter_bytes(256 * 1024):
                            check_cancel(cancel, DownloadCancelled)
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


def _is_entry_of(folder: Path, name: str) -> bool:
    """Whether `name` is a plain name of one entry inside `folder`: no path at all."""
    return is_inside(folder, name) and PurePath(name).name == name


def _etag_digest(etag: str) -> Any | None:
    """The hashlib digest the Hub's ETag is a hex digest of: sha256 (an LFS file) or sha1 (a
    git blob, fed `blob <size>\\0` before the bytes); None for an ETag that is no hash."""
    if re.fullmatch(r"[0-9a-f]{64}", etag):
        return hashlib.sha256()
    if re.fullmatch(r"[0-9a-f]{40}", etag):
        return hashlib.sha1(usedforsecurity=False)
    return None


def _check_integrity(path: Path, file: _RemoteFile, repo_id: str) -> None:
    """Check the download against what the Hub announced, so that a resumed download that went
    wrong is never converted: its size always, and its hash where the ETag is one."""
    etag, size, announced = file.metadata.etag or "", path.stat().st_size, file.metadata.size
    digest = _etag_digest(etag)
    if announced is not None and size != announced:
        path.unlink()
        raise HubUnavailable(f"{file.filename} of {repo_id} arrived with {size:,} of "
                             f"{announced:,} bytes; download it again.")
    if digest is None:
        if announced is None:  # _resolve_files refuses such a file before fetching it
            path.unlink()
            raise HubUnavailable(f"{file.filename} of {repo_id} has neither a checksum nor a "
                                 "size to check; use Add from Folder.")
        return  # a mirror's own ETag: the size is what there is to check
    if len(etag) == 40:
        digest.update(f"blob {size}\0".encode())
    if hash_file(path, digest) != etag:
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
    progress = progress or (lambda _p: None)
    _quiet_hub()
    endpoint, cache = hub_endpoint(), hub_cache_dir()
    if hub_offline():
        snapshot = _cached_snapshot(repo_id, revision, cache)
        if snapshot is None:
            raise HubUnavailable(f"Downloads are off (HF_HUB_OFFLINE is set) and {repo_id} is not "
                                 "in the Hugging Face cache; unset HF_HUB_OFFLINE or use Add "
                                 "from Folder.")
        return snapshot, snapshot.name
    progress(TaskProgress("download", f"Asking {endpoint} for {repo_id}"))
    try:
        commit, files = _resolve_files(repo_id, revision, endpoint, _storage(cache, repo_id))
    except HubUnreachable:
        snapshot = _cached_snapshot(repo_id, revision, cache)
        if snapshot is None:
            raise
        return snapshot, snapshot.name

    total = sum(f.size for f in files)
    finished = 0
    for file in files:
        check_cancel(cancel, DownloadCancelled)

        def on_bytes(have: int, name: str = file.filename, base: int = finished) -> None:
            progress(TaskProgress("download", f"Downloading {name}", base + have, total))

        _hub_call(endpoint, repo_id,
                  lambda f=file, report=on_bytes: _fetch_blob(f, report, cancel, repo_id))
        finished += file.size
    progress(TaskProgress("download", "Downloaded", total, total))
    snapshot = _hub_call(endpoint, repo_id, lambda: _file_snapshot(
        _storage(cache, repo_id), files, commit, revision))
    return snapshot, commit


def _file_snapshot(storage: Path, files: list[_RemoteFile], commit: str, revision: str) -> Path:
    """Link the finished blobs into huggingface_hub's snapshot layout, snapshots/<commit>/<name>
    -> blobs/<etag> (a copy where links are not allowed), and remember which commit `revision`
    is, for offline use: what hf_hub_download does once a blob is cached. Done here because
    hf_hub_download would ask the server for each ETag again and use that answer unchecked."""
    from huggingface_hub.file_download import _create_symlink

    snapshot = storage / "snapshots" / commit
    for file in files:
        pointer = snapshot / file.filename
        if not pointer.exists():
            pointer.parent.mkdir(parents=True, exist_ok=True)
            _create_symlink(str(file.blob), str(pointer), new_blob=False)
    if revision != commit:
        ref = storage / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return snapshot


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
    check_cancel(cancel, DownloadCancelled)
    entry = catalogue_entry(repo_id)
    target = safe_name(name or f"{entry.key if entry else repo_id.split('/')[-1]}-{precision}")
    return convert(snapshot, root, target, precision, f"hf://{repo_id}@{commit}", progress,
                   cancel, DownloadCancelled)
