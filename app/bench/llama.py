"""llama.cpp beside Ghostpen in `python -m app bench --llama-bench PATH`: the same seeded random
weights converted to GGUF by llama.cpp's own converter and quantised by its llama-quantize
(q8_0 against our int8, q4_0 against our int4), timed by its llama-bench at the same prompt
length and decode positions as our rows.

llama.cpp is never a dependency of the app: nothing here imports it; its tools run as programs
from PATH, the folder that ../shared/bench/setup_llama.sh builds (~/.cache/llama.cpp-tools:
llama-bench-build/bin/ with llama-bench and llama-quantize, venv-conv/ with the converter's
Python, sdist/ with the converter).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

# Ours -> llama.cpp's type at the same bits per weight (both in blocks with a scale each).
LLAMA_TYPE_FOR = {"int8": "q8_0", "int4": "q4_0"}
HOW_TO_GET = ("build llama.cpp's llama-bench, llama-quantize and its converter's venv with "
              "../shared/bench/setup_llama.sh (into ~/.cache/llama.cpp-tools; "
              "../shared/bench/to_gguf.sh converts a checkpoint by hand)")
# Where setup_llama.sh and a plain llama.cpp build put the programs, relative to PATH.
BIN_FOLDERS = (".", "bin", "llama-bench-build/bin", "build/bin")
CONVERTER_GLOBS = ("convert_hf_to_gguf.py", "sdist/*/vendor/llama.cpp/convert_hf_to_gguf.py")


class LlamaToolsMissing(Exception):
    """One line: what is missing from --llama-bench's folder and how to get it."""


@dataclass(frozen=True)
class LlamaTools:
    bench: Path
    quantize: Path
    python: Path  # the converter's venv (gguf, torch, transformers)
    converter: Path  # convert_hf_to_gguf.py


def find_tools(path: Path) -> LlamaTools:
    """llama.cpp's programs in `path`: the tools folder or its bin folder."""
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise LlamaToolsMissing(f"--llama-bench {path}: no such folder; {HOW_TO_GET}")
    bin_folder = next((path / sub for sub in BIN_FOLDERS
                       if _program(path / sub, "llama-bench") is not None), None)
    if bin_folder is None:
        raise LlamaToolsMissing(f"--llama-bench {path}: no llama-bench in it (nor in "
                                f"{', '.join(BIN_FOLDERS[1:])}); {HOW_TO_GET}")
    bench = _program(bin_folder, "llama-bench")
    quantize = _program(bin_folder, "llama-quantize")
    if quantize is None:
        raise LlamaToolsMissing(f"--llama-bench {path}: no llama-quantize beside llama-bench "
                                f"in {bin_folder}; {HOW_TO_GET}")
    roots = [path, *bin_folder.resolve().parents][:4]  # the tools folder, above bin/ if given it
    python = next((p for root in roots for p in (root / "venv-conv" / "bin" / "python",
                                                 root / "venv-conv" / "Scripts" / "python.exe")
                   if p.is_file()), None)
    converter = next((p for root in roots for pattern in CONVERTER_GLOBS
                      for p in sorted(root.glob(pattern))), None)
    if python is None or converter is None:
        what = "the converter's venv (venv-conv)" if python is None else "convert_hf_to_gguf.py"
        raise LlamaToolsMissing(f"--llama-bench {path}: {what} not found beside its "
                                f"llama-bench; {HOW_TO_GET}")
    assert bench is not None
    return LlamaTools(bench=bench, quantize=quantize, python=python, converter=converter)


def _program(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    return None


def prepare_gguf(tools: LlamaTools, checkpoint: Path, cache_dir: Path, preset: str,
                 llama_types: list[str]) -> dict[str, Path]:
    """GGUF files of `checkpoint` in each of `llama_types` ("q8_0", "q4_0"), converted once
    into `cache_dir` beside the bench's own models, converted again when the checkpoint or
    the converter changes."""
    folder = cache_dir / f"{preset}-gguf"
    stamp = folder / ".converted-from"
    fingerprint = _fingerprint(checkpoint, tools.converter)
    if not (stamp.exists() and stamp.read_text() == fingerprint):
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    files = {kind: folder / f"{preset}-{kind.upper()}.gguf" for kind in llama_types}
    missing = [kind for kind, file in files.items() if not file.exists()]
    if missing:
        f32 = folder / f"{preset}-F32.gguf"
        print(f"converting {checkpoint} to GGUF with llama.cpp's converter", file=sys.stderr)
        _convert(tools, checkpoint, f32)
        for kind in missing:
            print(f"quantising to llama.cpp {kind}", file=sys.stderr)
            partial = files[kind].with_suffix(".partial")
            _run_tool([str(tools.quantize), str(f32), str(partial), kind.upper()],
                      f"llama-quantize to {kind}")
            partial.replace(files[kind])
        f32.unlink()
        stamp.write_text(fingerprint)
    return files


def _fingerprint(checkpoint: Path, converter: Path) -> str:
    """What a GGUF was made from: the checkpoint's weights and config, and the converter."""
    digest = hashlib.sha256()
    for file in (checkpoint / "config.json", checkpoint / "model.safetensors", converter):
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(2**20), b""):
                digest.update(block)
    return digest.hexdigest()


