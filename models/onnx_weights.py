"""GPT-2's weights read back out of someone else's ONNX export of it.

optimum, transformers.js and torch.onnx keep the checkpoint's parameter names for the
initializers ("transformer.h.0.attn.c_attn.weight", Conv1D layout [in, out]), so such an export
is as good as a checkpoint: converted by Ghostpen it runs its suggestions 6× faster than as it
is (docs/benchmarks.md, "A foreign export"). The LM head must be the embedding (GPT-2 ties
them; optimum stores a transposed copy, models.checkpoint checks it): a different head cannot
be tied, and the export is then used as it is. Quantised exports name their weights otherwise
and are used as they are.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from app.engine.errors import ModelLoadError

# numpy has no bfloat16: BF16 is read as its raw uint16 bits, as for safetensors.
_DTYPES = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16,
           TensorProto.BFLOAT16: np.uint16}


def export_file(folder: Path) -> Path | None:
    """The ONNX file the app would run from `folder`, or None when it holds none."""
    from app.engine.loader import find_onnx

    try:
        return find_onnx(folder)
    except ModelLoadError:
        return None


def map_onnx_initializers(path: Path) -> dict[str, np.ndarray | str]:
    """Every top-level initializer of an ONNX file as an array (external data mapped, not
    read; BF16 as uint16 bits); one of another dtype by its type's name. ValueError names what
    is wrong with a damaged file."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises protobuf's DecodeError and others
        raise ValueError(f"not a readable ONNX file ({type(error).__name__})") from error
    mapped: dict[str, mmap.mmap] = {}
    tensors: dict[str, np.ndarray | str] = {}
    for init in model.graph.initializer:
        dtype = _DTYPES.get(init.data_type)
        if dtype is None:
            tensors[init.name] = TensorProto.DataType.Name(init.data_type)
            continue
        shape = tuple(int(n) for n in init.dims)
        count = int(np.prod(shape, dtype=np.int64))
        if init.data_location == TensorProto.EXTERNAL:
            tensors[init.name] = _external(path.parent, init, dtype, shape, count, mapped)
        elif init.raw_data:
            if len(init.raw_data) != count * np.dtype(dtype).itemsize:
                raise ValueError(f"damaged: {init.name}'s bytes do not fit its shape")
            tensors[init.name] = np.frombuffer(init.raw_data, dtype).reshape(shape)
        elif dtype is np.float32:
            tensors[init.name] = np.asarray(init.float_data, np.float32).reshape(shape)
        else:  # FLOAT16 / BFLOAT16 kept as their 16 bits in int32_data
            bits = np.asarray(init.int32_data, np.int32).astype(np.uint16)
            tensors[init.name] = bits.view(dtype).reshape(shape)
    return tensors


def _external(folder: Path, init: TensorProto, dtype: type, shape: tuple[int, ...], count: int,
              mapped: dict[str, mmap.mmap]) -> np.ndarray:
    info = {entry.key: entry.value for entry in init.external_data}
    location = info.get("location", "")
    if not location or Path(location).name != location:  # never outside the folder
        raise ValueError(f"{init.name}'s data is said to be in {location!r}")
    if location not in mapped:
        try:
            with open(folder / location, "rb") as file:
                mapped[location] = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as error:  # ValueError: an empty file cannot be mapped
            raise ValueError(f"{location}, which holds {init.name}, cannot be read") from error
    data = mapped[location]
    offset, nbytes = int(info.get("offset", 0)), count * np.dtype(dtype).itemsize
    if offset + nbytes > len(data):
        raise ValueError(f"truncated: {init.name}'s bytes run past the end of {location}")
    return np.frombuffer(data, dtype, count, offset).reshape(shape)
