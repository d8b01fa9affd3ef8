"""Reading a Hugging Face checkpoint: the weights are mapped, not copied, whatever their dtype,
and a damaged file says so in one line."""

from __future__ import annotations

import json
import re
import shutil
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.engine.errors import ModelLoadError
from app.engine.tokenizer import GPT2_TOKENIZER_DIR
from models.checkpoint import GPT2Config, load_checkpoint
from models.export import EXTERNAL_DATA, export_model, main
from models.random import random_weights

# A checkpoint small enough to write in each test: one block, 16 wide (two heads of 8).
SMALL = GPT2Config(n_positions=64, n_embd=16, n_layer=1, n_head=2)
DROP = object()  # in write_checkpoint's `changes`: leave the field out of config.json


def copy_checkpoint(checkpoint: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ck"
    shutil.copytree(checkpoint, target)
    return target


def write_checkpoint(folder: Path, config: GPT2Config,
                     changes: dict[str, object] | None = None) -> Path:
    """A seeded random checkpoint with `config`'s shapes, GPT-2's tokenizer, and a config.json
    that says `changes` on top of `config` (DROP leaves a field out)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    save_file(random_weights(config, seed=0, init_std=0.2), str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    fields = {**config.to_hf_json(), **(changes or {})}
    (folder / "config.json").write_text(
        json.dumps({name: value for name, value in fields.items() if value is not DROP}))
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(GPT2_TOKENIZER_DIR / name, folder / name)
    return folder


def traced_peak(action: Callable[[], object]) -> int:
    """Peak bytes Python and numpy allocated while `action` ran."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_a_checkpoint_copies_none_of_its_weights(tiny_checkpoint: Path) -> None:
    size = (tiny_checkpoint / "model.safetensors").stat().st_size
    peak = traced_peak(lambda: load_checkpoint(tiny_checkpoint))
    assert peak < size / 50, f"{peak} bytes allocated to read a {size}-byte checkpoint"
    _, weights = load_checkpoint(tiny_checkpoint)
    assert all(w.dtype == np.float32 for w in weights.values())
    assert not weights["wte.weight"].flags.writeable  # the file itself, mapped


@pytest.mark.slow
def test_converting_holds_a_fraction_of_the_weights_at_once(
        model_cache: Callable[..., Path], tmp_path: Path) -> None:
    """gpt2-xl must convert on a laptop: before, the converter held the checkpoint twice over
    (12.2 GB for xl's 6.2 GB); now each weight goes to the model's data file as it is made."""
    checkpoint = model_cache("gpt2")
    size = (checkpoint / "model.safetensors").stat().st_size
    out = tmp_path / "fp32"
    peak = traced_peak(lambda: export_model(checkpoint, out, "fp32", progress=lambda _: None))
    assert (out / EXTERNAL_DATA).stat().st_size > 0.9 * size  # all of it was written
    assert peak < size / 4, f"{peak / 1e6:.0f} MB held to convert {size / 1e6:.0f} MB"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_checkpoints_read_as_their_float32_values(
        dtype: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    folder = copy_checkpoint(tiny_checkpoint, tmp_path)
    _, weights = load_checkpoint(tiny_checkpoint)
    half = {name: torch.from_numpy(np.array(w)).to(getattr(torch, dtype))
            for name, w in weights.items()}
    save_file(half, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _, read = load_checkpoint(folder)
    for name, tensor in half.items():
        assert read[name].dtype == np.float32
        np.testing.assert_array_equal(read[name], tensor.float().numpy(), err_msg=name)


def damage_truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4096])


def damage_header_length(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:8] = (2**40).to_bytes(8, "little")
    path.write_bytes(bytes(data))


def damage_header_json(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8:12] = b"\xff\xfe{["
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [damage_truncated, damage_header_length, damage_header_json])
def test_a_damaged_safetensors_file_says_to_download_it_again(
        damage: Callable[[Path], None], tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = copy_checkpoint(tiny_checkpoint, tmp_path)
    damage(folder / "model.safetensors")
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(folder)
    message = str(info.value)
    assert "\n" not in message
    assert "model.safetensors cannot be read" in message and "download it again" in message


def test_weights_of_a_dtype_it_cannot_read_are_named(tiny_checkpoint: Path,
                                                     tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    folder = copy_checkpoint(tiny_checkpoint, tmp_path)
    _, weights = load_checkpoint(tiny_checkpoint)
    tensors = {name: np.array(w) for name, w in weights.items()}
    tensors["wpe.weight"] = tensors["wpe.weight"].astype(np.complex64)  # no GPT-2 has these
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(folder)
    assert "wpe.weight is C64" in str(info.value) and "float32" in str(info.value)


def test_a_checkpoint_with_its_own_lm_head_is_refused_and_a_tied_copy_is_not(
        tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The converter ties the head to wte, as GPT-2 does: a fine-tune that untied them would
    otherwise lose its head without a word."""
    from safetensors.numpy import save_file

    folder = copy_checkpoint(tiny_checkpoint, tmp_path)
    _, weights = load_checkpoint(tiny_checkpoint)
    tensors = {name: np.array(w) for name, w in weights.items()}
    save_file({**tensors, "lm_head.weight": tensors["wte.weight"]},
              str(folder / "model.safetensors"))
    load_checkpoint(folder)  # stored tied: the same values
    save_file({**tensors, "lm_head.weight": tensors["wte.weight"] * np.float32(1.01)},
              str(folder / "model.safetensors"))
    with pytest.raises(ModelLoadError, match=r"LM head \(lm_head.weight\) is not its embedding"):
        load_checkpoint(folder)


@pytest.mark.parametrize(("change", "named"), [
    ({"model_type": "llama"}, "'llama' model, not GPT-2"),
    ({"activation_function": "gelu"}, "activation 'gelu' is not GPT-2's gelu_new"),
    ({"n_inner": 100}, "n_inner other than 4 × n_embd"),
])
def test_a_config_that_is_not_gpt2_is_refused_by_what_differs(
        change: dict[str, object], named: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Converted as GPT-2, these would run and write quietly wrong text."""
    folder = copy_checkpoint(tiny_checkpoint, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(folder)
    assert named in str(info.value) and "\n" not in str(info.value)


def test_a_sharded_checkpoint_reads_as_the_same_weights(tiny_checkpoint: Path,
                                                       tiny_sharded_checkpoint: Path,
                                                       tmp_path: Path) -> None:
    assert len(list(tiny_sharded_checkpoint.glob("model-*.safetensors"))) >= 2
    _, single = load_checkpoint(tiny_checkpoint)
    _, sharded = load_checkpoint(tiny_sharded_checkpoint)
    assert sharded.keys() == single.keys()
    for name, tensor in single.items():
        np.testing.assert_array_equal(sharded[name], tensor, err_msg=name)
    manifest = export_model(tiny_sharded_checkpoint, tmp_path / "m", "fp32", check=True,
                            progress=lambda _: None)
    assert manifest.check is not None and manifest.check["top1_agreement"] == 1.0


def test_a_sharded_checkpoint_missing_a_piece_says_which(tiny_sharded_checkpoint: Path,
                                                         tmp_path: Path) -> None:
    folder = copy_checkpoint(tiny_sharded_checkpoint, tmp_path)
    last = sorted(folder.glob("model-*.safetensors"))[-1]
    last.unlink()
    with pytest.raises(ModelLoadError, match=re.escape(f"lacks {last.name}, a shard")):
        load_checkpoint(folder)
    index = folder / "model.safetensors.index.json"
    index.write_text('{"weight_map": {"wte.weight": "../outside.safetensors"}}')
    with pytest.raises(ModelLoadError,
                       match=re.escape("names '../outside.safetensors' as a shard")):
        load_checkpoint(folder)
    index.unlink()
    with pytest.raises(ModelLoadError, match=re.escape(
            "holds shards of a checkpoint but not their model.safetensors.index.json")):
        load_checkpoint(folder)


# Each: the checkpoint's shapes (its weights match them), what its config.json says on top,
# and what the refusal names.
BAD_CONFIGS = [
    # sizes the weights agree with, that no attention can split: fp32 wrote a model that could
    # not be read, int8 died in a traceback
    (GPT2Config(n_positions=64, n_embd=10, n_layer=1, n_head=4), {},
     "n_embd 10 is not a multiple of n_head 4; use the checkpoint's original config.json"),
    (GPT2Config(n_positions=64, n_embd=48, n_layer=1, n_head=4), {},
     "heads of 12 (n_embd 48 / n_head 4) are not a multiple of 8"),
    (SMALL, {"n_embd": DROP}, "lacks n_embd; use the checkpoint's original config.json"),
    (SMALL, {"n_head": 0}, "n_head 0 is not a positive whole number"),
    (SMALL, {"n_layer": -1}, "n_layer -1 is not a positive whole number"),
    (SMALL, {"n_layer": "1"}, 'n_layer "1" is not a positive whole number'),
    (SMALL, {"vocab_size": 50257.5}, "vocab_size 50257.5 is not a positive whole number"),
    (SMALL, {"n_positions": 0}, "n_positions 0 is not a positive whole number"),
    (SMALL, {"n_embd": "sixteen"}, 'n_embd "sixteen" is not a positive whole number'),
    (SMALL, {"n_inner": "64"}, 'n_inner "64" is not a positive whole number'),
    (SMALL, {"layer_norm_epsilon": 0}, "layer_norm_epsilon 0 is not a number above 0"),
    (SMALL, {"layer_norm_epsilon": -1e-5}, "layer_norm_epsilon -1e-05 is not a number above 0"),
    (SMALL, {"scale_attn_weights": "false"}, 'scale_attn_weights "false" is neither true nor'),
]


@pytest.mark.parametrize("case", range(len(BAD_CONFIGS)))
def test_a_config_gpt2_cannot_run_is_refused_by_its_field(case: int, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    """Checked before any weight is read: one line naming config.json, the field and the fix,
    from load_checkpoint and from the command line, whatever the precision."""
    config, changes, named = BAD_CONFIGS[case]
    folder = write_checkpoint(tmp_path / "ck", config, changes)
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(folder)
    message = str(info.value)
    assert message.startswith(str(folder / "config.json")) and named in message
    assert "\n" not in message
    for precision in ("int8", "fp32"):
        out = tmp_path / f"out-{precision}"
        assert main([str(folder), str(out), "--precision", precision]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"error: {folder / 'config.json'}")
        assert named in error and error.count("\n") == 1
        assert not out.exists()


def test_a_config_json_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    folder = write_checkpoint(tmp_path / "ck", SMALL)
    (folder / "config.json").write_text("[]")
    with pytest.raises(ModelLoadError, match=r"config.json is not a JSON object; use the "):
        load_checkpoint(folder)


def test_an_old_config_json_with_n_ctx_and_whole_floats_still_reads(tmp_path: Path) -> None:
    folder = write_checkpoint(tmp_path / "ck", SMALL, {"n_positions": DROP, "n_ctx": 64,
                                                       "n_embd": 16.0, "n_inner": 64})
    config, _ = load_checkpoint(folder)
    assert config == SMALL
