"""GPT-2's weights read back out of someone else's ONNX export of it.

optimum, transformers.js and torch.onnx keep the checkpoint's parameter names for the
initializers ("transformer.h.0.attn.c_attn.weight", Conv1D layout [in, out]), so such an export
is as good as a checkpoint: converted by Ghostpen it runs its suggestions 6× faster than as it
is (docs/benchmarks.md, "A foreign export"). The LM head must be the embedding (GPT-2 ties
them; optimum stores a transposed copy, models.checkpoint checks it): a different head cannot
be tied, and the export is then used as it is. Quantised exports name their weights otherwise
and are used as they are.

The file is mapped and its protobuf walked here rather than parsed by `onnx.load`: the parse
copies every weight into memory and then again out of the message (1.3 GB for GPT-2 124M's
653 MB export, ~3 GB for gpt2-medium's), takes 2–4 s, and holds the GIL for up to 324 ms at a
time, freezing the window. Walking it reads only the field headers (a few thousand, in Python,
which lets the window run) and returns views of the mapped bytes, as for safetensors.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from app.engine.errors import ModelLoadError
from app.engine.model_files import find_onnx

# ONNX TensorProto.DataType values it reads; numpy has no bfloat16, so BF16 is read as its raw
# uint16 bits, as for safetensors. The names of the others, for the message that refuses them.
_FLOAT, _FLOAT16, _BFLOAT16 = 1, 10, 16
_DTYPES = {_FLOAT: np.dtype("<f4"), _FLOAT16: np.dtype("<f2"), _BFLOAT16: np.dtype("<u2")}
_TYPE_NAMES = {2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
               9: "BOOL", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 17: "FLOAT8E4M3FN",
               21: "UINT4", 22: "INT4"}
# Field numbers (onnx.proto): ModelProto.graph, GraphProto.initializer, and TensorProto's.
_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_DIMS, _DATA_TYPE, _FLOAT_DATA, _NAME, _RAW_DATA, _EXTERNAL_DATA, _DATA_LOCATION = \
    1, 2, 4, 8, 9, 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


def export_file(folder: Path) -> Path | None:
    """The ONNX file the app would run from `folder`, or None when it holds none."""
    try:
        return find_onnx(folder)
    except ModelLoadError:
        return None


def map_onnx_initializers(path: Path) -> dict[str, np.ndarray | str]:
    """Every top-level initializer of an ONNX file as a read-only array over the mapped file
    (or over its external data file; BF16 as uint16 bits); one of another dtype, or stored in a
    form this does not read, as a description instead. ValueError names what is wrong with a
    damaged file."""
    data = _map(path)
    graphs = [value for number, value in _fields(data, 0, len(data))
              if number == _MODEL_GRAPH and isinstance(value, tuple)]
    if len(graphs) != 1:
        raise ValueError("not an ONNX model with one graph")
    start, end = graphs[0]
    mapped = {path.name: data}
    tensors: dict[str, np.ndarray | str] = {}
    for number, value in _fields(data, start, end):
        if number == _GRAPH_INITIALIZER:
            name, tensor = _tensor(data, value, path.parent, mapped)
            tensors[name] = tensor
    return tensors


def _map(path: Path) -> mmap.mmap:
    with open(path, "rb") as file:
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


def _varint(data: mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated: a field runs past the end of the file")


def _fields(data: mmap.mmap, pos: int, end: int) -> list[tuple[int, int | tuple[int, int]]]:
    """(field number, value) of one message's fields: an int for varints, (start, end) of the
    bytes for length-delimited ones; fixed-width fields are skipped."""
    fields: list[tuple[int, int | tuple[int, int]]] = []
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos, end)
            fields.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos, end)
            if pos + length > end:
                raise ValueError("truncated: a field runs past the end of its message")
            fields.append((number, (pos, pos + length)))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"damaged: wire type {wire} in a message")
    if pos != end:
        raise ValueError("truncated: a field runs past the end of its message")
    return fields


def _tensor(data: mmap.mmap, span: tuple[int, int], folder: Path,
            mapped: dict[str, mmap.mmap]) -> tuple[str, np.ndarray | str]:
    dims: list[int] = []
    name, data_type, location = "", 0, 0
    raw = floats = None
    external: dict[str, str] = {}
    for number, value in _fields(data, *span):
        if number == _DIMS:
            dims += [value] if isinstance(value, int) else _packed_varints(data, value)
        elif number == _DATA_TYPE and isinstance(value, int):
            data_type = value
        elif number == _NAME and isinstance(value, tuple):
            name = _text(data, value)
        elif number == _RAW_DATA and isinstance(value, tuple):
            raw = value
        elif number == _FLOAT_DATA and isinstance(value, tuple):
            floats = value
        elif number == _EXTERNAL_DATA and isinstance(value, tuple):
            entry = _strings(data, value)  # StringStringEntryProto: 1 key, 2 value
            external[entry.get(1, "")] = entry.get(2, "")
        elif number == _DATA_LOCATION and isinstance(value, int):
            location = value
    dtype = _DTYPES.get(data_type)
    if dtype is None:
        return name, _TYPE_NAMES.get(data_type, f"ONNX type {data_type}")
    shape = tuple(dims)
    count = int(np.prod(shape, dtype=np.int64))
    if location == _EXTERNAL:
        return name, _external(name, external, dtype, shape, count, folder, mapped)
    span = raw if raw is not None else floats if data_type == _FLOAT else None
    if span is None:
        return name, "stored in typed fields this reader does not take"
    if span[1] - span[0] != count * dtype.itemsize:
        raise ValueError(f"damaged: {name}'s bytes do not fit its shape")
    return name, np.frombuffer(data, dtype, count, span[0]).reshape(shape)


def _text(data: mmap.mmap, span: tuple[int, int]) -> str:
    return data[span[0] : span[1]].decode("utf-8", "replace")


def _strings(data: mmap.mmap, span: tuple[int, int]) -> dict[int, str]:
    return {number: _text(data, value) for number, value in _fields(data, *span)
            if isinstance(value, tuple)}


def _packed_varints(data: mmap.mmap, span: tuple[int, int]) -> list[int]:
    values, pos = [], span[0]
    while pos < span[1]:
        value, pos = _varint(data, pos, span[1])
        values.append(value)
    return values


def _external(name: str, info: dict[str, str], dtype: np.dtype, shape: tuple[int, ...],
              count: int, folder: Path, mapped: dict[str, mmap.mmap]) -> np.ndarray:
    location = info.get("location", "")
    if not location or Path(location).name != location:  # never outside the folder
        raise ValueError(f"{name}'s data is said to be in {location!r}")
    if location not in mapped:
        try:
            mapped[location] = _map(folder / location)
        except (OSError, ValueError) as error:  # ValueError: an empty file cannot be mapped
            raise ValueError(f"{location}, which holds {name}, cannot be read") from error
    data = mapped[location]
    offset = int(info.get("offset", "0"))
    if offset + count * dtype.itemsize > len(data):
        raise ValueError(f"truncated: {name}'s bytes run past the end of {location}")
    return np.frombuffer(data, dtype, count, offset).reshape(shape)
