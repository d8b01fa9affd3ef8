"""Build Ghostpen's GPT-2 ONNX graph straight from the weights (no torch), ours to make fast.

The graph contract (FORMAT "ghostpen-gqa/1"), B batch, S new tokens, M max_len, V vocab:
  inputs   input_ids [B, S] int64, position_ids [B, S] int64, seqlens_k [B] int32 (total - 1),
           total_sequence_length [] int32, num_logits_to_keep [] int64,
           past_key_N / past_value_N [B, H, M, D] (cache dtype: fp32, fp16 or int8)
  outputs  logits [B, num_logits_to_keep, V] float32, present_key_N / present_value_N
The runner binds past_* and present_* to ONE preallocated buffer per tensor, so GQA writes the
new keys in place and no step copies the cache. Only the last `num_logits_to_keep` positions go
through the LM head (a third of GPT-2 small's weights), tied to wte.

Precisions: fp32; fp16 (matmuls, attention and cache in fp16; residual stream, LayerNorm and
logits kept in fp32, where fp16 overflows); int8 / int4 (weight-only MatMulNBits with int8
activations, accuracy_level 4, and the embedding gathered from the same quantized wte as the
LM head, so the biggest matrix is stored once; int4 keeps that wte int8, see INT4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.checkpoint import GPT2Config

FORMAT = "ghostpen-gqa/1"
# The prompt graph (prompt.onnx beside model.onnx, int8 models), for chunks of a prompt: the
# same inputs but num_logits_to_keep, past_key_N / past_value_N (the int8 cache, read only) for
# every block but the last, and no logits: its only outputs are new_key_N / new_value_N
# [B, S, C] int8, the chunk's keys and values quantised as GroupQueryAttention would store
# them, for the runner to write into the cache. So the last block stops at its keys and
# values, and the LM head and its prepacked copy of wte (39 MB for GPT-2 124M) are not there.
# Its matmuls are DynamicQuantizeMatMul and its attention fp32: see build_graph's `prompt`.
PROMPT_FORMAT = "ghostpen-prompt/1"
OPSET = 17
MS_DOMAIN = "com.microsoft"
PRECISIONS = ("fp32", "fp16", "int8", "int4")
WEIGHT_BITS = {"int8": 8, "int4": 4}  # the weight-only quantised precisions
KV_TYPES = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16, "int8": TensorProto.INT8}
KV_CACHES = tuple(KV_TYPES)
# Weight-only quantisation block along K: the largest of these that divides K. Measured on
# GPT-2 124M, 2 threads: int8 decode 5.4 ms/step with blocks of 32, 4.0 ms with 128, for the
# same accuracy (top-1 agreement 90% vs the fp32 reference on both); onnxruntime's
# int8-activation kernels spend less per block. int8 goes to 256 (interleaved A/B against 128:
# prefill-512 475 vs 504 ms, a step 4.19 vs 4.44 ms, a three-row step 8.4 vs 9.1 ms; relative
# logit error 0.049 vs 0.045). int4: blocks of 64 with a zero point each (SYMMETRIC), and the
# tied embedding / LM head int8 (HEAD_BITS); see INT4 below.
BLOCK_SIZES = {8: (256, 128, 64, 32, 16), 4: (64, 32, 16)}
# int8 stores -|max|..|max| per block; int4 a zero point per block (min..max on its 16 levels).
SYMMETRIC = {8: True, 4: False}
# INT4, measured 2026-12-02 (docs/benchmarks.md, "int4 knobs"), the stand-in's held-out text,
# 50 windows of 512, SmoothQuant α 0.5, over the second half of each window as
# llama-perplexity scores: int4 all in 4 bits (blocks of 128, symmetric) lost +0.309%
# perplexity to fp32, KL 4.9e-3, top-1 93.7%, where llama.cpp's q4_0 (which keeps the tied
# embedding at q6_K) loses +0.085%, 5.5e-4, 97.9%. The tied embedding / LM head is where 4 bits
# fail (about two thirds of the loss in the head, a third in the embedding): int8 there,
# +0.063%, KL 6.9e-4, top-1 97.5%; with blocks of 64 and zero points as well +0.070%, 5.1e-4,
# 98.0% (every token: +0.066%), and the same on the outlier copy, where q4_0 loses +0.588%.
# Blocks of 32 score the same, slower and larger; with a 4-bit head no block size, zero
# points, int8 MLP c_proj or α got below +0.6% (10 windows). The cost on GPT-2 124M (random
# weights, 2 threads, interleaved): a decode step 1.20-1.31x the all-4-bit int4's (int8:
# 1.40-1.61x), files 92.0 MB instead of 70.6 (int8: 129.8).
HEAD_BITS = 8


def block_size_for(k: int, bits: int) -> int:
    return next(b for b in BLOCK_SIZES[bits] if k % b == 0)


class MatrixLayout(NamedTuple):
    bits: int
    block: int
    symmetric: bool


@dataclass(frozen=True)
class QuantOptions:
    """How the int8 / int4 weights are quantised. The defaults are what every conversion uses;
    the others exist to be measured (`python -m app bench quality --variants`) against them.
    accuracy_level: MatMulNBits' compute type (4 quantises each activation block to int8,
    1 computes in fp32, 0 leaves it to the kernel). block_size: the block along K for every
    matrix of the model's bits, instead of block_size_for's choice per K. symmetric: True
    stores -|max|..|max| per block, False a zero point per block (None: SYMMETRIC's choice
    for the bits). head_bits: the tied embedding / LM head's bits (HEAD_BITS: int8 in an int4
    model; the embedding's blocks are always symmetric). int8_matrices: in an int4 model, the
    matrices kept int8, by name ("mlp.c_proj": every block's; "h.0.mlp.c_proj": one). A
    matrix whose bits differ from the model's takes its own bits' defaults. per_column: the
    blocks' int8 matrices stored with one scale per column and run by DynamicQuantizeMatMul
    (the activations quantised to uint8 per call, one scale for the whole input) as the prompt
    graph's are, instead of MatMulNBits' blocks; the LM head stays MatMulNBits (it shares its
    bytes with the embedding's gather)."""

    accuracy_level: int = 4
    block_size: int | None = None
    symmetric: bool | None = None
    head_bits: int = HEAD_BITS
    int8_matrices: tuple[str, ...] = ()
    per_column: bool = False

    def __post_init__(self) -> None:
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise ValueError("accuracy_level must be 0, 1, 2, 3 or 4")
        if self.block_size is not None and (self.block_size < 16 or
                                            self.block_size & (self.block_size - 1)):
            raise ValueError("block_size must be a power of two, at least 16")
        if self.head_bits not in (4, 8):
            raise ValueError("head_bits must be 4 or 8")

    def block_for(self, k: int, bits: int) -> int:
        if self.block_size is None:
            return block_size_for(k, bits)
        if k % self.block_size:
            raise ValueError(f"block_size {self.block_size} does not divide K = {k}")
        return self.block_size

    def layout(self, name: str, k: int, bits: int) -> MatrixLayout:
        """How the matrix `name` ("h.3.mlp.c_proj", "wte"), K = k, is stored in a `bits`
        model."""
        own_bits = bits
        if name == "wte":
            own_bits = self.head_bits
        elif any(name == m or name.endswith("." + m) for m in self.int8_matrices):
            own_bits = 8
        if own_bits != bits:
            return MatrixLayout(own_bits, block_size_for(k, own_bits), SYMMETRIC[own_bits])
        symmetric = SYMMETRIC[bits] if self.symmetric is None else self.symmetric
        return MatrixLayout(bits, self.block_for(k, bits), symmetric)


DEFAULT_QUANT = QuantOptions()


# Initializers of at least this many bytes go to the external data file (onnx's default).
EXTERNAL_MIN_BYTES = 1024


@dataclass
class GraphBuilder:
    """Nodes and initializers of one graph. With `data` (an open file), each initializer of
    EXTERNAL_MIN_BYTES or more is written there as it is made and the graph only points at it,
    the layout onnx.save_model(save_as_external_data=True) writes: no weight is ever held
    twice, as it was in a TensorProto and again while onnx saved it (gpt2-xl int8: 4.5 GB)."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    counter: int = 0
    data: BinaryIO | None = None
    data_location: str = ""
    # External initializers already in `data`, by name: a second graph over the same file (the
    # prompt graph) points at the bytes the first one wrote instead of writing them again.
    written: dict[str, onnx.TensorProto] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)

    def const(self, name: str, array: np.ndarray) -> str:
        """`name`, an initializer holding `array`; a name already made stands for the same
        array (constants such as "axes0" are asked for by every layer)."""
        if name in self._names:
            return name
        self._names.add(name)
        if name in self.written:
            self.initializers.append(self.written[name])
            return name
        array = np.ascontiguousarray(array)
        if self.data is None or array.nbytes < EXTERNAL_MIN_BYTES:
            self.initializers.append(numpy_helper.from_array(array, name))
            return name
        tensor = onnx.TensorProto(name=name, dims=array.shape,
                                  data_type=helper.np_dtype_to_tensor_dtype(array.dtype))
        offset = self.data.tell()
        self.data.write(array.data)  # native order: little-endian on x86 and ARM, as ONNX's
        for key, value in (("location", self.data_location), ("offset", offset),
                           ("length", array.nbytes)):
            tensor.external_data.add(key=key, value=str(value))
        tensor.data_location = onnx.TensorProto.EXTERNAL
        self.initializers.append(tensor)
        self.written[name] = tensor
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, name: str | None = None,
           outputs: list[str] | None = None, domain: str = "", **attrs: object) -> list[str]:
        self.counter += 1
        node_name = name or f"{op_type}_{self.counter}"
        outs = outputs or [f"{node_name}/out{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=node_name, domain=domain,
                                           **attrs))
        return outs


QUANTIZE_COLUMNS = 4096  # per call of onnxruntime's quantizer: ~15 ms for GPT-2's embedding


def quantize_blockwise(weight_kn: np.ndarray, bits: int, block: int | None = None,
                       symmetric: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """[K, N] fp32 -> packed [N, K/b, b*bits/8] uint8, scales [N, K/b] and, unless symmetric,
    zero points (uint8 [N, K/b] for 8 bits, two to a byte [N, ceil(K/b/2)] for 4), b = block
    (default: block_size_for(K, bits)).

    onnxruntime's own C++ block quantizer, so the layout is exactly what MatMulNBits expects.
    """
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits, quantize_matmul_8bits

    k, n = weight_kn.shape
    block = block or block_size_for(k, bits)
    k_blocks = k // block
    packed = np.zeros((n, k_blocks, block * bits // 8), dtype=np.uint8)
    scales = np.zeros((n, k_blocks), dtype=np.float32)
    zero_points = np.zeros((n, (k_blocks * bits + 7) // 8), dtype=np.uint8)
    quantize = quantize_matmul_8bits if bits == 8 else quantize_matmul_4bits
    # The quantizer holds the GIL while it runs: the whole embedding (N = 50257) at once froze
    # the window for ~170 ms while the Models dialog converted. Columns are quantised on their
    # own, so slices of N give the same bytes, and the window runs between them.
    for start in range(0, n, QUANTIZE_COLUMNS):
        stop = min(n, start + QUANTIZE_COLUMNS)
        quantize(packed[start:stop],
                 np.ascontiguousarray(weight_kn[:, start:stop], dtype=np.float32),
                 scales[start:stop], zero_points[start:stop], block, stop - start, k, symmetric)
    return packed, scales, None if symmetric else zero_points


def quantize_columns(weight_kn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[K, N] fp32 -> int8 [K, N] and one scale per column [N]: -|max|..|max| of each column,
    the layout DynamicQuantizeMatMul reads."""
    scales = np.maximum(np.abs(weight_kn).max(0) / 127, 1e-12).astype(np.float32)
    q = np.clip(np.rint(weight_kn / scales), -127, 127).astype(np.int8)
    return q, scales


class _Linear:
    """y = x @ W + b in the chosen precision; W is the checkpoint's Conv1D weight, [K, N].
    prompt: the prompt graph's int8 GEMM (DynamicQuantizeMatMul: the activations quantised per
    call, one scale per weight column), for int8 / int4 models."""

    def __init__(self, g: GraphBuilder, precision: str, quant: QuantOptions,
                 prompt: bool = False) -> None:
        self.g, self.precision, self.quant, self.prompt = g, precision, quant, prompt

    def __call__(self, x: str, weight: np.ndarray, bias: np.ndarray | None, name: str,
                 fuse_gelu: bool = False) -> str:
        g, k, n = self.g, weight.shape[0], weight.shape[1]
        bits = WEIGHT_BITS.get(self.precision)
        if bits and (self.prompt or (self.quant.per_column and
                                     self.quant.layout(name, k, bits).bits == 8)):
            q, scales = quantize_columns(weight)
            inputs = [x, g.const(name + ".qcolumns", q), g.const(name + ".column_scales", scales)]
            if bias is not None and not fuse_gelu:
                inputs += ["", g.const(name + ".bias", bias)]
            (y,) = g.op("DynamicQuantizeMatMul", inputs, name=name, domain=MS_DOMAIN)
            if fuse_gelu:
                assert bias is not None
                (y,) = g.op("FastGelu", [y, g.const(name + ".gelu_bias", bias)],
                            domain=MS_DOMAIN)
            return y
        if bits:
            bits, block, symmetric = self.quant.layout(name, k, bits)
            packed, scales, zero_points = quantize_blockwise(weight, bits, block, symmetric)
            inputs = [x, g.const(name + ".qweight", packed), g.const(name + ".scales", scales)]
            if zero_points is not None:
                inputs.append(g.const(name + ".zero_points", zero_points))
            if bias is not None and not fuse_gelu:
                inputs += [""] * (5 - len(inputs)) + [g.const(name + ".bias", bias)]
            (y,) = g.op("MatMulNBits", inputs, name=name, domain=MS_DOMAIN, K=k, N=n, bits=bits,
                        block_size=block, accuracy_level=self.quant.accuracy_level)
            if fuse_gelu:
                assert bias is not None
                (y,) = g.op("FastGelu", [y, g.const(name + ".gelu_bias", bias)],
                            domain=MS_DOMAIN)
            return y
        dtype = np.float16 if self.precision == "fp16" else np.float32
        w = g.const(name + ".weight", weight.astype(dtype, copy=False))
        (y,) = g.op("MatMul", [x, w], name=name)
        if bias is not None:
            b = g.const(name + ".bias", bias.astype(dtype, copy=False))
            (y,) = g.op("FastGelu", [y, b], domain=MS_DOMAIN) if fuse_gelu else g.op("Add", [y, b])
        return y


def has_prompt_graph(precision: str, kv_cache: str) -> bool:
    """Whether a model of this precision and cache can have a prompt graph (build_graph's
    `prompt`; export_model's `prompt_graph` asks for one): int8 with its int8 cache. Not int4,
    which exists to be small: the prompt graph's int8 weights would nearly double its files
    (92 -> 177 MB for GPT-2 124M)."""
    return precision == "int8" and kv_cache == "int8"


def default_kv_cache(precision: str) -> str:
    return {"fp32": "fp32", "fp16": "fp16"}.get(precision, "int8")


def build_graph(config: GPT2Config, weights: Mapping[str, np.ndarray], precision: str,
                source: str = "", kv_cache: str | None = None,
                kv_scales: list[tuple[np.ndarray, np.ndarray]] | None = None,
                data: BinaryIO | None = None, data_location: str = "",
                on_layer: Callable[[int, int], None] | None = None,
                quant: QuantOptions = DEFAULT_QUANT, prompt: bool = False,
                written: dict[str, onnx.TensorProto] | None = None) -> onnx.ModelProto:
    """kv_cache: "fp32", "fp16" or "int8" (default: see default_kv_cache). An int8 cache needs
    kv_scales, one (key, value) pair of per-channel scales [H*D] per layer (calibrate_kv_scales):
    GroupQueryAttention quantises each new key and value with them and attends over the int8
    cache, a quarter of the bytes to read per token of context. With `data`, the weights are
    written to that file as they are made (GraphBuilder), named `data_location` in the graph.
    `on_layer(done, total)` is called after each transformer block (progress, and a chance to
    cancel: gpt2-xl's 48 blocks take ~40 s). `quant`: see QuantOptions (int8 / int4 only).
    `prompt`: build the prompt graph instead (see PROMPT_FORMAT; int8 / int4 weights with an
    int8 cache only); `written`: the decode graph's GraphBuilder.written, when both graphs
    share one data file, so the weights they have in common are stored once."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    kv_cache = kv_cache or default_kv_cache(precision)
    if kv_cache not in KV_CACHES:
        raise ValueError(f"kv_cache must be one of {', '.join(KV_CACHES)}")
    if kv_cache == "int8" and (kv_scales is None or len(kv_scales) != config.n_layer):
        raise ValueError("an int8 KV cache needs per-channel scales for every layer")
    if prompt and (precision not in WEIGHT_BITS or kv_cache != "int8"):
        raise ValueError("a prompt graph is for int8 / int4 weights with an int8 KV cache")
    g = GraphBuilder(data=data, data_location=data_location,
                     written={} if written is None else written)
    c, n_head, d = config.n_embd, config.n_head, config.head_dim
    eps = config.layer_norm_epsilon
    act = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT
    act_np = np.float16 if precision == "fp16" else np.float32
    linear = _Linear(g, precision, quant, prompt)

    def to_act(x: str) -> str:  # fp32 residual stream -> matmul dtype
        return g.op("Cast", [x], to=act)[0] if precision == "fp16" else x

    def to_fp32(x: str) -> str:
        return g.op("Cast", [x], to=TensorProto.FLOAT)[0] if precision == "fp16" else x

    # Embeddings: x [B, S, C] fp32
    wte = weights["wte.weight"]
    bits = WEIGHT_BITS.get(precision)
    if bits:
        wte_bits, wte_block, _ = quant.layout("wte", c, bits)
        # [V, C/b, b*bits/8]; symmetric whatever the layout says: GatherBlockQuantized's 4-bit
        # zero points are laid out unlike MatMulNBits', and both read this one copy
        wte_packed, wte_scales, _ = quantize_blockwise(wte.T, wte_bits, wte_block)
        g.const("wte.qweight", wte_packed)
        if not prompt:  # the LM head's
            g.const("wte.scales", wte_scales)
        g.const("wte.gather_scales", wte_scales[:, :, None])  # same rank as the data
        (tok,) = g.op("GatherBlockQuantized", ["wte.qweight", "input_ids", "wte.gather_scales"],
                      domain=MS_DOMAIN, bits=wte_bits, block_size=wte_block,
                      gather_axis=0, quantize_axis=2)
        (shape_bsc,) = g.op("Concat", [g.op("Shape", ["input_ids"])[0],
                                       g.const("const.c", np.array([c], np.int64))], axis=0)
        (tok,) = g.op("Reshape", [tok, shape_bsc])
    else:
        g.const("wte.weight", wte.astype(act_np, copy=False))
        (tok,) = g.op("Gather", ["wte.weight", "input_ids"])
        tok = to_fp32(tok)
    (pos,) = g.op("Gather", [g.const("wpe.weight", weights["wpe.weight"]), "position_ids"])
    (x,) = g.op("Add", [tok, pos], name="embed")

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
        helper.make_tensor_value_info("num_logits_to_keep", TensorProto.INT64, []),
    ]
    outputs = []
    cache_shape: list[str | int] = ["batch", n_head, "max_len", d]
    cache_type = KV_TYPES[kv_cache]

    def layer_norm(x: str, prefix: str) -> str:
        (y,) = g.op("LayerNormalization", [x, g.const(prefix + ".weight", weights[prefix +
                    ".weight"]), g.const(prefix + ".bias", weights[prefix + ".bias"])],
                    axis=-1, epsilon=eps)
        return y

    # int8 / int4 (the CPU's precisions) and the prompt graph close each residual with Add and
    # LayerNormalization, the matrix product adding c_proj's bias itself (MatMulNBits' and
    # DynamicQuantizeMatMul's bias input); fp32 and fp16 use SkipLayerNormalization, which adds
    # the bias. onnxruntime 1.32's CPU provider runs Add + LayerNormalization ~15x faster than
    # SkipLayerNormalization on a chunk of 128 tokens (26 ms for GPT-2's 24 against 1.7 ms, 1
    # thread) and no slower in a decode step, and does not fuse them back. fp32 and fp16,
    # which also run on GPUs, keep the fused op: one kernel launch instead of two there (not
    # measured: no GPU here). Measurements in docs/benchmarks.md ("Kept, 2026-12-02").
    unfused = prompt or precision in WEIGHT_BITS

    def skip_layer_norm(delta: str, residual: str, bias: np.ndarray, prefix: str,
                        bias_name: str) -> tuple[str, str]:
        """(LayerNorm(residual + delta (+ bias)), residual + delta (+ bias)): the bias added
        here only where SkipLayerNormalization runs (see `unfused`)."""
        if unfused:  # delta already holds the bias: the matrix product added it
            (summed,) = g.op("Add", [delta, residual])
            return layer_norm(summed, prefix), summed
        normed, _, _, summed = g.op(
            "SkipLayerNormalization",
            [delta, residual, g.const(prefix + ".weight", weights[prefix + ".weight"]),
             g.const(prefix + ".bias", weights[prefix + ".bias"]), g.const(bias_name, bias)],
            n_out=4, domain=MS_DOMAIN, epsilon=eps)
        return normed, summed

    past_len = ""
    if prompt:  # how many positions the cache holds before these: total - S, [1] int64
        (new_len,) = g.op("Shape", ["input_ids"], start=1, end=2)
        (total,) = g.op("Cast", ["total_sequence_length"], to=TensorProto.INT64)
        (total,) = g.op("Unsqueeze", [total, g.const("axes0", np.array([0], np.int64))])
        (past_len,) = g.op("Sub", [total, new_len])

    def dequantized_past(name: str, scale: np.ndarray, scale_name: str) -> str:
        """The int8 cache's first past_len positions in fp32: [B, H, P, D]."""
        (part,) = g.op("Slice", [name, g.const("const.zero", np.array([0], np.int64)), past_len,
                                 g.const("const.two", np.array([2], np.int64))])
        (part,) = g.op("Cast", [part], to=TensorProto.FLOAT)
        (part,) = g.op("Mul", [part, g.const(scale_name, scale.reshape(1, n_head, 1, d))])
        return part

    def quantized_new(qkv: str, start: int, scale: np.ndarray, scale_name: str,
                      output: str) -> None:
        """The chunk's keys or values as GroupQueryAttention stores them in an int8 cache:
        round(x / scale) clipped to [-127, 127], [B, S, C]."""
        (part,) = g.op("Slice", [qkv, g.const(f"const.c{start}", np.array([start], np.int64)),
                                 g.const(f"const.c{start + c}", np.array([start + c], np.int64)),
                                 g.const("const.two", np.array([2], np.int64))])
        (part,) = g.op("Div", [part, g.const(scale_name, scale)])
        (part,) = g.op("Round", [part])
        (part,) = g.op("Clip", [part, g.const("const.m127", np.array(-127, np.float32)),
                                g.const("const.p127", np.array(127, np.float32))])
        g.op("Cast", [part], to=TensorProto.INT8, outputs=[output])

    h = layer_norm(x, "h.0.ln_1")
    for i in range(config.n_layer):
        p = f"h.{i}."
        qkv = linear(to_act(h), weights[p + "attn.c_attn.weight"], weights[p + "attn.c_attn.bias"],
                     p + "attn.c_attn")
        # GQA takes the packed [B, S, 3C] projection as its query and splits it itself.
        past_k, past_v, present_k, present_v = (f"past_key_{i}", f"past_value_{i}",
                                                f"present_key_{i}", f"present_value_{i}")
        # 0 query (packed), 3-4 past, 5 seqlens_k, 6 total length, 12-13 k/v scales. No
        # attention_bias (10): CUDA's GroupQueryAttention refuses any.
        gqa_inputs = [qkv, "", "", past_k, past_v, "seqlens_k", "total_sequence_length"]
        attrs: dict[str, Any] = {}
        gqa_outputs = [p + "attn/out", present_k, present_v]
        if prompt:
            # The chunk's keys and values quantized for the runner to store, then fp32
            # attention over the cache's past dequantized and the chunk's own keys and values:
            # GroupQueryAttention over an int8 cache took 202 ms of a 510 ms prefill-512 at 1
            # thread, over fp32 57 ms (see docs/benchmarks.md, "Prefill, 2026-12-02").
            assert kv_scales is not None
            k_scale, v_scale = kv_scales[i]
            quantized_new(qkv, c, k_scale, p + "attn.k_scale", f"new_key_{i}")
            quantized_new(qkv, 2 * c, v_scale, p + "attn.v_scale", f"new_value_{i}")
            for name in (f"new_key_{i}", f"new_value_{i}"):
                outputs.append(helper.make_tensor_value_info(name, TensorProto.INT8,
                                                             ["batch", "seq", c]))
            if i + 1 == config.n_layer:  # its keys and values are all that is left to compute
                if on_layer is not None:
                    on_layer(i + 1, config.n_layer)
                break
            gqa_inputs[3:5] = [dequantized_past(past_k, k_scale, p + "attn.k_scale_bhd"),
                               dequantized_past(past_v, v_scale, p + "attn.v_scale_bhd")]
            # GroupQueryAttention still needs its present outputs: without them it attends to
            # the chunk alone (measured: relative error 0.42 instead of 0.024)
            gqa_outputs[1:] = [p + "attn/present_k", p + "attn/present_v"]
        elif kv_cache == "int8":
            assert kv_scales is not None
            k_scale, v_scale = kv_scales[i]
            gqa_inputs += ["", "", "", "", "", g.const(p + "attn.k_scale", k_scale),
                           g.const(p + "attn.v_scale", v_scale)]
            attrs = {"k_quant_type": "PER_CHANNEL", "v_quant_type": "PER_CHANNEL",
                     "kv_cache_bit_width": 8}
        if config.scale_attn_by_inverse_layer_idx or not config.scale_attn_weights:
            attrs["scale"] = config.attention_scale(i)  # else GQA's own 1/sqrt(head_dim)
        attn = g.op("GroupQueryAttention", gqa_inputs, outputs=gqa_outputs, name=p + "attn",
                    domain=MS_DOMAIN, num_heads=n_head, kv_num_heads=n_head, **attrs)[0]
        for name in (past_k, past_v):
            inputs.append(helper.make_tensor_value_info(name, cache_type, cache_shape))
        if not prompt:
            for name in (present_k, present_v):
                outputs.append(helper.make_tensor_value_info(name, cache_type, cache_shape))
        # c_proj's bias: in the matrix product where unfused, else in SkipLayerNormalization.
        proj_bias = weights[p + "attn.c_proj.bias"] if unfused else None
        a = to_fp32(linear(attn, weights[p + "attn.c_proj.weight"], proj_bias, p + "attn.c_proj"))
        h, x = skip_layer_norm(a, x, weights[p + "attn.c_proj.bias"], p + "ln_2",
                               p + "attn.c_proj.bias")
        m = linear(to_act(h), weights[p + "mlp.c_fc.weight"], weights[p + "mlp.c_fc.bias"],
                   p + "mlp.c_fc", fuse_gelu=True)
        proj_bias = weights[p + "mlp.c_proj.bias"] if unfused else None
        m = to_fp32(linear(m, weights[p + "mlp.c_proj.weight"], proj_bias, p + "mlp.c_proj"))
        next_norm = f"h.{i + 1}.ln_1" if i + 1 < config.n_layer else "ln_f"
        h, x = skip_layer_norm(m, x, weights[p + "mlp.c_proj.bias"], next_norm,
                               p + "mlp.c_proj.bias")
        if on_layer is not None:
            on_layer(i + 1, config.n_layer)

    props = {"precision": precision, "source": source, "kv_cache": kv_cache,
             "n_layer": str(config.n_layer), "n_head": str(n_head), "n_embd": str(c),
             "n_positions": str(config.n_positions)}
    if prompt:  # no logits: the runner runs a chunk's last tokens through model.onnx
        inputs = [i for i in inputs if i.name != "num_logits_to_keep"]
        return _model(g, inputs, outputs, PROMPT_FORMAT, props)
    # Only the last num_logits_to_keep positions reach the LM head: [B, n, C].
    (start,) = g.op("Neg", ["num_logits_to_keep"])
    (start,) = g.op("Unsqueeze", [start, g.const("axes0", np.array([0], np.int64))])
    (h,) = g.op("Slice", [h, start, g.const("slice.end", np.array([2**62], np.int64)),
                          g.const("slice.axis", np.array([1], np.int64))])
    if bits:
        g.op("MatMulNBits", [h, "wte.qweight", "wte.scales"], outputs=["logits"],
             name="lm_head", domain=MS_DOMAIN, K=c, N=config.vocab_size, bits=wte_bits,
             block_size=wte_block, accuracy_level=quant.accuracy_level)
    else:
        # Gemm with transB reads wte as stored: the LM head stays tied, no transposed copy.
        (flat,) = g.op("Reshape", [to_act(h), g.const("shape.flat", np.array([-1, c], np.int64))])
        (flat_logits,) = g.op("Gemm", [flat, "wte.weight"], transB=1, name="lm_head")
        (shape_out,) = g.op("Concat", [
            g.op("Slice", [g.op("Shape", [h])[0], g.const("s0", np.array([0], np.int64)),
                           g.const("s2", np.array([2], np.int64))])[0],
            g.const("const.v", np.array([config.vocab_size], np.int64))], axis=0)
        g.op("Reshape", [to_fp32(flat_logits), shape_out], outputs=["logits"])
    outputs.insert(0, helper.make_tensor_value_info(
        "logits", TensorProto.FLOAT, ["batch", "kept", config.vocab_size]))

    return _model(g, inputs, outputs, FORMAT, props)


def _model(g: GraphBuilder, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           graph_format: str, props: dict[str, str]) -> onnx.ModelProto:
    graph = helper.make_graph(g.nodes, "ghostpen_gpt2", inputs, outputs, g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="ghostpen", producer_version=graph_format)
    model.ir_version = 9
    helper.set_model_props(model, {"ghostpen_format": graph_format, **props})
    return model
