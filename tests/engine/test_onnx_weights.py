"""Someone else's ONNX export of GPT-2 read as a checkpoint (models/onnx_weights.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.engine.errors import ModelLoadError
from models.checkpoint import load_checkpoint
from models.export import EXTERNAL_DATA, export_model
from models.onnx_weights import map_onnx_initializers
from tests.engine.foreign_export import write_foreign_export
from tests.engine.test_checkpoint import traced_peak


def test_the_file_is_read_as_onnx_itself_reads_it(tmp_path: Path) -> None:
    """The protobuf is walked by hand (onnx.load copies every weight twice): every form a weight
    can take must come out as onnx's own parse gives it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    arrays = {
        "raw.fp32": rng.standard_normal((3, 5, 7)).astype(np.float32),
        "raw.fp16": rng.standard_normal((4, 300)).astype(np.float16),  # 300: 2-byte varints
        "scalar": np.array(2.5, np.float32),
        "outside": rng.standard_normal((64, 33)).astype(np.float32),
    }
    inits = [numpy_helper.from_array(a, n) for n, a in arrays.items()]
    typed = rng.standard_normal((2, 9)).astype(np.float32)
    inits.append(helper.make_tensor("typed.fp32", TensorProto.FLOAT, typed.shape,
                                    typed.ravel().tolist()))  # float_data, not raw_data
    inits.append(numpy_helper.from_array(np.arange(6, dtype=np.int64), "ids"))
    graph = helper.make_graph([helper.make_node("Identity", ["scalar"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
                              inits)
    model = helper.make_model(graph)
    onnx.external_data_helper.convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=8000)
    onnx.save_model(model, str(tmp_path / "m.onnx"))
    ours = map_onnx_initializers(tmp_path / "m.onnx")
    theirs = {i.name: numpy_helper.to_array(i, str(tmp_path))
              for i in onnx.load(str(tmp_path / "m.onnx")).graph.initializer}
    assert ours.keys() == theirs.keys()
    assert ours["ids"] == "INT64"
    for name in ("raw.fp32", "raw.fp16", "scalar", "outside", "typed.fp32"):
        mine = ours[name]
        assert isinstance(mine, np.ndarray) and mine.dtype == theirs[name].dtype, name
        assert mine.shape == theirs[name].shape and np.array_equal(mine, theirs[name]), name
    assert (tmp_path / "weights.bin").stat().st_size >= arrays["outside"].nbytes  # was external
    damaged = (tmp_path / "m.onnx").read_bytes()
    (tmp_path / "m.onnx").write_bytes(damaged[: len(damaged) // 2])
    with pytest.raises(ValueError, match=r"truncated|not an ONNX model"):
        map_onnx_initializers(tmp_path / "m.onnx")


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
    # mapped like safetensors, not read into memory: inside the .onnx or beside it
    data = export / "onnx" / ("model.onnx_data" if external_data else "model.onnx")
    size = data.stat().st_size
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