def _convert(tools: LlamaTools, checkpoint: Path, out: Path) -> None:
    """`checkpoint` (Hugging Face GPT-2 layout) -> an F32 GGUF, by llama.cpp's converter, which
    wants n_ctx in the config and chokes on our own keys."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        (staged / "model.safetensors").symlink_to((checkpoint / "model.safetensors").resolve())
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(checkpoint / name, staged / name)
        config = json.loads((checkpoint / "config.json").read_text("utf-8"))
        config = {key: value for key, value in config.items() if not key.startswith("ghostpen")}
        config.setdefault("n_ctx", config.get("n_positions", 1024))
        (staged / "config.json").write_text(json.dumps(config), "utf-8")
        partial = out.with_suffix(".partial")
        _run_tool([str(tools.python), str(tools.converter), str(staged), "--outtype", "f32",
                   "--outfile", str(partial)], "llama.cpp's GGUF converter",
                  env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        partial.replace(out)


def _run_tool(command: list[str], what: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode < 0:  # killed by a signal: no message of its own to pass on
        raise RuntimeError(f"{what} crashed ({_signal_name(-result.returncode)}). If llama.cpp "
                           "was built with GGML_NATIVE on a VM whose CPU reports AMX that the "
                           "VM does not enable, it dies in its AMX kernels: rebuild it with "
                           "-DGGML_NATIVE=OFF, the AVX / AVX-512 options on and "
                           "-DGGML_AMX_TILE=OFF (docs/benchmarks.md, \"Side by side\").")
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise RuntimeError(f"{what} failed (status {result.returncode}): {lines[-1]}")
    return result.stdout


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass(frozen=True)
class LlamaBenchTest:
    """One test of llama-bench's JSON output: a prompt of n_prompt tokens, or n_gen tokens
    decoded one at a time after n_depth tokens already in the cache (not timed)."""
    n_prompt: int
    n_gen: int
    n_depth: int
    samples_ns: list[int]
    model_size: int  # bytes of the model's tensors
    build: str
    settings: str  # what llama-bench chose that the table should say

    @property
    def median_ms(self) -> float:
        return median(self.samples_ns) / 1e6

    @property
    def median_tok_s(self) -> float:
        return (self.n_prompt + self.n_gen) / (median(self.samples_ns) / 1e9)


def parse_llama_bench(output: str) -> list[LlamaBenchTest]:
    """The tests in llama-bench's `-o json` output."""
    try:
        entries = json.loads(output)
        return [LlamaBenchTest(
            n_prompt=int(entry["n_prompt"]), n_gen=int(entry["n_gen"]),
            n_depth=int(entry.get("n_depth", 0)),
            samples_ns=[int(ns) for ns in entry["samples_ns"]],
            model_size=int(entry["model_size"]),
            build=f"{entry['build_commit']} (build {entry['build_number']})",
            settings=(f"{entry['n_threads']} threads, flash attention "
                      f"{'on' if entry.get('flash_attn') == 1 else entry.get('flash_attn')}, "
                      f"{entry.get('type_k')}/{entry.get('type_v')} KV cache"))
            for entry in entries]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"llama-bench's output is not the JSON expected ({error!r}); "
                         "is it a llama-bench of 2025 or later?") from error


def _bench_command(bench: Path, gguf: Path, threads: int, repeats: int) -> list[str]:
    """llama-bench as every row runs it: flash attention on, its default f16 KV cache (the
    memory floor counts on it), JSON out."""
    return [str(bench), "-m", str(gguf), "-t", str(threads), "-r", str(repeats), "-fa", "on",
            "-o", "json"]


def decode_tok_s(bench: Path, gguf: Path, threads: int, repeats: int, depth: int,
                 n: int) -> float:
    """llama.cpp's decode of `n` tokens after `depth` tokens in the cache (tokens fed back
    without sampling), median of `repeats` runs."""
    (decode,) = parse_llama_bench(_run_tool(
        [*_bench_command(bench, gguf, threads, repeats), "-p", "0", "-n", str(n), "-d",
         str(depth)], "llama-bench"))
    return decode.median_tok_s


def measure_llama(bench: Path, gguf: Path, threads: int, repeats: int, prompt: int,
                  decodes: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """One table row timed by llama-bench (run in a worker of its own, so that the peak RSS of
    its children is llama-bench's alone): prefill of `prompt` tokens, and for each of
    `decodes` (row key -> (tokens already in the cache, tokens decoded)) the decode speed,
    medians of `repeats` runs each; flash attention on, its default f16 KV cache (the
    memory floor counts on it)."""
    (prefill,) = parse_llama_bench(_run_tool(
        [*_bench_command(bench, gguf, threads, repeats), "-p", str(prompt), "-n", "0"],
        "llama-bench"))
    row: dict[str, Any] = {f"prefill_{prompt}_ms": prefill.median_ms}
    for key, (depth, n) in decodes.items():
        row[key] = decode_tok_s(bench, gguf, threads, repeats, depth, n)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # bytes on macOS, else KiB
    row.update(peak_rss_mb=peak / 1024 / (1024 if sys.platform == "darwin" else 1),
               model_mb=gguf.stat().st_size / 1e6, tensor_bytes=prefill.model_size,
               provider=f"llama.cpp {prefill.build}",
               settings=prefill.settings)
    return row
