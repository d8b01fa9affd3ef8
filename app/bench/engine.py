"""`python -m app bench`: GPT-2 speed on this machine, ours against transformers + torch.

Each measurement runs in a fresh subprocess (so peak RSS is that configuration's alone) on a
seeded random checkpoint at real GPT-2 shapes: speed depends on shapes, not on the weights.
Rows: prefill of a 512-token prompt (ms), decode of 128 tokens after a 32-token prompt and of
64 tokens after an 896-token prompt (tok/s, greedy, through the same generate() the app uses),
peak RSS (MB), model size on disk (MB), and for our rows and llama.cpp's the memory floor:
the bytes a decoded token must read (weights + KV cache), the fastest decode the memory speed
read beside that row allows for them, and how close decode comes to it. With --llama-bench,
llama.cpp's q8_0 and q4_0 of the same weights run in the same rounds (app/bench/llama.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.bench.common import (
    WITH_PROMPT_GRAPH,
    default_cache_dir,
    machine_description,
    prepare_models,
)
from app.bench.llama import (
    LLAMA_TYPE_FOR,
    LlamaToolsMissing,
    find_tools,
    measure_llama,
    prepare_gguf,
)
from app.bench.memory_floor import (
    decode_floor_tok_s,
    gguf_bytes_per_token,
    kv_bytes_per_token,
    measure_memory_read,
    weight_bytes_per_token,
)

PROMPT_SEED = 1234
REPEATS = 3
TORCH_ROW = "transformers+torch fp32"
PREFILL_TOKENS = 512
# row key -> (prompt tokens, tokens decoded after it)
DECODES = {"decode_32_tok_s": (32, 128), "decode_900_tok_s": (896, 64)}


def _prompt_ids(n: int) -> list[int]:
    import numpy as np

    return [int(i) for i in np.random.default_rng(PROMPT_SEED).integers(0, 50256, n)]


def _peak_rss_mb() -> float:
    """This process's high-water mark. Not ru_maxrss: that survives exec, so a worker started
    by a parent that had just converted a model would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def _folder_mb(folder: Path, names: tuple[str, ...] | None = None) -> float:
    files = [p for p in folder.iterdir() if p.is_file() and (names is None or p.name in names)]
    return sum(p.stat().st_size for p in files) / 1e6


def measure_ours(model: Path, threads: int, device: str = "cpu") -> dict[str, Any]:

    from app.engine.engine import load_engine
    from app.engine.sampling_params import GREEDY

    engine = load_engine(model, device=device, threads=threads)
    gen = engine.generator
    # The decode step itself, as llama-bench and transformers time theirs: greedy text of random
    # weights loops, and prompt lookup would copy the loop (bench lookup measures that part).
    gen.lookup = False
    long_ids = _prompt_ids(1024)
    gen.feed(long_ids[:64])  # warm-up: first runs allocate
    prefill = []
    for _ in range(REPEATS):
        gen.cache.reset()
        started = time.perf_counter()
        gen.feed(long_ids[:PREFILL_TOKENS])
        prefill.append((time.perf_counter() - started) * 1000)

    def decode(prompt_len: int, n: int) -> float:
        gen.cache.reset()
        events = list(gen.generate(long_ids[:prompt_len], GREEDY.replace(max_new_tokens=n)))
        assert len(events) == n or gen.last_stats.stop_reason == "eos"
        return gen.last_stats.decode_tok_s

    row = _row(prefill, decode, _folder_mb(model, ("model.onnx", "model.onnx.data")),
               engine.info.provider)
    row["fallback_reason"] = engine.info.fallback_reason  # why it is not on the GPU asked for
    return row


