"""The converter: every precision loads and writes, the manifest tells what was checked."""

from __future__ import annotations

import hashlib
import json
import shutil
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
from models.checkpoint import GPT2Config
from models.random import write_random_checkpoint
from tests.engine.test_checkpoint import write_checkpoint

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


def logits_over(folder: Path, ids: list[int], chunk: int = 0) -> np.ndarray:
    """Every position's logits, in one forward or, with `chunk`, in forwards of that many."""
    runner = load_runner(folder, device="cpu")
    cache, chunk = runner.new_cache(), chunk or len(ids)
    return np.concatenate([runner.forward(np.array([ids[s:s + chunk]]), cache,
                                          keep=len(ids[s:s + chunk]))[0].copy()
                           for s in range(0, len(ids), chunk)])


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
    # in chunks of 8, which read the cache of the chunks before them (a long chunk would run
    # through the int8 model's prompt graph, whose attention reads its own keys in fp32)
    with_int8_kv, with_fp32_kv = (logits_over(folder, ids, chunk=8)
                                  for folder in (int8_kv, tmp_path / "fp32kv"))
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


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by its path inside it, with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def quiet(_: str) -> None:
    pass


def test_the_checkpoint_folder_is_never_written_over(tiny_checkpoint: Path,
                                                     tmp_path: Path) -> None:
    """OUT = SRC deleted the checkpoint it was converting; OUT inside it or around it, under
    any spelling, is refused too, and the checkpoint stays as it was."""
    source = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, source)
    before = snapshot(source)
    (tmp_path / "alias").symlink_to(source)
    refusals = [(source, "is the checkpoint folder being converted"),
                (tmp_path / "alias", "is the checkpoint folder being converted"),
                (tmp_path / "ck" / ".." / "ck", "is the checkpoint folder being converted"),
                (source / "model", "is inside the checkpoint folder"),
                (tmp_path / "alias" / "model", "is inside the checkpoint folder"),
                (tmp_path, "holds the checkpoint folder")]
    for out, named in refusals:
        with pytest.raises(export.GhostpenError, match=named):
            export.export_model(source, out, progress=quiet)
    assert snapshot(source) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias", "ck"]


def test_a_folder_that_is_not_a_model_is_never_written_over(tiny_checkpoint: Path,
                                                            tmp_path: Path) -> None:
    """A writer's folder given as OUT was wiped; now only a new name, an empty folder or a
    Ghostpen model folder (with nothing else in it) is written."""
    writing = tmp_path / "writing"
    writing.mkdir()
    (writing / "novel.txt").write_text("Chapter one. The lighthouse keeper...")
    with pytest.raises(export.GhostpenError) as info:
        export.export_model(tiny_checkpoint, writing, progress=quiet)
    assert str(info.value) == f"{writing} exists and is not a Ghostpen model folder; choose " \
        "a new folder name (or an empty folder) for the model."
    with pytest.raises(export.GhostpenError, match="exists and is not a folder"):
        export.export_model(tiny_checkpoint, writing / "novel.txt", progress=quiet)
    assert snapshot(writing) == {"novel.txt": b"Chapter one. The lighthouse keeper..."}

    model = tmp_path / "model"  # a model folder someone also kept notes in
    export.export_model(tiny_checkpoint, model, progress=quiet)
    (model / "notes.md").write_text("keep")
    before = snapshot(model)
    with pytest.raises(export.GhostpenError, match=r"also holds notes\.md, which replacing"):
        export.export_model(tiny_checkpoint, model, "int8", progress=quiet)
    assert snapshot(model) == before

    (tmp_path / "empty").mkdir()
    export.export_model(tiny_checkpoint, tmp_path / "empty", progress=quiet)
    assert load_engine(tmp_path / "empty", device="cpu").info.precision == "fp32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "model", "writing"]


def test_a_model_folder_is_replaced_by_the_new_conversion(tiny_checkpoint: Path,
                                                          tmp_path: Path) -> None:
    model = tmp_path / "model"
    export.export_model(tiny_checkpoint, model, "fp32", progress=quiet)
    (model / ".DS_Store").write_bytes(b"Finder")  # a file browser's, not the writer's
    export.export_model(tiny_checkpoint, model, "int8", progress=quiet)
    assert load_engine(model, device="cpu").info.precision == "int8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing left beside it


