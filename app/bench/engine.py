"""`python -m app bench`: GPT-2 speed on this machine, ours against transformers + torch.

Each measurement runs in a fresh subprocess (so peak RSS is that configuration's alone) on a
seeded random checkpoint at real GPT-2 shapes: speed depends on shapes, not on the weights.
Rows: prefill of a 512-token prompt (ms), decode of 128 tokens after a 32-token prompt and of
64 tokens after an 896-token prompt (tok/s, greedy, through the same generate() the app uses),
peak RSS (MB), model size on disk (MB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.bench.common import (
    default_cache_dir,
    machine_description,
    memory_read_gb_s,
    prepare_models,
)

PROMPT_SEED = 1234
REPEATS = 3


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
    long_ids = _prompt_ids(1024)
    gen.feed(long_ids[:64])  # warm-up: first runs allocate
    prefill = []
    for _ in range(REPEATS):
        gen.cache.reset()
        started = time.perf_counter()
        gen.feed(long_ids[:512])
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
        "decode_32_tok_s": median_decode(32, 128),
        "decode_900_tok_s": median_decode(896, 64),
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
            model(ids[:, :512])
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


def _run_worker(kind: str, folder: Path, threads: int, device: str = "cpu") -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "app", "bench", "--worker", kind, "--folder", str(folder),
         "--threads", str(threads), "--device", device],
        capture_output=True, text=True, check=False,
        env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if result.returncode != 0:
        raise RuntimeError(f"{kind} benchmark failed: {result.stderr.strip()[-400:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def format_table(rows: dict[str, dict[str, Any]], threads: int) -> str:
    torch_row = rows.get("transformers+torch fp32")
    lines = [
        f"| engine, {threads} threads, batch 1 | prefill 512 (ms) | decode @32 (tok/s) | "
        "decode @900 (tok/s) | @900 / @32 | peak RSS (MB) | model (MB) | decode vs torch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        ratio = f"{r['decode_32_tok_s'] / torch_row['decode_32_tok_s']:.1f}×" if torch_row else ""
        lines.append(
            f"| {name} | {r['prefill_512_ms']:.0f} | {r['decode_32_tok_s']:.0f} | "
            f"{r['decode_900_tok_s']:.0f} | {r['decode_900_tok_s'] / r['decode_32_tok_s']:.0%} | "
            f"{r['peak_rss_mb']:.0f} | {r['model_mb']:.0f} | {ratio} |")
    return "\n".join(lines)


def engine_bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app bench", description=__doc__ + """
Also: `python -m app bench autocomplete` (keystroke-to-suggestion latency) and
`python -m app bench gui` (GUI-thread stalls while generating; time to show the window).""",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2")
    parser.add_argument("--precisions", default="int8,int4,fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-torch", action="store_true", help="skip transformers + torch")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times each row runs, round-robin (default 3; figures are medians)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "directml", "auto"],
                        help="where Ghostpen's rows run (default cpu; torch's row is always CPU)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.worker == "ours":
            print(json.dumps(measure_ours(args.folder, args.threads, args.device)))
        else:
            print(json.dumps(measure_torch(args.folder, args.threads)))
        return 0
    if args.cache_dir is None:
        args.cache_dir = default_cache_dir()
    precisions = [p for p in args.precisions.split(",") if p]
    folders = prepare_models(args.cache_dir, args.preset, precisions)
    workers: dict[str, tuple[str, Path]] = {}
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError:
            print("transformers + torch not installed: skipping that row "
                  "(pip install -e '.[test]')", file=sys.stderr)
        else:
            workers["transformers+torch fp32"] = ("torch", folders["checkpoint"])
    for precision in precisions:
        workers[f"Ghostpen {precision}"] = ("ours", folders[precision])
    # Round-robin, so that a slow minute of a shared machine lands on every row alike rather
    # than on whichever row ran then; each figure is the median over the rounds.
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in workers}
    bandwidth = [memory_read_gb_s(args.threads)]
    for round_index in range(args.rounds):
        for name, (kind, folder) in workers.items():
            print(f"round {round_index + 1}/{args.rounds}: {name}", file=sys.stderr)
            runs[name].append(_run_worker(kind, folder, args.threads,
                                          args.device if kind == "ours" else "cpu"))
    bandwidth.append(memory_read_gb_s(args.threads))
    print(f"{args.preset}, {machine_description()}; medians of {args.rounds} rounds; memory "
          f"read {bandwidth[0]:.0f} GB/s before, {bandwidth[1]:.0f} GB/s after")
    rows = {}
    for name, results in runs.items():
        provider = str(results[0]["provider"])  # the row's name says where it really ran
        on = "" if provider.startswith(("CPU", "torch")) else f" on {provider}"
        rows[name + on] = _median_row(results)
    print(format_table(rows, args.threads))
    for reason in sorted({str(r.get("fallback_reason") or "") for r in rows.values()} - {""}):
        print(f"note: {reason}")
    return 0


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            row[key] = float(np.median([r[key] for r in runs]))
    return row