def _row(prefill_ms: list[float], decode: Callable[[int, int], float], model_mb: float,
         provider: str) -> dict[str, Any]:
    """One table row. Decode figures are medians of REPEATS runs: this machine's neighbours
    move single runs by +-30%."""
    import numpy as np

    def median_decode(prompt_len: int, n: int) -> float:
        return float(np.median([decode(prompt_len, n) for _ in range(REPEATS)]))

    decode(32, 8)  # warm-up
    return {
        "prefill_512_ms": float(np.median(prefill_ms)),
        **{key: median_decode(prompt, n) for key, (prompt, n) in DECODES.items()},
        "peak_rss_mb": _peak_rss_mb(),
        "model_mb": model_mb,
        "provider": provider,
    }


def measure_torch(checkpoint: Path, threads: int) -> dict[str, Any]:
    import torch
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(threads)
    model = GPT2LMHeadModel.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
    ids = torch.tensor([_prompt_ids(1024)])
    with torch.inference_mode():
        model(ids[:, :64])
        prefill = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            model(ids[:, :PREFILL_TOKENS])
            prefill.append((time.perf_counter() - started) * 1000)

        def decode(prompt_len: int, n: int) -> float:
            out = model(ids[:, :prompt_len], use_cache=True)
            started = time.perf_counter()
            for _ in range(n):
                token = out.logits[:, -1:].argmax(-1)
                out = model(token, past_key_values=out.past_key_values, use_cache=True)
            return n / (time.perf_counter() - started)

        return _row(prefill, decode, _folder_mb(checkpoint, ("model.safetensors",)),
                    f"torch {torch.__version__}")


