"""The converter: every precision loads and writes, the manifest tells what was checked."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import models.export as export
from app.engine.engine import load_engine
from app.engine.loader import load_runner
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
    sizes = {p: (model_cache("tiny", p) / "model.onnx.data").stat().st_size
             for p in ("fp32", "int8", "int4")}
    assert sizes["int4"] < sizes["int8"] < sizes["fp32"] / 2


def test_manifest_records_every_file_with_its_sha256(tiny_model: Path) -> None:
    manifest = json.loads((tiny_model / "manifest.json").read_text())
    assert manifest["format"] == "ghostpen-model" and manifest["format_version"] == 1
    assert set(manifest["files"]) == {"model.onnx", "model.onnx.data", "tokenizer.json",
                                      "config.json"}
    for name, entry in manifest["files"].items():
        data = (tiny_model / name).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_weights_live_beside_the_graph(tiny_model: Path) -> None:
    """model.onnx holds the graph, model.onnx.data the weights (mapped, not parsed, on load)."""
    assert (tiny_model / "model.onnx.data").stat().st_size > \
        10 * (tiny_model / "model.onnx").stat().st_size
    engine = load_engine(tiny_model, device="cpu")
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
    # as on the Hub's GPT-2 files: transformers before 5 (and optimum) refuse any other format
    from safetensors import safe_open

    with safe_open(str(tmp_path / "a" / "model.safetensors"), "np") as f:
        assert f.metadata() == {"format": "pt"}


def test_export_command_line(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "models.export", str(tiny_checkpoint),
                         str(tmp_path / "m"), "--precision", "int8", "--check"],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "top-1 agreement" in ok.stdout
    # the folder is made like any other: readable by whom the umask allows, not owner-only
    (tmp_path / "plain").mkdir()
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == \
        stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    bad = subprocess.run([sys.executable, "-m", "models.export", str(tmp_path / "nowhere"),
                          str(tmp_path / "n")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "not a folder" in bad.stderr


def logits_over(folder: Path, ids: list[int]) -> np.ndarray:
    runner = load_runner(folder, device="cpu")
    return runner.forward(np.array([ids]), runner.new_cache(), keep=len(ids))[0].copy()


def test_quantised_models_keep_a_quarter_size_int8_kv_cache(
        model_cache: Callable[..., Path], tiny_checkpoint: Path, tmp_path: Path) -> None:
    """int8 keys and values (per-channel scales measured at export) read a quarter of the bytes
    per token of context, and change the model's output about as much as its int8 weights do."""
    int8_kv = model_cache("tiny", "int8")
    export.export_model(tiny_checkpoint, tmp_path / "fp32kv", "int8", kv_cache="fp32",
                        progress=lambda _: None)
    caches = {name: load_runner(folder, device="cpu").new_cache()
              for name, folder in (("int8", int8_kv), ("fp32", tmp_path / "fp32kv"))}
    assert caches["int8"].dtype == np.int8 and caches["fp32"].dtype == np.float32
    assert caches["int8"].nbytes() * 4 == caches["fp32"].nbytes()
    assert json.loads((int8_kv / "manifest.json").read_text())["kv_cache"] == "int8"

    ids = [int(i) for i in np.random.default_rng(11).integers(0, 50256, 120)]
    with_int8_kv, with_fp32_kv = logits_over(int8_kv, ids), logits_over(tmp_path / "fp32kv", ids)
    reference = logits_over(model_cache("tiny", "fp32"), ids)
    kv_error = np.linalg.norm(with_int8_kv - with_fp32_kv) / np.linalg.norm(with_fp32_kv)
    weight_error = np.linalg.norm(with_fp32_kv - reference) / np.linalg.norm(reference)
    agreement = (with_int8_kv.argmax(-1) == with_fp32_kv.argmax(-1)).mean()
    assert kv_error < 1.5 * weight_error  # the same order as int8 weights: ~1% per element
    assert agreement >= 0.9


def test_an_int8_kv_cache_reused_gives_the_same_tokens_as_a_fresh_run(
        model_cache: Callable[..., Path]) -> None:
    engine = load_engine(model_cache("tiny", "int8"), device="cpu")
    params = GREEDY.replace(max_new_tokens=12)
    prompt = "The lighthouse keeper climbed the stairs"
    list(engine.generate(prompt + " every evening, and", params))  # leaves a shared prefix
    reused = [e.token_id for e in engine.generate(prompt, params)]
    assert engine.generator.reused_tokens > 0
    engine.generator.cache.reset()
    fresh = [e.token_id for e in engine.generate(prompt, params)]
    assert reused == fresh


@pytest.mark.parametrize("bits", [8, 4])
def test_quantising_in_slices_of_columns_gives_the_same_bytes(
        bits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quantizer runs on slices of N so that the window is not frozen by the embedding's
    ~170 ms (it holds the GIL); the bytes must be those of one call."""
    import models.graph as graph

    weight = np.random.default_rng(3).standard_normal((256, 1000)).astype(np.float32)
    whole = graph.quantize_blockwise(weight, bits)
    monkeypatch.setattr(graph, "QUANTIZE_COLUMNS", 77)  # 13 slices, the last one short
    sliced = graph.quantize_blockwise(weight, bits)
    assert all(np.array_equal(a, b) for a, b in zip(whole, sliced, strict=True))
    assert np.abs(whole[1]).min() > 0  # every column was quantised (its scale written)
