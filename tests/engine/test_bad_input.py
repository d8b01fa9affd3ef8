"""Every bad input gives one clear line that names the problem and the fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from app.engine import model_files
from app.engine.engine import load_engine
from app.engine.errors import GhostpenError, ModelLoadError
from app.engine.sampling_params import GREEDY, SamplingParams
from models.export import export_model
from tests.engine.foreign_export import write_foreign_export

ROOT = Path(__file__).resolve().parents[2]


def copy_model(model: Path, tmp_path: Path) -> Path:
    """A copy as the converter left it: without the verification stamp an earlier load of the
    shared model may have written, so each test starts from the same state in any order."""
    target = tmp_path / "model"
    shutil.copytree(model, target, ignore=shutil.ignore_patterns(".verified.json"))
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


def test_random_bytes_for_an_onnx_graph(tmp_path: Path) -> None:
    """A graph without a manifest to check it against (a foreign export) that onnxruntime
    cannot parse."""
    tmp_path.joinpath("export").mkdir()
    (tmp_path / "export" / "model.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError) as info:
        load_engine(tmp_path / "export", device="cpu")
    assert "not a readable ONNX file (truncated or corrupt)" in one_line(info.value)


def flip_bytes(file: Path, count: int = 64) -> None:
    """Invert `count` bytes in the middle of `file`: its size stays, its content is damaged."""
    data = bytearray(file.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + count):
        data[i] ^= 0xFF
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model.onnx", "model.onnx.data", "tokenizer.json"])
def test_a_damaged_file_of_the_right_size_is_refused_by_name(name: str, tiny_model: Path,
                                                             tmp_path: Path) -> None:
    """Flipped bytes in the weights loaded, and every generation then failed with 'logit bias
    and banned strings rule out every token' (their NaNs)."""
    folder = copy_model(tiny_model, tmp_path)
    flip_bytes(folder / name)
    with pytest.raises(ModelLoadError) as info:
        load_engine(folder, device="cpu")
    assert one_line(info.value) == (
        f"{folder / name} does not match its sha256 in manifest.json: it is damaged; "
        "download or convert the model again.")


def count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files model_files hashes from now on (the real hash still runs)."""
    hashed: list[Path] = []
    real = model_files.sha256_of

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(model_files, "sha256_of", counting)
    return hashed


def test_files_are_hashed_on_the_first_load_and_not_again_until_they_change(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_model(tiny_model, tmp_path)
    hashed = count_hashing(monkeypatch)
    listed = set(json.loads((folder / "manifest.json").read_text())["files"])
    load_engine(folder, device="cpu")
    assert {path.name for path in hashed} == listed
    assert (folder / ".verified.json").is_file()

    hashed.clear()
    load_engine(folder, device="cpu")
    assert hashed == []  # stamped: a 1.6 GB model opens without reading its weights through

    data = folder / "model.onnx.data"
    data.touch()  # a new mtime: verified again, and found sound
    load_engine(folder, device="cpu")
    assert hashed == [data]

    hashed.clear()
    flip_bytes(data)  # a write: a new mtime, so hashed, and refused
    with pytest.raises(ModelLoadError, match=r"model\.onnx\.data does not match its sha256"):
        load_engine(folder, device="cpu")
    assert hashed == [data]


def test_a_stamp_that_cannot_be_trusted_means_hashing_again(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_model(tiny_model, tmp_path)
    load_engine(folder, device="cpu")
    hashed = count_hashing(monkeypatch)
    stamp = folder / ".verified.json"
    for damage in (b"{not json", b'{"format": "ghostpen-verified", "files": []}', b""):
        stamp.write_bytes(damage)
        load_engine(folder, device="cpu")
        assert len(hashed) == 4, damage
        hashed.clear()
    stamp.unlink()
    stamp.symlink_to(tmp_path)  # not a file: ignored, and replaced by one
    load_engine(folder, device="cpu")
    assert len(hashed) == 4 and stamp.is_file() and not stamp.is_symlink()


def test_a_file_changed_with_its_size_and_mtime_restored_keeps_its_stamp(
        tiny_model: Path, tmp_path: Path) -> None:
    """The known trade-off, as in make and rsync: a file is hashed again when its size, mtime
    or inode changed, not when someone rewrites it in place and sets its mtime back."""
    folder = copy_model(tiny_model, tmp_path)
    load_engine(folder, device="cpu")
    data = folder / "model.onnx.data"
    before = data.stat()
    with data.open("r+b") as writer:  # in place: the same inode
        writer.seek(before.st_size // 2)
        writer.write(b"\0" * 16)
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    load_engine(folder, device="cpu")  # trusted: not hashed
    (folder / ".verified.json").unlink()
    with pytest.raises(ModelLoadError, match=r"model\.onnx\.data does not match its sha256"):
        load_engine(folder, device="cpu")


def test_a_stamp_that_cannot_be_written_leaves_the_load_working(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As on read-only media: every load hashes again, and no temporary file stays behind."""
    folder = copy_model(tiny_model, tmp_path)
    (folder / ".verified.json").mkdir()  # os.replace cannot put a file there
    hashed = count_hashing(monkeypatch)
    for _ in range(2):
        load_engine(folder, device="cpu")
    assert len(hashed) == 8
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == \
        [".verified.json"]


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


