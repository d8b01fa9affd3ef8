"""The memory floor of decode: how fast this machine streams memory, and how many bytes one
decoded token must read, so a table can say how close decode is to the fastest it could be.

A decode step reads every weight once (it is a matrix-vector product per layer) plus the KV
cache up to its position, so no engine can decode faster than read speed ÷ bytes per token.
The read speed comes from a few lines of C compiled here with the system's cc (-O3
-march=native: a vectorised sum over uint64, one pthread per thread, best of several passes
over a buffer far past the caches); numpy's sum is not a streaming kernel and reads well below
what the hardware gives, so it is only the fallback where no C compiler exists, and the table
says so.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KERNEL_SOURCE = r"""
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct part { const uint64_t *data; size_t n; uint64_t sum; };

static void *sum_part(void *arg) {
    struct part *part = arg;
    uint64_t sum = 0;
    for (size_t i = 0; i < part->n; i++) sum += part->data[i];
    part->sum = sum;
    return NULL;
}

/* data[0..n) summed by `threads` threads, each over its own contiguous part. */
uint64_t sum_u64(const uint64_t *data, size_t n, int threads) {
    enum { MAX_THREADS = 256 };
    pthread_t ids[MAX_THREADS];
    struct part parts[MAX_THREADS];
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    size_t each = n / (size_t)threads;
    for (int t = 0; t < threads; t++) {
        parts[t].data = data + (size_t)t * each;
        parts[t].n = t == threads - 1 ? n - (size_t)t * each : each;
        pthread_create(&ids[t], NULL, sum_part, &parts[t]);
    }
    uint64_t total = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        total += parts[t].sum;
    }
    return total;
}
"""
# -march=native is what makes the sum vectorised at the machine's full width; the plain -O3
# build is for compilers that refuse it (older clang on arm64).
COMPILE_FLAGS = (["-O3", "-march=native"], ["-O3"])
PASSES = 5
KV_BYTES_PER_VALUE = {"fp32": 4, "fp16": 2, "int8": 1}
# Tables read one row per token of these (an embedding lookup), not the whole table.
GATHER_OPS = frozenset({"Gather", "GatherBlockQuantized"})


@dataclass(frozen=True)
class MemoryRead:
    gb_s: float
    kernel: str  # what measured it, for the table's header
    note: str = ""  # why it is not the C kernel, when it is not


def measure_memory_read(threads: int = 2, cache_dir: Path | None = None, size_mb: int = 512,
                        cc: str | None = "") -> MemoryRead:
    """How fast `threads` threads stream memory now (GB/s), best of PASSES reads of a
    `size_mb` buffer. On a shared VM it moves from minute to minute, so tables say when.
    `cc`: the C compiler ("" finds $CC or cc; None: there is none, measure with numpy).
    The built kernel is kept in `cache_dir` (default: the benchmarks' cache folder)."""
    if cc == "":
        cc = shutil.which(os.environ.get("CC", "cc"))
    if cache_dir is None:
        from app.bench.common import default_cache_dir

        cache_dir = default_cache_dir()
    data = np.ones(size_mb * 2**20 // 8, np.uint64)  # written once: every page is mapped
    kernel = _build_kernel(cc, cache_dir) if cc else None
    if kernel is None:
        why = f"{cc} could not build it" if cc else "no C compiler (cc) found"
        return MemoryRead(_numpy_read_gb_s(data, threads), f"numpy, {threads} threads",
                          f"memory read by numpy ({why}): it reads below the hardware's speed, "
                          "so the floors are too low and the % of floor too high")
    kernel.sum_u64.restype = ctypes.c_uint64
    kernel.sum_u64.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    best = float("inf")
    for _ in range(PASSES):
        started = time.perf_counter()
        total = kernel.sum_u64(data.ctypes.data, data.size, threads)  # ctypes drops the GIL
        best = min(best, time.perf_counter() - started)
        if total != data.size:
            raise RuntimeError(f"the memory kernel summed {total}, not {data.size}")
    return MemoryRead(data.nbytes / best / 1e9,
                      f"C sum of uint64, {threads} threads, {size_mb} MB, best of {PASSES}")


def _build_kernel(cc: str, cache_dir: Path) -> ctypes.CDLL | None:
    """The kernel compiled by `cc`, from `cache_dir` if it was built there before."""
    for flags in COMPILE_FLAGS:
        key = hashlib.sha256("\0".join([cc, *flags, KERNEL_SOURCE]).encode()).hexdigest()[:16]
        library = cache_dir / f"memory-read-{key}.so"
        if not library.exists():
            cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
                source, built = Path(tmp) / "memory_read.c", Path(tmp) / library.name
                source.write_text(KERNEL_SOURCE)
                result = subprocess.run([cc, *flags, "-shared", "-fPIC", "-pthread", str(source),
                                         "-o", str(built)], capture_output=True, check=False)
                if result.returncode != 0:
                    continue
                built.replace(library)  # whole or not at all: another run may load it
        try:
            return ctypes.CDLL(str(library))
        except OSError:
            continue
    return None


def _numpy_read_gb_s(data: np.ndarray, threads: int) -> float:
    parts = np.array_split(data, threads)
    best = float("inf")
    for _ in range(PASSES):
        workers = [threading.Thread(target=part.sum) for part in parts]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        best = min(best, time.perf_counter() - started)
    return data.nbytes / best / 1e9


def weight_bytes_per_token(folder: Path) -> int:
    """Bytes of a Ghostpen model's weights that one decode step reads: every initializer of
    the graph, except the tables only looked up a row at a time (the position embedding; the
    token embedding too unless it is also the LM head, which GPT-2's is)."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    total = 0
    for tensor in graph.initializer:
        if consumers.get(tensor.name, set()) <= GATHER_OPS:
            continue
        count = int(np.prod(tensor.dims, dtype=np.int64))
        total += count * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return total


def kv_bytes_per_token(folder: Path, position: int) -> int:
    """Bytes of the KV cache one decode step reads at `position`: keys and values of every
    earlier position in every layer, in the cache's dtype (from the manifest)."""
    config = json.loads((folder / "config.json").read_text("utf-8"))
    kv_cache = json.loads((folder / "manifest.json").read_text("utf-8"))["kv_cache"]
    return 2 * config["n_layer"] * position * config["n_embd"] * KV_BYTES_PER_VALUE[kv_cache]


def gguf_bytes_per_token(tensor_bytes: int, checkpoint: Path, position: int) -> int:
    """The same for llama.cpp's GGUF of a GPT-2 checkpoint, timed by llama-bench:
    `tensor_bytes` (its model_size) but the position table (kept in F32), plus its default
    f16 KV cache at `position`."""
    config = json.loads((checkpoint / "config.json").read_text("utf-8"))
    n_embd = config["n_embd"]
    return (tensor_bytes - config["n_positions"] * n_embd * 4
            + 2 * config["n_layer"] * position * n_embd * KV_BYTES_PER_VALUE["fp16"])


def decode_floor_tok_s(gb_s: float, bytes_per_token: int) -> float:
    """The fastest decode reading memory at `gb_s` allows."""
    return gb_s * 1e9 / bytes_per_token
