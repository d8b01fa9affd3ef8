"""The models a person has installed: list them, add one from a folder (converted or copied),
remove one, and the conversion that installs a checkpoint (app/hub_download.py brings them from
the Hugging Face Hub).

No Qt here (the Models dialog drives this from a worker thread). Every model is a folder under
`models_dir()`; the folder's name is the model's name. Work in progress (conversions, copies,
removals) happens inside hidden `.ghostpen-work-*` folders beside them and is renamed into place
only when complete, so a cancel or a crash never leaves half a model where the app looks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from app.engine.errors import GhostpenError, ModelLoadError, first_line
from app.engine.model_files import MANIFEST, read_manifest, write_manifest
from app.paths import models_dir

if TYPE_CHECKING:
    import numpy as np

    from models.checkpoint import GPT2Config

log = logging.getLogger(__name__)


class Cancelled(GhostpenError):
    """The person cancelled the job; nothing half-made was left behind."""


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
    # the manifest's "quality": the converter's quality gate (models/quality_gate.py); {} when
    # not measured
    quality: Mapping[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return not self.problem


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
# Held while a job works in its folder; the system lets go of it when the process ends, however
# it ends, so a folder whose lock is free was left by a job that will never finish.
WORK_LOCK = ".ghostpen-work.lock"
# A work folder with no lock file yet may be one another window has only just made.
LOCKLESS_WORK_GRACE_S = 600.0
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


def format_quality(model: InstalledModel) -> str:
    """How close the model comes to fp32 on the quality gate's text, for a table cell:
    "KL 6.1e-05 · top-1 98.7%", "reference" (fp32 itself), "not judged" (a model that does not
    predict English, such as random weights) or "not measured" (older or foreign models)."""
    from models.quality_gate import NOT_JUDGED

    figures = _gate_figures(model.quality)
    if model.problem:
        return "—"
    if model.precision == "fp32" and not model.foreign:
        return "reference"
    if model.quality.get("verdict") == NOT_JUDGED:
        return "not judged"
    if figures is None:
        return "not measured"
    return f"KL {figures['kl']:.1e} · top-1 {figures['top1']:.1%}"


def quality_details(model: InstalledModel) -> str:
    """One line on the gate's figures (and the precision it fell back from), for a tooltip; ""
    when there are none."""
    from models.quality_gate import NOT_JUDGED

    figures = _gate_figures(model.quality)
    if figures is None:
        line = ""
    elif model.quality.get("verdict") == NOT_JUDGED:
        line = (f"Not judged: the model does not predict English (fp32 perplexity "
                f"{figures['perplexity_fp32']:,.0f} on the built-in text).")
    else:
        line = (f"Against fp32 on the built-in text ({figures['tokens']:.0f} tokens): KL "
                f"{figures['kl']:.2g} per token, the same next word {figures['top1']:.1%} of the "
                f"time, perplexity {figures['perplexity'] / figures['perplexity_fp32'] - 1:+.2%}.")
    return " ".join(filter(None, (line, quality_notice(model))))


def _gate_figures(record: Mapping[str, Any]) -> dict[str, float] | None:
    """The numbers of a manifest's "quality" record, or None when it has none (not measured) or
    they are not numbers (a hand-edited manifest shows as not measured, not as a crash)."""
    names = ("tokens", "kl", "top1", "perplexity", "perplexity_fp32")
    figures: dict[str, float] = {}
    for name in names:
        value = record.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        figures[name] = float(value)
    return figures


def quality_notice(model: InstalledModel) -> str:
    """The one line saying that the quality gate converted a safer precision than the one asked
    for, and why; "" when it did not."""
    return str(model.quality.get("fallback", ""))


def safe_name(name: str) -> str:
    """`name` as a folder name: letters, digits and `._-` only, at most 80 of them."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:80]
    return cleaned or "model"


def check_cancel(cancel: threading.Event | None, error: type[Cancelled] = Cancelled) -> None:
    """Raise `error` once the person has pressed Cancel."""
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


def _config_params(folder: Path, graph_dir: Path) -> int:
    from app.engine.loader import read_config

    try:
        config = read_config(folder, graph_dir)
        from models.checkpoint import GPT2Config

        return GPT2Config.from_hf_json(config, folder / "config.json").n_params if config else 0
    except GhostpenError:
        return 0


