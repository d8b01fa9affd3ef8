"""What the benchmarks share: the seeded random models they time (made once, kept in a cache
folder, made again when the converter changes), the app set up around one model, and the
machine's description for the tables' headers (its memory speed: memory_floor.py)."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The trained stand-in GPT-2 (Hugging Face layout) beside the project, and its held-out text.
STANDIN_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "standin"
STANDIN_TEXT = "val-dev.txt"
# In a cached conversion: the fingerprint of the converter that made it (exporter_fingerprint).
EXPORTED_BY = ".exported-by"


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ghostpen")) / "bench"


# A precision named with this suffix ("int8+prompt") is that precision converted with the
# opt-in prompt graph (`python -m models.export ... --prompt-graph`).
WITH_PROMPT_GRAPH = "+prompt"


def prepare_models(cache_dir: Path, preset: str, precisions: list[str]) -> dict[str, Path]:
    """The seeded random checkpoint ("checkpoint") and its conversion to each of `precisions`
    (see WITH_PROMPT_GRAPH), made once into `cache_dir`."""
    from models.export import export_model
    from models.graph import default_kv_cache, has_prompt_graph
    from models.random import write_random_checkpoint

    for precision in precisions:
        base = precision.removesuffix(WITH_PROMPT_GRAPH)
        if base != precision and not has_prompt_graph(base, default_kv_cache(base)):
            raise ValueError(f"{precision}: only int8 has a prompt graph "
                             f"(int8{WITH_PROMPT_GRAPH})")

    checkpoint = cache_dir / f"{preset}-checkpoint"
    if not (checkpoint / "model.safetensors").exists():
        print(f"making a random {preset} checkpoint in {checkpoint}", file=sys.stderr)
        write_random_checkpoint(preset, checkpoint, seed=0)
    folders = {"checkpoint": checkpoint}
    for precision in precisions:
        base = precision.removesuffix(WITH_PROMPT_GRAPH)
        folder = cache_dir / f"{preset}-{precision.replace(WITH_PROMPT_GRAPH, '-prompt')}"
        if not made_by_this_converter(folder):  # never time a graph an older converter made
            print(f"converting to {precision}", file=sys.stderr)
            shutil.rmtree(folder, ignore_errors=True)
            export_model(checkpoint, folder, base, check=True, progress=lambda _: None,
                         prompt_graph=base != precision)
            stamp_converter(folder)
        folders[precision] = folder
    return folders


def made_by_this_converter(folder: Path) -> bool:
    """Whether `folder` holds a conversion that today's converter made (stamp_converter)."""
    stamp = folder / EXPORTED_BY
    return (folder / "manifest.json").exists() and stamp.exists() \
        and stamp.read_text() == exporter_fingerprint()


def stamp_converter(folder: Path) -> None:
    """Record in a finished conversion which converter made it."""
    (folder / EXPORTED_BY).write_text(exporter_fingerprint())


def exporter_fingerprint() -> str:
    """sha256 of the converter's source: a cached export is reused only by the code that made
    it (a change to the graph builder changes what is being timed)."""
    import models

    digest = hashlib.sha256()
    for source in sorted(Path(models.__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return (f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
            f"onnxruntime {onnxruntime.__version__}")


@contextmanager
def app_with_only(model: Path) -> Iterator[tuple[Path, Path]]:
    """The app, offscreen, with fresh settings and `model` its only model: (data, config)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    saved = {key: os.environ.get(key) for key in ("GHOSTPEN_DATA_DIR", "GHOSTPEN_CONFIG_DIR")}
    with tempfile.TemporaryDirectory() as tmp:
        data, config = Path(tmp) / "data", Path(tmp) / "config"
        (data / "models").mkdir(parents=True)
        (data / "models" / model.name).symlink_to(model.resolve())
        os.environ["GHOSTPEN_DATA_DIR"], os.environ["GHOSTPEN_CONFIG_DIR"] = str(data), str(config)
        try:
            yield data, config
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def prepare_standin(cache_dir: Path, precision: str) -> Path:
    """The stand-in converted to `precision`, made once and kept while the converter is the
    same."""
    from models.export import export_model

    folder = cache_dir / f"standin-{precision}"
    if not made_by_this_converter(folder):
        print(f"converting the stand-in to {precision}", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        export_model(STANDIN_DIR, folder, precision, progress=lambda _: None)
        stamp_converter(folder)
    return folder