@pytest.mark.parametrize(("path", "value", "named"), [
    (["files", "model.onnx"], 123, "gives no valid size and sha256 for 'model.onnx'"),
    (["files", "config.json", "size"], "many", "gives no valid size and sha256 for 'config.json'"),
    (["files", "config.json", "sha256"], None, "gives no valid size and sha256 for 'config.json'"),
    (["files"], ["model.onnx"], "is damaged ('files', 'check' and 'quality' must be objects)"),
    (["n_params"], "many", "is damaged ('n_params' must be a whole number)"),
    (["files", "model.onnx.data"], "DELETE", "does not list model.onnx.data"),
    (["format_version"], True, "is in model format version True"),
])
def test_a_manifest_with_a_wrong_field_is_refused_by_name(
        path: list[str], value: object, named: str, tiny_model: Path, tmp_path: Path) -> None:
    """A file's entry that is no object raised AttributeError, a size that is no number a
    ValueError from the message's own formatting; the weights left out of the list were loaded
    unchecked."""
    folder = copy_model(tiny_model, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    holder = manifest
    for key in path[:-1]:
        holder = holder[key]
    if value == "DELETE":
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError) as info:
        load_engine(folder, device="cpu")
    message = one_line(info.value)
    assert message.startswith(str(folder)) and named in message


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



def edit_config(folder: Path, **fields: object) -> None:
    """Change config.json and give manifest.json its new size and sha256, as a hand edit that
    knew how would: the files then pass every check of the manifest."""
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["config.json"] = {"size": (folder / "config.json").stat().st_size,
                                        "sha256": model_files.sha256_of(folder / "config.json")}
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(("fields", "named"), [
    ({"n_layer": 9}, "n_layer 9, the graph beside it has 2"),
    ({"n_head": 8}, "n_head 8, the graph beside it has 4"),
    ({"vocab_size": 10}, "vocab_size 10, the graph beside it has 50257"),
    ({"n_positions": 0}, "n_positions as 0, not a whole number from 1 to 65,536"),
    ({"n_positions": 10**12}, "n_positions as 1000000000000"),
    ({"n_head": 0}, "n_head as 0"),
    ({"n_embd": 30}, "n_embd 30, which n_head 4 does not divide"),
])
def test_a_config_that_disagrees_with_the_graph_is_refused_at_load(
        fields: dict[str, object], named: str, tiny_model: Path, tmp_path: Path) -> None:
    """Each loaded and then failed at the first token with onnxruntime's binding error, an
    AssertionError, a negative or impossible KV cache, or a ZeroDivisionError."""
    folder = copy_model(tiny_model, tmp_path)
    edit_config(folder, **fields)
    with pytest.raises(ModelLoadError) as info:
        load_engine(folder, device="cpu")
    message = one_line(info.value)
    assert message.startswith(f"{folder / 'config.json'} gives ") and named in message
    assert "restore the model's config.json" in message


def test_a_foreign_export_with_an_impossible_context_is_refused(tiny_checkpoint: Path,
                                                                tmp_path: Path) -> None:
    folder = write_foreign_export(tiny_checkpoint, tmp_path / "export", "optimum")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_positions": -5}))
    with pytest.raises(ModelLoadError) as info:  # was an AssertionError at the first token
        load_engine(folder, device="cpu")
    assert "gives n_positions as -5" in one_line(info.value)