def describe(folder: Path) -> InstalledModel | None:
    """What the folder holds as an InstalledModel, or None when it is no model at all."""
    from app.engine.model_files import find_onnx

    folder = Path(folder)
    size = _folder_size(folder)
    if (folder / MANIFEST).exists():
        try:
            manifest = read_manifest(folder)
        except ModelLoadError as error:
            return InstalledModel(folder.name, folder, 0, "", size, False, "", str(error))
        return InstalledModel(folder.name, folder, manifest.n_params, manifest.precision, size,
                              False, manifest.source, quality=manifest.quality)
    try:
        onnx_path = find_onnx(folder)
    except ModelLoadError:
        return None
    source = ""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        source = str(json.loads((folder / ORIGIN_FILE).read_text("utf-8")).get("source", ""))
    return InstalledModel(folder.name, folder, _config_params(folder, onnx_path.parent),
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


@contextlib.contextmanager
def _work_folder(root: Path) -> Iterator[Path]:
    """A folder in `root` (so that installing is a rename) for a job's half-made files, locked
    while the job runs and removed when it ends. Folders that killed jobs left behind (a kill
    during a conversion left up to a model's size) go first."""
    root.mkdir(parents=True, exist_ok=True)
    remove_abandoned_work(root)
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=root))
    lock = FileLock(work / WORK_LOCK)
    try:
        try:
            lock.acquire()
        except (NotImplementedError, OSError) as error:
            # A file system without locks (some network shares): the job goes on unlocked; no
            # later clean-up can tell whether such a folder is in use, so it is left there.
            log.warning("could not lock %s (%s); working without the lock", work, error)
        try:
            yield work
        finally:
            if lock.is_locked:
                lock.release()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def remove_abandoned_work(root: Path) -> list[Path]:
    """Remove the work folders in `root` whose job has ended without cleaning up (its process was
    killed, or the machine went down); a folder whose lock another process, or another job of
    this one, holds is in use and stays. Returns the folders removed."""
    removed = []
    for work in root.glob(WORK_PREFIX + "*"):
        if not work.is_dir():
            continue
        lock_file = work / WORK_LOCK
        if lock_file.exists():
            probe = FileLock(lock_file, timeout=0)
            try:
                probe.acquire()
            except (Timeout, OSError, NotImplementedError):  # in use, or not ours to judge
                continue
            probe.release()
        else:  # made before locks, or a moment ago and not locked yet
            try:
                if time.time() - work.stat().st_mtime < LOCKLESS_WORK_GRACE_S:
                    continue
            except OSError:
                continue
        shutil.rmtree(work, ignore_errors=True)
        if not work.exists():
            removed.append(work)
    return removed


def remove(name: str, root: Path | None = None) -> None:
    """Delete an installed model. It is first moved aside, so a failure leaves no half model."""
    root = models_dir() if root is None else Path(root)
    model = find_model(name, root)
    if model is None:
        raise GhostpenError(f"There is no model called {name!r} in {root}.")
    with _work_folder(root) as work:
        try:
            model.path.rename(work / model.path.name)
        except OSError as error:
            reason = first_line(error.strerror or error, 160)
            raise GhostpenError(f"Could not remove {name} ({reason}); close whatever uses its "
                                "files and try again.") from error


def _install(built: Path, root: Path, name: str) -> InstalledModel:
    """Move a finished folder into place as root/name, replacing what was there."""
    final = root / name
    if final.exists():
        with _work_folder(root) as old:
            final.rename(old / name)
            built.rename(final)
    else:
        built.rename(final)
    model = describe(final)
    if model is None:  # pragma: no cover - callers only install model folders
        raise ModelLoadError(f"{final} holds no model after installing it.")
    return model


def name_for_precision(name: str, asked: str, made: str) -> str:
    """The folder name for a model converted to `made` when `asked` was wanted: a name that ends
    in the precision asked ("gpt2-int8", the default names) takes the one made ("gpt2-fp32"),
    so that no folder says int8 while it holds fp32; any other name is the person's own."""
    suffix = f"-{asked}"
    if made == asked or not name.endswith(suffix):
        return name
    return name[: -len(suffix)] + f"-{made}"


def installed_line(model: InstalledModel) -> str:
    """What the person reads once a model is installed: its name and size, and, when the
    quality gate converted a safer precision than the one asked, the line saying so and why."""
    return " ".join(filter(None, (
        f"Installed {model.name} ({format_bytes(model.size_bytes)}).", quality_notice(model))))