def _run_worker(kind: str, folder: Path, threads: int, device: str = "cpu",
                extra: tuple[str, ...] = ()) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "app", "bench", "--worker", kind, "--folder", str(folder),
         "--threads", str(threads), "--device", device, *extra],
        capture_output=True, text=True, check=False,
        env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if result.returncode != 0:  # the worker's last line is its error: "module.Error: message"
        lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
        message = re.sub(r"^[\w.]+: ", "", lines[-1], count=1)
        raise WorkerFailed(f"bench: the {kind} row failed: {message}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


class WorkerFailed(Exception):
    """A row's worker process failed; the message is one line for the person running it."""


def decode_bytes_per_token(folder: Path) -> dict[str, int]:
    """Per decode row of ours: the bytes a token reads (weights + KV cache at the mean
    position of the tokens timed: 96 for 128 tokens after 32, 928 for 64 after 896)."""
    weights = weight_bytes_per_token(folder)
    return {key: weights + kv_bytes_per_token(folder, prompt + n // 2)
            for key, (prompt, n) in DECODES.items()}


def floor_fractions(run: dict[str, Any], per_token: dict[str, int]) -> dict[str, float]:
    """One round's decode figures of a row over the memory floor at the read beside them
    (run["memory_gb_s"]): "decode_32_of_floor" etc., for the medians over rounds."""
    return {_of_floor(key): run[key] / decode_floor_tok_s(run["memory_gb_s"], per_token[key])
            for key in DECODES}


def _of_floor(key: str) -> str:
    return key.removesuffix("_tok_s") + "_of_floor"  # "decode_32_tok_s" -> "decode_32_of_floor"


def format_table(rows: dict[str, dict[str, Any]], threads: int,
                 floors: dict[str, dict[str, int]] | None = None,
                 versus_llama: dict[str, str] | None = None) -> str:
    """rows: name -> medians. floors: name -> bytes per token of each decode row, for the rows
    that have a memory floor, at the memory speed read beside the row (its "memory_gb_s"; its
    "…_of_floor" fractions, when there, are the medians of each round's own). versus_llama:
    our row -> llama.cpp's row at the same bits, for the speed ratios (above 1: ours is
    faster)."""
    floors = floors or {}
    versus = {ours: llama for ours, llama in (versus_llama or {}).items()
              if ours in rows and llama in rows}
    torch_row = rows.get(TORCH_ROW)
    headers = ["prefill 512 (ms)", "decode @32 (tok/s)", "decode @900 (tok/s)", "@900 / @32",
               "peak RSS (MB)", "model (MB)"]
    if torch_row:
        headers.append("decode vs torch")
    if floors:
        headers += ["MB read / token @32, @900", "memory read beside it (GB/s)",
                    "floor there (tok/s)", "decode % of floor"]
    if versus:
        headers.append("ours ÷ llama.cpp: decode @32, @900, prefill")
    lines = [f"| engine, {threads} threads, batch 1 | " + " | ".join(headers) + " |",
             "|---|" + "---:|" * len(headers)]
    for name, r in rows.items():
        cells = [f"{r['prefill_512_ms']:.0f}", f"{r['decode_32_tok_s']:.0f}",
                 f"{r['decode_900_tok_s']:.0f}",
                 f"{r['decode_900_tok_s'] / r['decode_32_tok_s']:.0%}",
                 f"{r['peak_rss_mb']:.0f}", f"{r['model_mb']:.0f}"]
        if torch_row:
            cells.append(f"{r['decode_32_tok_s'] / torch_row['decode_32_tok_s']:.1f}×")
        if floors:
            per_token = floors.get(name)
            if per_token:
                gb_s = r["memory_gb_s"]
                floor = {key: decode_floor_tok_s(gb_s, per_token[key]) for key in DECODES}
                cells += [", ".join(f"{per_token[key] / 1e6:.0f}" for key in DECODES),
                          f"{gb_s:.0f}", ", ".join(f"{floor[key]:.0f}" for key in DECODES),
                          ", ".join(f"{r.get(_of_floor(key), r[key] / floor[key]):.0%}"
                                    for key in DECODES)]
            else:
                cells += ["", "", "", ""]
        if versus:
            llama = rows.get(versus.get(name, ""))
            cells.append(", ".join([*(f"{r[key] / llama[key]:.2f}×" for key in DECODES),
                                    f"{llama['prefill_512_ms'] / r['prefill_512_ms']:.2f}×"])
                         if llama else "")
        lines.append(f"| {name}{_where(r)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _where(row: dict[str, Any]) -> str:
    """The row's name says where it really ran when that is not the CPU."""
    provider = str(row["provider"])
    return "" if provider.startswith(("CPU", "torch", "llama.cpp")) else f" on {provider}"


def engine_bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app bench", description=__doc__ + """
Also: `python -m app bench autocomplete` (keystroke-to-suggestion latency) and
`python -m app bench gui` (GUI-thread stalls while generating; time to show the window).""",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2")
    parser.add_argument("--precisions", default="int8,int4,fp32",
                        help="rows to time, comma-separated (default int8,int4,fp32); "
                             f"int8{WITH_PROMPT_GRAPH}: int8 with the opt-in prompt graph")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-torch", action="store_true", help="skip transformers + torch")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times each row runs, round-robin (default 3; figures are medians)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "directml", "auto"],
                        help="where Ghostpen's rows run (default cpu; torch's row is always CPU)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--llama-bench", type=Path, metavar="PATH",
                        help="also time llama.cpp's q8_0 and q4_0 of the same weights with the "
                             "llama-bench, llama-quantize and converter in PATH (the folder "
                             "../shared/bench/setup_llama.sh builds, or its bin folder)")
    parser.add_argument("--worker", choices=["ours", "torch", "llama"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    llama_tools = None
    if args.llama_bench is not None:
        try:
            llama_tools = find_tools(args.llama_bench)
        except LlamaToolsMissing as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if args.worker:
        if args.worker == "ours":
            row = measure_ours(args.folder, args.threads, args.device)
        elif args.worker == "torch":
            row = measure_torch(args.folder, args.threads)
        else:
            assert llama_tools is not None, "the llama worker needs --llama-bench"
            row = measure_llama(llama_tools.bench, args.folder, args.threads, REPEATS,
                                PREFILL_TOKENS, DECODES)
        print(json.dumps(row))
        return 0
    if args.cache_dir is None:
        args.cache_dir = default_cache_dir()
    precisions = [p for p in args.precisions.split(",") if p]
    try:
        folders = prepare_models(args.cache_dir, args.preset, precisions)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    llama_files: dict[str, Path] = {}
    if llama_tools is not None:
        try:
            llama_files = prepare_gguf(llama_tools, folders["checkpoint"], args.cache_dir,
                                       args.preset, list(LLAMA_TYPE_FOR.values()))
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    workers: dict[str, tuple[str, Path]] = {}
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError:
            print("transformers + torch not installed: skipping that row "
                  "(pip install -e '.[test]')", file=sys.stderr)
        else:
            workers[TORCH_ROW] = ("torch", folders["checkpoint"])
    versus_llama: dict[str, str] = {}
    for precision in precisions:
        workers[f"Ghostpen {precision}"] = ("ours", folders[precision])
        llama_type = LLAMA_TYPE_FOR.get(precision.removesuffix(WITH_PROMPT_GRAPH), "")
        if llama_type in llama_files:  # next to ours at the same bits
            workers[f"llama.cpp {llama_type}"] = ("llama", llama_files.pop(llama_type))
        if f"llama.cpp {llama_type}" in workers:
            versus_llama[f"Ghostpen {precision}"] = f"llama.cpp {llama_type}"
    for llama_type, file in llama_files.items():  # bits none of our rows has
        workers[f"llama.cpp {llama_type}"] = ("llama", file)
    llama_args = ("--llama-bench", str(args.llama_bench)) if llama_tools else ()
    # Round-robin, so that a slow minute of a shared machine lands on every row alike rather
    # than on whichever row ran then; each figure is the median over the rounds. The memory
    # speed drifts too (±30% in minutes): it is read before each row and after the last, each
    # row's floor is at the faster of the two reads around it (a decode at 100% of it could go
    # no faster then), and its "% of floor" is the median of its rounds' own.
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in workers}
    reads = [measure_memory_read(args.threads, args.cache_dir)]
    for round_index in range(args.rounds):
        for name, (kind, folder) in workers.items():
            print(f"round {round_index + 1}/{args.rounds}: {name}", file=sys.stderr)
            try:
                run = _run_worker(kind, folder, args.threads,
                                  args.device if kind == "ours" else "cpu",
                                  llama_args if kind == "llama" else ())
            except WorkerFailed as failure:
                print(failure, file=sys.stderr)
                return 1
            reads.append(measure_memory_read(args.threads, args.cache_dir))
            run["memory_gb_s"] = max(reads[-2].gb_s, reads[-1].gb_s)
            runs[name].append(run)
    speeds = [read.gb_s for read in reads]
    floors = {name: decode_bytes_per_token(folder) for name, (kind, folder) in workers.items()
              if kind == "ours" and _where(runs[name][0]) == ""}
    floors.update({name: {key: gguf_bytes_per_token(runs[name][0]["tensor_bytes"],
                                                    folders["checkpoint"], prompt + n // 2)
                          for key, (prompt, n) in DECODES.items()}
                   for name, (kind, _) in workers.items() if kind == "llama"})
    for name, per_token in floors.items():
        for run in runs[name]:
            run.update(floor_fractions(run, per_token))
    rows = {name: _median_row(results) for name, results in runs.items()}
    print(f"{args.preset}, {machine_description()}; medians of {args.rounds} rounds; memory "
          f"read {min(speeds):.0f}–{max(speeds):.0f} GB/s over the run ({reads[0].kernel}), "
          f"before each row and after the last")
    llama_rows = [row for name, row in rows.items() if workers[name][0] == "llama"]
    if llama_rows:
        print(f"{llama_rows[0]['provider']}: llama-bench, {llama_rows[0]['settings']}, "
              f"decode of tokens fed back without sampling")
    print(format_table(rows, args.threads, floors, versus_llama))
    for reason in sorted({str(r.get("fallback_reason") or "") for r in rows.values()} - {""}):
        print(f"note: {reason}")
    if reads[0].note:
        print(f"note: {reads[0].note}")
    return 0


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            row[key] = float(np.median([r[key] for r in runs]))
    return row
