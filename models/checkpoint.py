"""A Hugging Face GPT-2 checkpoint folder: config.json + model.safetensors, checked at load.

Dimension glossary: V vocab, P n_positions, C n_embd, L n_layer.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from app.engine.errors import ModelLoadError
from app.engine.model_files import CHECKPOINT_WEIGHTS as WEIGHTS
from app.engine.model_files import SHARD_INDEX, has_checkpoint_weights

PICKLE_NAMES = ("pytorch_model.bin", "model.bin", "pytorch_model.pt", "model.pt", "model.ckpt")


@dataclass(frozen=True)
class GPT2Config:
    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    layer_norm_epsilon: float = 1e-5
    # transformers' GPT2Config switches for attention scaling (GPT-2 itself: True, False); some
    # fine-tunes (Stanford CRFM's Mistral GPT-2s) scale by the layer too.
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def attention_scale(self, layer: int) -> float:
        """What block `layer` multiplies query·key by, as transformers' GPT2Attention does."""
        scale = 1 / math.sqrt(self.head_dim) if self.scale_attn_weights else 1.0
        return scale / (layer + 1) if self.scale_attn_by_inverse_layer_idx else scale

    @property
    def n_params(self) -> int:
        """Parameters with the LM head tied to wte (as GPT-2 is)."""
        c, layer = self.n_embd, 12 * self.n_embd**2 + 13 * self.n_embd
        return self.vocab_size * c + self.n_positions * c + self.n_layer * layer + 2 * c

    def to_hf_json(self) -> dict[str, object]:
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            **asdict(self),
            "n_inner": None,
            "activation_function": "gelu_new",
            "bos_token_id": 50256,
            "eos_token_id": 50256,
            "tie_word_embeddings": True,
        }

    @classmethod
    def from_hf_json(cls, data: object, source: Path) -> GPT2Config:
        """The GPT-2 a Hugging Face config.json (`source`) describes, every field checked
        before anything is built from it (sizes that do not fit together would convert into a
        model that cannot be read): a one-line ModelLoadError names the first field that is
        missing, not GPT-2's, or not one the graph can run, and the fix."""
        if not isinstance(data, dict):
            raise ModelLoadError(f"{source} is not a JSON object; {USE_ORIGINAL_CONFIG}.")
        if data.get("model_type") not in (None, "gpt2"):
            raise ModelLoadError(
                f"{source} is a {data.get('model_type')!r} model, not GPT-2: "
                "Ghostpen runs the GPT-2 family only."
            )
        # gelu_pytorch_tanh is gelu_new's formula in one fused torch op: the same function.
        if data.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ModelLoadError(f"{source}: activation {data['activation_function']!r} is not "
                                 "GPT-2's gelu_new.")
        vocab_size = _positive_int(data, "vocab_size", source)
        n_embd = _positive_int(data, "n_embd", source)
        n_layer = _positive_int(data, "n_layer", source)
        n_head = _positive_int(data, "n_head", source)
        # older config.json files name it n_ctx
        n_positions = _positive_int(data, "n_positions" if "n_positions" in data else "n_ctx",
                                    source, default=1024)
        if data.get("n_inner") is not None and \
                _positive_int(data, "n_inner", source) != 4 * n_embd:
            raise ModelLoadError(f"{source}: n_inner other than 4 × n_embd is not GPT-2.")
        if n_embd % n_head:
            raise ModelLoadError(f"{source}: n_embd {n_embd} is not a multiple of n_head "
                                 f"{n_head}; {USE_ORIGINAL_CONFIG}.")
        if (n_embd // n_head) % HEAD_SIZE_MULTIPLE:
            raise ModelLoadError(
                f"{source}: heads of {n_embd // n_head} (n_embd {n_embd} / n_head {n_head}) are "
                f"not a multiple of {HEAD_SIZE_MULTIPLE}, which onnxruntime's attention needs; "
                "this model cannot be converted."
            )
        return cls(
            vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
            n_head=n_head,
            layer_norm_epsilon=_positive_float(data, "layer_norm_epsilon", source, 1e-5),
            scale_attn_weights=_flag(data, "scale_attn_weights", source, True),
            scale_attn_by_inverse_layer_idx=_flag(data, "scale_attn_by_inverse_layer_idx",
                                                  source, False),
        )


USE_ORIGINAL_CONFIG = "use the checkpoint's original config.json"
# onnxruntime's GroupQueryAttention, every attention layer of the graph, refuses any other head
# size ("head_size must be a multiple of 8", on CPU as on CUDA); every GPT-2 size has heads of 64.
HEAD_SIZE_MULTIPLE = 8


def _positive_int(data: dict[str, object], name: str, source: Path,
                  default: int | None = None) -> int:
    """data[name] as an int, refused unless it is a whole number above 0 (12, or 12.0; not
    "12", true or 12.5, which int() would take)."""
    value = data.get(name, default)
    if value is None:
        raise ModelLoadError(f"{source} lacks {name}; {USE_ORIGINAL_CONFIG}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or \
            (isinstance(value, float) and not value.is_integer()):
        raise ModelLoadError(f"{source}: {name} {json.dumps(value)} is not a positive whole "
                             f"number; {USE_ORIGINAL_CONFIG}.")
    return int(value)


def _positive_float(data: dict[str, object], name: str, source: Path, default: float) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        raise ModelLoadError(f"{source}: {name} {json.dumps(value)} is not a number above 0; "
                             f"{USE_ORIGINAL_CONFIG}.")
    return float(value)


def _flag(data: dict[str, object], name: str, source: Path, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):  # bool("false") would be True
        raise ModelLoadError(f"{source}: {name} {json.dumps(value)} is neither true nor false; "
                             f"{USE_ORIGINAL_CONFIG}.")
    return value


def expected_shapes(config: GPT2Config) -> dict[str, tuple[int, ...]]:
    """Every tensor of GPT2Model, named as in the checkpoint (Conv1D weights are [in, out])."""
    c, v, p = config.n_embd, config.vocab_size, config.n_positions
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (v, c), "wpe.weight": (p, c)}
    for i in range(config.n_layer):
        h = f"h.{i}."
        shapes.update({
            h + "ln_1.weight": (c,), h + "ln_1.bias": (c,),
            h + "attn.c_attn.weight": (c, 3 * c), h + "attn.c_attn.bias": (3 * c,),
            h + "attn.c_proj.weight": (c, c), h + "attn.c_proj.bias": (c,),
            h + "ln_2.weight": (c,), h + "ln_2.bias": (c,),
            h + "mlp.c_fc.weight": (c, 4 * c), h + "mlp.c_fc.bias": (4 * c,),
            h + "mlp.c_proj.weight": (4 * c, c), h + "mlp.c_proj.bias": (c,),
        })
    shapes.update({"ln_f.weight": (c,), "ln_f.bias": (c,)})
    return shapes


def load_checkpoint(folder: Path) -> tuple[GPT2Config, dict[str, np.ndarray]]:
    """Read and check a GPT-2 checkpoint: safetensors, or else an ONNX export that kept the
    checkpoint's weight names (models/onnx_weights.py). Every problem is a one-line
    ModelLoadError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder; give the checkpoint's folder.")
    export = None
    if not has_checkpoint_weights(folder):
        from models.onnx_weights import export_file

        export = export_file(folder)
        if export is None:
            _refuse_weightless(folder)
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ModelLoadError(f"{folder} has no config.json; copy the model's config.json into "
                             "that folder.")
    try:
        config = GPT2Config.from_hf_json(json.loads(config_path.read_text("utf-8")), config_path)
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"{config_path} is not valid JSON ({error.msg} at line "
                             f"{error.lineno}); restore the original file.") from error
    except UnicodeDecodeError as error:
        raise ModelLoadError(f"{config_path} is not UTF-8 text (byte {error.start} cannot be "
                             "decoded); restore the original file.") from error
    if export is None:
        files = weight_files(folder)
        raw: dict[str, np.ndarray | str] = {}
        for path in files:
            raw.update(_read(map_safetensors, path))
        source = files[0] if len(files) == 1 else folder  # shards: any of them may be meant
        weights = _checked_weights(raw, config, source, "it is not a GPT-2 checkpoint")
    else:
        from models.onnx_weights import map_onnx_initializers

        raw, source = _read(map_onnx_initializers, export), export
        weights = _checked_weights(raw, config, source, "its weights are not under GPT-2's "
                                   "names, so it can only run as it is")
    _check_tied_head(raw, weights["wte.weight"], source)
    return config, weights


def _check_tied_head(raw: dict[str, np.ndarray | str], wte: np.ndarray, source: Path) -> None:
    """Refuse a model whose LM head is not its embedding: a tensor of the embedding's shape, or
    its transpose (optimum stores the tied head as a transposed copy), that differs from it.
    The converter ties the two, as GPT-2 does; a fine-tune that untied them (lm_head.weight,
    tie_word_embeddings false) would otherwise lose its head without a word."""
    for name, tensor in raw.items():
        if isinstance(tensor, str) or tensor.ndim != 2 or _strip_prefix(name) == "wte.weight":
            continue
        if tensor.shape == wte.shape[::-1]:
            tensor = tensor.T
        elif tensor.shape != wte.shape:
            continue
        if not _equal_in_blocks(tensor, wte):
            raise ModelLoadError(f"{source}: its LM head ({name}) is not its embedding, and "
                                 "Ghostpen's conversion ties the two as GPT-2 does; this model "
                                 "cannot be converted.")


def _equal_in_blocks(tensor: np.ndarray, wte: np.ndarray, rows: int = 4096) -> bool:
    """array_equal a few thousand rows at a time: comparing gpt2-xl's embedding whole would hold
    80 MB of booleans (and a float32 copy of an fp16 head)."""
    return all(np.array_equal(_as_float32(tensor[i : i + rows]), wte[i : i + rows])
               for i in range(0, len(wte), rows))


def _refuse_weightless(folder: Path) -> None:
    pickles = [name for name in PICKLE_NAMES if (folder / name).exists()]
    if pickles:
        raise ModelLoadError(
            f"{folder / pickles[0]} is a pickle checkpoint, which is refused because loading "
            "it can run arbitrary code; download the model.safetensors of the same model "
            "instead (the Hub has one for every GPT-2 size)."
        )
    if list(folder.glob("model-*.safetensors")):
        raise ModelLoadError(f"{folder} holds shards of a checkpoint but not their "
                             f"{SHARD_INDEX}; copy it from where the shards came from.")
    raise ModelLoadError(f"{folder} has no model.safetensors; give a Hugging Face GPT-2 "
                         "checkpoint folder.")


def _read(reader: Callable[[Path], dict[str, np.ndarray | str]],
          path: Path) -> dict[str, np.ndarray | str]:
    try:
        return reader(path)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path} cannot be read ({error}); download it again.") from error


def _checked_weights(raw: dict[str, np.ndarray | str], config: GPT2Config, source: Path,
                     not_gpt2: str) -> dict[str, np.ndarray]:
    """The tensors GPT-2 needs, by their names without "transformer.", as float32."""
    found = {_strip_prefix(name): tensor for name, tensor in raw.items()}
    weights: dict[str, np.ndarray] = {}
    for name, shape in expected_shapes(config).items():
        tensor = found.get(name)
        if tensor is None:
            raise ModelLoadError(f"{source} lacks {name}; {not_gpt2}.")
        if isinstance(tensor, str):
            raise ModelLoadError(f"{source}: {name} is {tensor}; Ghostpen reads F32, F16 "
                                 "or BF16 weights. Save the checkpoint in float32.")
        if tuple(tensor.shape) != shape:
            raise ModelLoadError(f"{source}: {name} has shape {tuple(tensor.shape)}, "
                                 f"config.json implies {shape}; the two files do not match.")
        weights[name] = _as_float32(tensor)
    return weights


def weight_files(folder: Path) -> list[Path]:
    """model.safetensors, or the shards its index names."""
    if (folder / WEIGHTS).exists():
        return [folder / WEIGHTS]
    names = shard_names(folder / SHARD_INDEX)
    for name in names:
        if not (folder / name).exists():
            raise ModelLoadError(f"{folder} lacks {name}, a shard its {SHARD_INDEX} names; "
                                 "download the checkpoint again.")
    return [folder / name for name in names]


def shard_names(index: Path) -> list[str]:
    """The file names a shard index maps the tensors to, each once, in order."""
    try:
        weight_map = json.loads(index.read_text("utf-8"))["weight_map"]
        names = list(dict.fromkeys(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelLoadError(f"{index} is not a shard index ({error}); download it "
                             "again.") from error
    for name in names:
        if not isinstance(name, str) or Path(name).name != name:  # never outside the folder
            raise ModelLoadError(f"{index} names {name!r} as a shard; download it again.")
    return names


# safetensors' own readers copy every tensor out of the file (load_file also reads the whole
# file first): converting gpt2-xl peaked at 12.2 GB, twice its 6.2 GB of weights, more than many
# laptops have. Mapped, the weights stay in the page cache, which the OS can drop and re-read
# under pressure, and a tensor is only read when the converter reaches it. numpy has no
# bfloat16: BF16 is mapped as its raw uint16 bits (no other dtype here maps to uint16).
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
           "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
           "BOOL": np.bool_}


def map_safetensors(path: Path) -> dict[str, np.ndarray | str]:
    """Every tensor of a .safetensors file as a read-only array over the mapped file (BF16 as
    its raw uint16 bits, see _as_float32); a dtype it cannot map is given by its name instead.
    ValueError names what is wrong with a damaged file."""
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        file.seek(0)
        if size < 8:
            raise ValueError("shorter than a safetensors header")
        (header_len,) = struct.unpack("<Q", file.read(8))
        if 8 + header_len > size:
            raise ValueError("truncated: the header runs past the end of the file")
        header = json.loads(file.read(header_len))
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    data_start = 8 + header_len
    tensors: dict[str, np.ndarray | str] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise ValueError(f"damaged header entry for {name}")
        dtype = _DTYPES.get(entry.get("dtype"))
        if dtype is None:
            tensors[name] = str(entry.get("dtype"))
            continue
        try:
            shape = tuple(int(n) for n in entry["shape"])
            start, end = (int(n) for n in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"damaged header entry for {name}") from error
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= start <= end <= size - data_start or \
                end - start != count * np.dtype(dtype).itemsize:
            raise ValueError(f"truncated or damaged: {name}'s bytes do not fit the file")
        tensors[name] = np.frombuffer(mapped, dtype, count, data_start + start).reshape(shape)
    return tensors


def _as_float32(tensor: np.ndarray) -> np.ndarray:
    if tensor.dtype == np.uint16:  # BF16: the high half of a float32
        return (tensor.astype(np.uint32) << 16).view(np.float32)
    return tensor if tensor.dtype == np.float32 else tensor.astype(np.float32)


def _strip_prefix(name: str) -> str:
    return name.removeprefix("transformer.")
