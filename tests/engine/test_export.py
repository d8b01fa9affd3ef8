"""The converter: every precision loads and writes, the manifest tells what was checked."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import models.export as export
from app.engine.engine import load_engine
from app.engine.sampling_params import GREEDY
from models.random import write_random_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("precision", "min_top1"), [("fp32", 1.0), ("fp16", 0.95),
                                                       ("int8", 0.85), ("int4", 0.0)])
def test_each_precision_converts_checks_and_generates(
        precision: str, min_top1: float, tiny_checkpoint: Path, tmp_path: Path) -> None:
    manifest = export.export_model(tiny_checkpoint, tmp_path / precision, precision, check=True,
                                   progress=lambda _: None)
    check = json.loads((tmp_path / precision / "manifest.json").read_text())["check"]
    assert check == manifest.check
    assert check["top1_agreement"] >= min_top1
    assert set(check) >= {"max_abs_dlogit", "top1_agreement", "relative_error"}
    if precision == "fp32":
        assert check["max_abs_dlogit"] < 1e-3
    engine = load_engine(tmp_path / precision, device="cpu")
    assert engine.info.precision == precision
    assert len(list(engine.generate("Hello there", GREEDY.replace(max_new_tokens=6)))) == 6


def test_quantised_models_are_smaller(model_cache: Callable[..., Path]) -> None:
    sizes = {p: (model_cache("tiny", p) / "model.onnx").stat().st_size
             for p in ("fp32", "int8", "int4")}
    assert sizes["int4"] < sizes["int8"] < sizes["fp32"] / 2


def test_manifest_records_every_file_with_its_sha256(tiny_model: Path) -> None:
    manifest = json.loads((tiny_model / "manifest.json").read_text())
    assert manifest["format"] == "ghostpen-model" and manifest["format_version"] == 1
    assert set(manifest["files"]) == {"model.onnx", "tokenizer.json", "config.json"}
    for name, entry in manifest["files"].items():
        data = (tiny_model / name).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_big_models_get_external_data(tiny_checkpoint: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "EXTERNAL_DATA_ABOVE", 0)  # as if it were above 2 GB
    export.export_model(tiny_checkpoint, tmp_path / "ext", "fp32", progress=lambda _: None)
    assert (tmp_path / "ext" / "model.onnx.data").stat().st_size > \
        (tmp_path / "ext" / "model.onnx").stat().st_size
    engine = load_engine(tmp_path / "ext", device="cpu")
    assert len(list(engine.generate("Hi", GREEDY.replace(max_new_tokens=3)))) == 3


def test_a_failed_conversion_leaves_no_half_folder(tmp_path: Path) -> None:
    source = tmp_path / "ck"
    write_random_checkpoint("tiny", source, seed=1)
    (source / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(export.GhostpenError):
        export.export_model(source, tmp_path / "out", progress=lambda _: None)
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_random_checkpoints_are_seeded(tmp_path: Path) -> None:
    write_random_checkpoint("tiny", tmp_path / "a", seed=3)
    write_random_checkpoint("tiny", tmp_path / "b", seed=3)
    write_random_checkpoint("tiny", tmp_path / "c", seed=4)
    read = lambda name: (tmp_path / name / "model.safetensors").read_bytes()  # noqa: E731
    assert read("a") == read("b") != read("c")


def test_export_command_line(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "models.export", str(tiny_checkpoint),
                         str(tmp_path / "m"), "--precision", "int8", "--check"],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "top-1 agreement" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "models.export", str(tmp_path / "nowhere"),
                          str(tmp_path / "n")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "not a folder" in bad.stderr