def test_a_config_above_the_model_folder_is_never_read(tiny_checkpoint: Path,
                                                       tmp_path: Path) -> None:
    """An export with model.onnx at its top and no config.json: the loader and the models list
    looked for config.json in the folder above, the person's Downloads say, and read another
    model's (or refused the export for that file's faults)."""
    from app import model_store

    downloads = tmp_path / "downloads"
    folder = write_foreign_export(tiny_checkpoint, downloads / "export", "ort")
    (folder / "onnx" / "model.onnx").rename(folder / "model.onnx")
    (folder / "config.json").unlink()
    (downloads / "config.json").write_text('{"n_positions": 2, "n_layer": 1, "n_embd": 8, '
                                           '"n_head": 1, "vocab_size": 5}')
    engine = load_engine(folder, device="cpu")
    assert engine.info.n_ctx == 1024  # GPT-2's, not the 2 of the file above
    assert model_store.describe(folder).n_params == 0  # unknown, not the other model's
    (downloads / "config.json").write_text("{not json")
    load_engine(folder, device="cpu")


def test_add_from_folder_refuses_a_damaged_model_naming_its_file(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Add copied a model whose weights were damaged (their size intact) and listed it as
    usable; it failed only when chosen. Now the copy is hashed: refused, nothing installed,
    and a sound model's copy keeps a stamp that spares its first load the hashing."""
    from app import model_store

    folder = copy_model(tiny_model, tmp_path)
    flip_bytes(folder / "model.onnx.data")
    models = tmp_path / "models"
    with pytest.raises(ModelLoadError) as info:
        model_store.add_from_folder(folder, root=models)
    assert one_line(info.value) == (
        f"{folder / 'model.onnx.data'} does not match its sha256 in manifest.json: it is "
        "damaged; download or convert the model again.")
    assert list(models.iterdir()) == []

    installed = model_store.add_from_folder(tiny_model, root=models)
    hashed = count_hashing(monkeypatch)
    load_engine(installed.path, device="cpu")
    assert hashed == []


def test_add_from_folder_with_a_config_that_is_not_utf8(tiny_checkpoint: Path,
                                                        tmp_path: Path) -> None:
    """An export with its tokenizer and GPT-2's weight names is read as a checkpoint first; a
    config.json of binary bytes raised UnicodeDecodeError out of Add from folder."""
    from app import model_store
    from models.checkpoint import load_checkpoint

    folder = write_foreign_export(tiny_checkpoint, tmp_path / "export", "optimum",
                                  weight_names=True)
    (folder / "config.json").write_bytes(b"\x84\xff" + (folder / "config.json").read_bytes())
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(folder)
    assert "config.json is not UTF-8 text (byte 0 cannot be decoded)" in one_line(info.value)
    installed = model_store.add_from_folder(folder, root=tmp_path / "models")  # as it is
    with pytest.raises(ModelLoadError, match=r"config\.json is not valid JSON"):
        load_engine(installed.path, device="cpu")


def test_nan_weights_in_an_export_are_named_as_damage_not_as_the_logit_bias(
        tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A foreign export has no sha256 to check: its damaged weights load. Their NaN scores
    ruled out every token, reported as 'logit bias and banned strings rule out every token'."""
    from onnx import numpy_helper

    folder = write_foreign_export(tiny_checkpoint, tmp_path / "export", "optimum")
    graph = onnx.load(str(folder / "onnx" / "model.onnx"))
    weight = max(graph.graph.initializer, key=lambda t: len(t.raw_data))
    nan = np.full(tuple(weight.dims), np.nan, np.float32)
    weight.CopyFrom(numpy_helper.from_array(nan, weight.name))
    onnx.save_model(graph, str(folder / "onnx" / "model.onnx"))
    engine = load_engine(folder, device="cpu")
    for params in (GREEDY.replace(max_new_tokens=3), SamplingParams(seed=1, max_new_tokens=3)):
        with pytest.raises(ModelLoadError) as info:
            list(engine.generate("The lighthouse", params))
        assert one_line(info.value) == ("the model computed NaN scores for the next token: its "
                                        "weights are damaged; convert or download the model "
                                        "again.")