def cancel_at(stage: str) -> Callable[[str], None]:
    def progress(line: str) -> None:
        if line.startswith(stage):
            raise KeyboardInterrupt  # as the window's Cancel, or Ctrl+C
    return progress


@pytest.mark.parametrize("stage", ["building", "checking"])
def test_a_cancelled_conversion_leaves_the_old_model_as_it_was(
        stage: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    export.export_model(tiny_checkpoint, model, "fp32", progress=quiet)
    before = snapshot(model)
    with pytest.raises(KeyboardInterrupt):
        export.export_model(tiny_checkpoint, model, "int8", check=True, progress=cancel_at(stage))
    assert snapshot(model) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert load_engine(model, device="cpu").info.precision == "fp32"


def test_the_old_model_is_put_back_when_the_new_one_cannot_take_its_place(
        tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old folder is deleted only once the new one is in place (it was deleted first)."""
    model = tmp_path / "model"
    export.export_model(tiny_checkpoint, model, "fp32", progress=quiet)
    before = snapshot(model)
    rename = Path.rename

    def failing_rename(self: Path, target: Path) -> Path:
        if Path(target) == model and ".old-" not in self.name:  # the new model, not the old
            raise OSError(28, "No space left on device")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError, match="No space left"):
        export.export_model(tiny_checkpoint, model, "int8", progress=quiet)
    assert snapshot(model) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def run_export(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "models.export", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_the_command_line_refuses_in_one_line_and_keeps_the_files(
        tiny_checkpoint: Path, tmp_path: Path) -> None:
    source = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, source)
    writing = tmp_path / "writing"
    writing.mkdir()
    (writing / "novel.txt").write_text("Chapter one.")
    bad_config = write_checkpoint(tmp_path / "bad", GPT2Config(n_positions=64, n_embd=10,
                                                               n_layer=1, n_head=4))
    before = snapshot(tmp_path)
    for args, named in [((source, source), "is the checkpoint folder being converted"),
                        ((source, writing), "is not a Ghostpen model folder; choose a new"),
                        ((bad_config, tmp_path / "m", "--precision", "int8"),
                         "n_embd 10 is not a multiple of n_head 4")]:
        result = run_export(*args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert named in result.stderr
    assert snapshot(tmp_path) == before


def test_a_tokenizer_of_another_vocabulary_is_refused(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Token ids past the model's vocabulary crashed generation; ones it has but the tokenizer
    lacks could not be shown."""
    folder = write_checkpoint(tmp_path / "ck", GPT2Config(vocab_size=50304, n_positions=64,
                                                          n_embd=16, n_layer=1, n_head=2))
    for precision in ("fp32", "int8"):
        assert export.main([str(folder), str(tmp_path / "m"), "--precision", precision]) == 2
        error = capsys.readouterr().err
        assert error == f"error: {folder / 'config.json'}: vocab_size 50304 does not match " \
            "the 50257 tokens of the tokenizer beside it; use the tokenizer files that came " \
            "with this checkpoint.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_quantised_weights_need_n_embd_in_whole_blocks(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """Three heads of 8: the attention runs them, int8's blocks of 16 do not fit (a traceback
    before); fp32 converts it."""
    folder = write_checkpoint(tmp_path / "ck", GPT2Config(n_positions=64, n_embd=24, n_layer=1,
                                                          n_head=3))
    for precision in ("int8", "int4"):
        assert export.main([str(folder), str(tmp_path / "m"), "--precision", precision]) == 2
        assert f"n_embd 24 is not a multiple of 16, which {precision} weights need" in \
            capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert export.main([str(folder), str(tmp_path / "m"), "--precision", "fp32"]) == 0
    engine = load_engine(tmp_path / "m", device="cpu")
    assert len(list(engine.generate("Hi", GREEDY.replace(max_new_tokens=3)))) == 3


def test_a_folder_that_cannot_be_written_is_one_line_too(tiny_checkpoint: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    (tmp_path / "notes.txt").write_text("a file, where OUT's parent folder would be")
    out = tmp_path / "notes.txt" / "model"
    assert export.main([str(tiny_checkpoint), str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: could not convert {tiny_checkpoint} into {out}: ")
    assert error.endswith("(--debug shows the traceback)\n") and error.count("\n") == 1