def _unique_name(root: Path, wanted: str) -> str:
    name, n = wanted, 2
    while (root / name).exists():
        name, n = f"{wanted}-{n}", n + 1
    return name


def convert(src: Path, root: Path, name: str, precision: str, source: str,
            progress: ProgressCallback, cancel: threading.Event | None,
            cancelled: type[Cancelled],
            checkpoint: tuple[GPT2Config, dict[str, np.ndarray]] | None = None) -> InstalledModel:
    """Convert the checkpoint in `src` (or its weights, already read) to `precision` and install
    it as root/name, replacing an older one; its manifest records `source`. The converter's
    quality gate may make a safer precision instead (quality_notice says so). Cancel raises
    `cancelled` and leaves nothing behind."""
    from models.export import export_model

    def report(message: str) -> None:
        check_cancel(cancel, cancelled)
        # The converter writes its stages for a terminal ("measuring int8 against fp32 …"):
        # in a window they read as sentences.
        progress(TaskProgress("convert", message[:1].upper() + message[1:]))

    def on_layer(done: int, total: int) -> None:
        check_cancel(cancel, cancelled)
        progress(TaskProgress("convert", f"Converting to {precision}", done, total))

    try:
        with _work_folder(root) as work:
            progress(TaskProgress("convert", f"Converting to {precision}"))
            manifest = export_model(src, work / name, precision, check=False, progress=report,
                                    on_layer=on_layer, checkpoint=checkpoint)
            write_manifest(work / name, replace(manifest, source=source))
            check_cancel(cancel, cancelled)
            final = name_for_precision(name, precision, manifest.precision)
            if final != name:  # the gate made a safer precision: the folder says which
                final = _unique_name(root, final)
                (work / name).rename(work / final)
            return _install(work / final, root, final)
    except OSError as error:  # the disk: full, read-only, permissions
        raise GhostpenError(f"Could not write the converted model in {root} "
                            f"({first_line(error, 100)}); free some space and try again.") \
            from error


def _copy_tree(src: Path, dst: Path, files: list[Path], progress: ProgressCallback,
               cancel: threading.Event | None) -> None:
    total = sum(f.stat().st_size for f in files)
    done = 0
    for file in files:
        target = dst / file.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        with file.open("rb") as reader, target.open("wb") as writer:
            while block := reader.read(_CHUNK):
                check_cancel(cancel)
                writer.write(block)
                done += len(block)
                progress(TaskProgress("copy", f"Copying {file.name}", done, total))
    progress(TaskProgress("copy", "Copied", total, total))


def _foreign_files(src: Path) -> list[Path]:
    files: list[Path] = []
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
    from app.engine.model_files import find_onnx, has_checkpoint_weights
    from models.checkpoint import load_checkpoint

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
        manifest = read_manifest(src)  # which refuses a name leading out of src
        files = [src / n for n in (*manifest.files, MANIFEST)]
        kind = "ours"
    elif (has_checkpoint_weights(src) and (src / "config.json").exists()) or (
            _has_onnx(src) and (checkpoint := _export_checkpoint(src, progress)) is not None):
        # a checkpoint, or an export holding GPT-2's own weights (~6× faster converted)
        precision = precision or default_precision()
        target = _unique_name(root, safe_name(name or f"{src.name}-{precision}"))
        return convert(src, root, target, precision, str(src.resolve()), progress, cancel,
                       Cancelled, checkpoint)
    elif _has_onnx(src):
        find_onnx(src)
        files = _foreign_files(src)
        kind = "foreign"
    else:  # load_checkpoint words every refusal: pickle only, sharded, no weights, no config
        load_checkpoint(src)
        raise ModelLoadError(f"{src} holds neither a model nor a checkpoint.")

    target = _unique_name(root, safe_name(name or src.name))
    try:
        with _work_folder(root) as work:
            _copy_tree(src, work / target, files, progress, cancel)
            if kind == "ours":
                # every file arrived whole and sound; the stamp this leaves makes the first load
                # fast
                try:
                    read_manifest(work / target, verify_hashes=True)
                except ModelLoadError as error:  # name the person's file, not the copy's
                    raise ModelLoadError(
                        str(error).replace(str(work / target), str(src))) from error
            else:
                (work / target / ORIGIN_FILE).write_text(
                    json.dumps({"source": str(src.resolve())}), "utf-8")
            check_cancel(cancel)
            return _install(work / target, root, target)
    except OSError as error:
        raise GhostpenError(f"Could not copy {src} ({first_line(error, 160)}).") from error


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
