"""Someone else's ONNX export of GPT-2 read as a checkpoint (models/onnx_weights.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.engine.errors import ModelLoadError
from models.checkpoint import load_checkpoint
from models.export import EXTERNAL_DATA, export_model
from tests.engine.foreign_export import write_foreign_export
from tests.engine.test_checkpoint import traced_peak


@pytest.mark.parametrize("external_data", [False, True], ids=["inside", "external"])
def test_an_export_under_gpt2s_names_reads_as_the_checkpoint(
        tiny_checkpoint: Path, tmp_path: Path, external_data: bool) -> None:
    export = write_foreign_export(tiny_checkpoint, tmp_path / "optimum", "optimum",
                                  weight_names=True, external_data=external_data)
    config, weights = load_checkpoint(export)
    expected_config, expected = load_checkpoint(tiny_checkpoint)
    assert config == expected_config
    assert weights.keys() == expected.keys()
    assert all(np.array_equal(weights[name], expected[name]) for name in expected)
    if external_data:  # mapped like safetensors, not read into memory
        size = (export / "onnx" / "model.onnx_data").stat().st_size
        peak = traced_peak(lambda: load_checkpoint(export))
        assert peak < size / 10, f"{peak} bytes allocated to read {size} bytes of weights"
        assert not weights["wte.weight"].flags.writeable


def test_converting_an_export_gives_what_converting_its_checkpoint_gives(
        tiny_checkpoint: Path, tmp_path: Path) -> None:
    export = write_foreign_export(tiny_checkpoint, tmp_path / "optimum", "optimum",
                                  weight_names=True)
    quiet = lambda _: None  # noqa: E731
    export_model(export, tmp_path / "from-export", "int8", progress=quiet)
    export_model(tiny_checkpoint, tmp_path / "from-checkpoint", "int8", progress=quiet)
    assert (tmp_path / "from-export" / EXTERNAL_DATA).read_bytes() == \
        (tmp_path / "from-checkpoint" / EXTERNAL_DATA).read_bytes()


def test_an_export_whose_head_is_not_its_embedding_is_refused(tiny_checkpoint: Path,
                                                               tmp_path: Path) -> None:
    _, weights = load_checkpoint(tiny_checkpoint)
    untied = np.ascontiguousarray(weights["wte.weight"].T) * np.float32(1.01)
    export = write_foreign_export(tiny_checkpoint, tmp_path / "untied", "optimum",
                                  weight_names=True, head=untied)
    with pytest.raises(ModelLoadError, match=r"LM head .* is not its embedding"):
        load_checkpoint(export)


def test_an_export_under_other_names_can_only_run_as_it_is(tiny_checkpoint: Path,
                                                            tmp_path: Path) -> None:
    export = write_foreign_export(tiny_checkpoint, tmp_path / "anonymous", "optimum")
    with pytest.raises(ModelLoadError, match="not under GPT-2's names"):
        load_checkpoint(export)


def test_an_export_with_truncated_weights_says_to_download_it_again(tiny_checkpoint: Path,
                                                                    tmp_path: Path) -> None:
    export = write_foreign_export(tiny_checkpoint, tmp_path / "optimum", "optimum",
                                  weight_names=True, external_data=True)
    data = export / "onnx" / "model.onnx_data"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(export)
    message = str(info.value)
    assert "\n" not in message
    assert "truncated" in message and "download it again" in message
