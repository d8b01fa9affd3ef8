"""ModelRunner: onnxruntime sessions over one of Ghostpen's own GPT-2 graphs.

`forward(ids, cache)` runs S new tokens for every cache row from position `cache.pos`, writing
their keys and values in place (past and present are bound to the same buffer), advances
`cache.pos` and returns logits for the last `keep` positions. Shapes: B rows, S new tokens,
V vocab. An int8 model also has a prompt graph for long chunks (prompts, the lens's
scoring): int8 GEMMs and fp32 attention, about twice as fast there as model.onnx.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.errors import ModelLoadError, first_line
from app.engine.kv_cache import KVCache
from app.engine.providers import choose_providers


@dataclass(frozen=True)
class GraphShape:
    n_layer: int
    n_head: int
    head_dim: int
    vocab_size: int
    n_positions: int
    cache_dtype: type


CACHE_DEVICES = {"CUDAExecutionProvider": "cuda", "DmlExecutionProvider": "dml"}
# Chunks of at least this many tokens run through the prompt graph. A speculative pass checks at
# most 9 (speculation.MAX_DRAFT + 1) and stays on model.onnx, so that a checked draft sees the
# decode step's own numbers: the prompt graph quantises its activations per chunk, and its
# logits differ from the step's by about as much as int8 weights differ from fp32.
PROMPT_GRAPH_MIN_TOKENS = 16


def make_session_options(threads: int | None, prompt_graph: bool = False) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if prompt_graph:
        # Each layer's dequantized past is ready from the start; the default order made all of
        # them at once, and a 512-token prompt in chunks of 128 grew the peak RSS by 58 MB
        # instead of 33 (GPT-2 124M int8, 2026-12-02).
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    # Hand out each parallel loop in small blocks that idle threads take as they finish, rather
    # than one equal share per thread: on a laptop or VM whose cores are not equally free, the
    # slower core no longer holds the step back. Interleaved A/B on GPT-2 124M int8, 2 threads:
    # a decode step 3.92 vs 4.19 ms at position 32, 4.99 vs 5.44 ms at 900; three rows at 600
    # 8.23 vs 8.48 ms; prefill unchanged.
    options.add_session_config_entry("session.dynamic_block_base", "16")
    options.log_severity_level = 3  # warnings about unused initializers are not the user's business
    return options


def create_session(path: Path, device: str, threads: int | None,
                   prompt_graph: bool = False) -> tuple[object, str]:
    """(session, fallback_reason): the best provider that starts, else CPU with the reason.
    `prompt_graph`: `path` is a prompt graph (see make_session_options)."""
    import onnxruntime as ort

    choice = choose_providers(device)
    reason = choice.reason
    options = make_session_options(threads, prompt_graph)
    for index, provider in enumerate(choice.providers):
        try:
            # onnxruntime often does not raise when a GPU provider cannot start: it warns and
            # quietly runs on the CPU. Catch the warning and compare what actually runs.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                session = ort.InferenceSession(str(path), options, providers=[provider])
        except Exception as error:  # a provider that fails to start must not stop the app
            if provider == "CPUExecutionProvider" or index == len(choice.providers) - 1:
                raise ModelLoadError(_describe_load_failure(path, error)) from error
            why = first_line(error) or type(error).__name__
            reason = f"{provider} failed to start ({why}); running on CPU."
            continue
        running = session.get_providers()[0]
        if running != provider:
            why = f" ({first_line(caught[0].message)})" if caught else ""
            reason = f"{provider} failed to start{why}; running on CPU."
        return session, reason
    raise AssertionError("unreachable: CPU is always the last provider")


def _describe_load_failure(path: Path, error: Exception) -> str:
    text = str(error)
    if "external data" in text.lower() or ("model_path" in text.lower() and "data" in text):
        return f"{path}: its external weights file is missing or damaged; convert or download " \
               "the model again."
    if "protobuf" in text.lower() or "parsing" in text.lower() or "load model" in text.lower():
        return f"{path} is not a readable ONNX file (truncated or corrupt); convert or " \
               "download the model again."
    summary = first_line(text) or type(error).__name__
    return f"{path} could not be loaded by onnxruntime ({summary}); convert it again."


class BoundInputs:
    """The inputs both graphs take besides the cache (ids, positions, lengths), in arrays bound
    to one IO binding by address and rewritten in place for each pass; bound again only when
    the pass's shape changes. Binding numpy arrays anew for every pass (bind_cpu_input wraps
    each one in a new tensor) took 60-140 µs of a 0.8-1.1 ms decode step of the 16M stand-in,
    2 threads, 2026-12-02."""

    def __init__(self, binding: Any, logits_to_keep: bool) -> None:
        self._binding = binding
        self._shape: tuple[int, int] | None = None  # (rows, new tokens) bound
        self.input_ids = np.zeros((0, 0), np.int64)
        self.position_ids = np.zeros((0, 0), np.int64)
        self.seqlens_k = np.zeros(0, np.int32)
        self.total = np.zeros((), np.int32)
        self.keep = np.zeros((), np.int64)
        binding.bind_input("total_sequence_length", "cpu", 0, np.int32, [], self.total.ctypes.data)
        if logits_to_keep:
            binding.bind_input("num_logits_to_keep", "cpu", 0, np.int64, [], self.keep.ctypes.data)

    def write(self, ids: np.ndarray, pos: int, keep: int = 0) -> None:
        """`ids` [B, S] new tokens after `pos` cached ones, keeping the last `keep` logits."""
        rows, length = ids.shape
        if self._shape != (rows, length):
            self.input_ids = np.zeros((rows, length), np.int64)
            self.position_ids = np.zeros((rows, length), np.int64)
            self.seqlens_k = np.zeros(rows, np.int32)
            for name, array in (("input_ids", self.input_ids),
                                ("position_ids", self.position_ids),
                                ("seqlens_k", self.seqlens_k)):
                self._binding.bind_input(name, "cpu", 0, array.dtype, list(array.shape),
                                         array.ctypes.data)
            self._shape = (rows, length)
        total = pos + length
        self.input_ids[...] = ids
        self.position_ids[...] = np.arange(pos, total, dtype=np.int64)
        self.seqlens_k.fill(total - 1)
        self.total[...] = total
        self.keep[...] = keep


class ModelRunner:
    """Runs Ghostpen's own graph (format ghostpen-gqa/1) with IO binding and a shared KV cache.
    `prompt_session`: the model's prompt graph (prompt.onnx, format ghostpen-prompt/1), which
    runs chunks of PROMPT_GRAPH_MIN_TOKENS or more when the cache is in host memory; None runs
    every chunk through `session`."""

    def __init__(self, session: object, shape: GraphShape, fallback_reason: str = "",
                 prompt_session: object | None = None) -> None:
        self.session = session
        self.shape = shape
        self.fallback_reason = fallback_reason
        self.provider: str = session.get_providers()[0]  # type: ignore[attr-defined]
        # GPU providers keep the cache on their device; the CPU provider in numpy arrays.
        self.cache_device = CACHE_DEVICES.get(self.provider, "numpy")
        self._binding = session.io_binding()  # type: ignore[attr-defined]
        self._inputs = BoundInputs(self._binding, logits_to_keep=True)
        self._bound_cache: tuple[int, int] | None = None  # (cache.buffers_id, rows) bound
        self._logits = np.zeros((0, 0, shape.vocab_size), np.float32)  # bound when a pass asks
        self.prompt_session = prompt_session if self.cache_device == "numpy" else None
        if self.prompt_session is not None:
            self._prompt_binding = self.prompt_session.io_binding()  # type: ignore[attr-defined]
            self._prompt_inputs = BoundInputs(self._prompt_binding, logits_to_keep=False)
            self._prompt_bound_cache: tuple[int, int] | None = None

    @property
    def n_ctx(self) -> int:
        return self.shape.n_positions

    def new_cache(self, batch: int = 1) -> KVCache:
        s = self.shape
        return KVCache(s.n_layer, s.n_head, s.head_dim, s.n_positions, s.cache_dtype, batch,
                       device=self.cache_device)

    def _bind_cache(self, cache: KVCache, rows: int) -> None:
        # Not keyed on id(): a new cache's buffers may reuse the id of freed ones, and a stale
        # binding would have onnxruntime write into freed memory.
        key = (cache.buffers_id, rows)
        if self._bound_cache == key:
            return
        shape = [rows, self.shape.n_head, cache.max_len, self.shape.head_dim]
        device = "cpu" if cache.on_host else cache.device
        b = self._binding
        for i in range(self.shape.n_layer):
            for kind, buffer in (("key", cache.keys[i]), ("value", cache.values[i])):
                ptr = cache.pointer(buffer)  # past and present: one buffer, written in place
                b.bind_input(f"past_{kind}_{i}", device, 0, cache.dtype, shape, ptr)
                b.bind_output(f"present_{kind}_{i}", device, 0, cache.dtype, shape, ptr)
        self._bound_cache = key

    def forward(self, ids: np.ndarray, cache: KVCache, keep: int = 1) -> np.ndarray:
        """[B, S] new token ids -> [B, keep, V] logits; advances cache.pos by S. keep=0 gives
        no logits ([B, 0, V]): a chunk of a prompt whose logits nobody reads."""
        rows, length = ids.shape
        if cache.pos + length > cache.max_len:
            raise ValueError(f"cache holds {cache.pos} of {cache.max_len}; {length} more won't fit")
        # The prompt graph gives no logits: it runs all but the last `keep` tokens, model.onnx
        # those (one step, for a prompt).
        prompt_tokens = length - keep
        if prompt_tokens >= PROMPT_GRAPH_MIN_TOKENS and self.prompt_session is not None \
                and cache.on_host:
            self._run_prompt_graph(ids[:, :prompt_tokens], cache)
            if keep == 0:
                return np.zeros((rows, 0, self.shape.vocab_size), np.float32)
            ids = ids[:, prompt_tokens:]
        logits = self._run_model(ids, cache, max(keep, 1))
        return logits[:, :0] if keep == 0 else logits

    def _run_model(self, ids: np.ndarray, cache: KVCache, keep: int) -> np.ndarray:
        """model.onnx over `ids`, writing their keys and values into the cache in place."""
        rows, length = ids.shape
        self._bind_cache(cache, rows)
        self._inputs.write(ids, cache.pos, keep)
        if self._logits.shape != (rows, keep, self.shape.vocab_size):
            self._logits = np.zeros((rows, keep, self.shape.vocab_size), np.float32)
            self._binding.bind_output("logits", "cpu", 0, np.float32, list(self._logits.shape),
                                      self._logits.ctypes.data)
        self.session.run_with_iobinding(self._binding)  # type: ignore[attr-defined]
        cache.pos += length
        return checked_logits(self._logits)

    def _run_prompt_graph(self, ids: np.ndarray, cache: KVCache) -> None:
        """The prompt graph over `ids`: it reads the cache's past and gives the chunk's keys
        and values, written into the cache here."""
        rows, length = ids.shape
        s, b = self.shape, self._prompt_binding
        key = (cache.buffers_id, rows)
        if self._prompt_bound_cache != key:
            shape = [rows, s.n_head, cache.max_len, s.head_dim]
            for i in range(s.n_layer - 1):  # the last block's past is not read
                for kind, buffer in (("key", cache.keys[i]), ("value", cache.values[i])):
                    b.bind_input(f"past_{kind}_{i}", "cpu", 0, cache.dtype, shape,
                                 cache.pointer(buffer))
            self._prompt_bound_cache = key
        self._prompt_inputs.write(ids, cache.pos)
        c = s.n_head * s.head_dim
        new = np.empty((2, s.n_layer, rows, length, c), np.int8)
        for i in range(s.n_layer):
            for k, kind in enumerate(("key", "value")):
                b.bind_output(f"new_{kind}_{i}", "cpu", 0, np.int8, [rows, length, c],
                              new[k, i].ctypes.data)
        self.prompt_session.run_with_iobinding(b)  # type: ignore[union-attr, attr-defined]
        # [B, S, C] -> the cache's [B, H, S, D] at positions pos..pos+S
        new = new.reshape(2, s.n_layer, rows, length, s.n_head, s.head_dim)
        end = cache.pos + length
        for i in range(s.n_layer):
            cache.keys[i][:rows, :, cache.pos : end] = new[0, i].transpose(0, 2, 1, 3)
            cache.values[i][:rows, :, cache.pos : end] = new[1, i].transpose(0, 2, 1, 3)
        cache.pos = end


def checked_logits(logits: np.ndarray) -> np.ndarray:
    """`logits`, unless the model computed NaN: damaged weights that no sha256 caught (a foreign
    export has none) otherwise surface as every token being ruled out by the person's logit
    bias. The check costs microseconds a token."""
    if np.isnan(logits).any():
        raise ModelLoadError("the model computed NaN scores for the next token: its weights are "
                             "damaged; convert or download the model again.")
    return logits


def default_threads() -> int:
    """Physical cores as onnxruntime counts them, overridable by GHOSTPEN_THREADS."""
    value = os.environ.get("GHOSTPEN_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 0
