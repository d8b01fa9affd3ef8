"""Every bad input gives one clear line that names the problem and the fix."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from app.engine.engine import load_engine
from app.engine.errors import GhostpenError, ModelLoadError
from app.engine.sampling_params import GREEDY
from models.export import export_model

ROOT = Path(__file__).resolve().parents[2]


def copy_model(model: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model, target)
    return target


def one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message and message
    return message


def test_missing_model_onnx(tiny_model: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model, tmp_path)
    (folder / "model.onnx").unlink()
    with pytest.raises(ModelLoadError) as info:
        load_engine(folder, device="cpu")
    assert "model.onnx is missing" in one_line(info.value)
    assert "again" in str(info.value)


@pytest.mark.parametrize("name", ["model.onnx", "model.onnx.data"])
def test_truncated_graph_or_weights(name: str, tiny_model: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model, tmp_path)
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as info:
        load_engine(folder, device="cpu")
    message = one_line(info.value)
    assert name in message and "truncated" in message and "again" in message


def test_corrupt_model_onnx_of_the_right_size(tiny_model: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model, tmp_path)
    size = (folder / "model.onnx").stat().st_size
    (folder / "model.onnx").write_bytes(np.random.default_rng(0).bytes(size))
    with pytest.raises(ModelLoadError) as info:
        load_engine(folder, device="cpu")
    assert "not a readable ONNX file (truncated or corrupt)" in one_line(info.value)


def test_a_graph_that_is_not_gpt2(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "not_gpt2",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    tmp_path.joinpath("relu").mkdir()
    onnx.save_model(model, str(tmp_path / "relu" / "model.onnx"))
    with pytest.raises(ModelLoadError) as info:
        load_engine(tmp_path / "relu", device="cpu")
    assert "not a GPT-2" in one_line(info.value)


def test_manifest_version_mismatch_says_what_to_run(tiny_model: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError) as info:
        load_engine(folder, device="cpu")
    message = one_line(info.value)
    assert "version 99" in message and "python -m models.export" in message


def test_pickle_checkpoint_is_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x02not really a pickle")
    with pytest.raises(ModelLoadError) as info:
        export_model(tmp_path, tmp_path / "out", progress=lambda _: None)
    message = one_line(info.value)
    assert "can run arbitrary code" in message and "safetensors" in message
    assert not (tmp_path / "out").exists()


def test_checkpoint_given_where_a_model_is_expected(tiny_checkpoint: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        load_engine(tiny_checkpoint, device="cpu")
    assert "convert it" in one_line(info.value)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", "generate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_empty_prompt(tiny_model: Path) -> None:
    result = run_cli("--model", str(tiny_model), "--prompt", "")
    assert result.returncode == 2
    assert result.stderr.strip() == \
        "error: the prompt is empty; give the text to continue with --prompt."


@pytest.mark.parametrize(("flag", "value", "named"), [
    ("--top-p", "1.5", "top_p"), ("--temperature", "-1", "temperature"),
    ("--top-k", "many", "--top-k"), ("--sampler-order", "top_k,warp", "sampler_order"),
])
def test_cli_invalid_sampling_values(tiny_model: Path, flag: str, value: str,
                                     named: str) -> None:
    result = run_cli("--model", str(tiny_model), "--prompt", "Hi", flag, value)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in result.stderr


def test_cli_model_errors_are_one_line_without_traceback(tiny_model: Path,
                                                         tmp_path: Path) -> None:
    folder = copy_model(tiny_model, tmp_path)
    (folder / "model.onnx").unlink()
    result = run_cli("--model", str(folder), "--prompt", "Hi")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    debug = run_cli("--model", str(folder), "--prompt", "Hi", "--debug")
    assert "Traceback" in debug.stderr


def test_a_5000_token_prompt_keeps_its_end_and_generates(tiny_model: Path) -> None:
    engine = load_engine(tiny_model, device="cpu")
    prompt = " ".join(f"word{i}" for i in range(2500))
    ids = engine.tokenizer.encode(prompt)
    assert len(ids) >= 5000
    events = list(engine.generate(prompt, GREEDY.replace(max_new_tokens=8)))
    assert len(events) == 8
    kept = engine.last_stats.prompt_tokens
    assert 0 < kept <= engine.info.n_ctx - 8
    assert engine.generator.cache.tokens[:kept] == ids[-kept:]  # the end, not the start


def test_errors_are_ghostpen_errors_so_the_ui_can_show_them() -> None:
    assert issubclass(ModelLoadError, GhostpenError)


def test_a_gpu_provider_that_does_not_start_falls_back_to_cpu_and_says_why(
        tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime only warns when a requested provider cannot start; the reason must still
    reach the person (the status bar shows EngineInfo.fallback_reason)."""
    import app.engine.providers as providers

    monkeypatch.setattr(providers, "available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    engine = load_engine(tiny_model, device="cuda")
    assert engine.info.provider == "CPUExecutionProvider"
    reason = engine.info.fallback_reason
    assert reason.startswith("CUDAExecutionProvider failed to start (")
    assert reason.endswith("; running on CPU.") and "\n" not in reason
    assert len(list(engine.generate("Hi", GREEDY.replace(max_new_tokens=3)))) == 3

