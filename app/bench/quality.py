"""`python -m app bench quality`: what each precision costs in quality, beside its speed.

A trained checkpoint (default: the stand-in GPT-2 in ../shared/standin beside the repository)
is converted to each precision and scored on held-out text (default: its val-dev.txt):
  PPL          perplexity over non-overlapping 512-token windows, each token scored from the
               tokens before it in its window, log-softmax in fp32: the whole window in one
               forward (the prompt path), over every window
  PPL t×t      the same, fed token by token through the KV cache as generation runs, over the
               first --windows windows (the decode path: it reads the int8 KV cache back)
  KL, top-1    mean KL divergence of each token's distribution from our fp32 conversion's, and
               how often the most likely token is fp32's (prompt path, every window)
  MB, tok/s    model files on disk; greedy decode after a 32-token prompt, --threads threads,
               median of 3 rounds run round-robin over the rows
--outliers adds the same rows for a copy of the checkpoint that computes the same function in
fp32 but has outlier channels, as trained GPT-2s do; --variants tries quantisation knobs on that
copy. llama.cpp's rows come from its own tools (../shared/bench/setup_llama.sh builds them).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.bench.common import STANDIN_DIR, STANDIN_TEXT, machine_description
from app.engine.errors import GhostpenError, user_message
from models.quality_gate import log_softmax
from models.smoothing import NORM_CONSUMERS, SMOOTH_ALPHA, rescale_channels

if TYPE_CHECKING:
    from app.engine.engine import Engine
    from app.engine.runner_protocol import Runner, TokenCache
    from models.checkpoint import GPT2Config
    from models.graph import QuantOptions

    Checkpoint = tuple[GPT2Config, dict[str, np.ndarray]]

WINDOW = 512
PRECISIONS = ("fp32", "fp16", "int8", "int4")
REFERENCE = "fp32"
# Outlier copy: in every block, this many seeded output channels of ln_1 and of ln_2 scaled by
# s drawn from OUTLIER_SCALES (trained GPT-2's outlier channels are tens to hundreds of times
# the median channel; the stand-in's largest is 1.6 times).
OUTLIER_CHANNELS = 4
OUTLIER_SCALES = (10.0, 100.0)
DECODE_PROMPT_TOKENS = 32
DECODE_NEW_TOKENS = 64
DECODE_ROUNDS = 3
LLAMA_TYPES = ("Q8_0", "Q4_0", "Q4_K_M")
LLAMA_SETUP = "bash ../shared/bench/setup_llama.sh"  # from the repository root

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- scoring -----------------------------------------------------------------------------------
# Shapes: T tokens in a window, V vocab.

def token_windows(ids: Sequence[int], window: int = WINDOW) -> list[np.ndarray]:
    """Non-overlapping windows of `window` tokens; the last may be shorter (one of a single
    token predicts nothing and is dropped)."""
    pieces = [np.asarray(ids[i:i + window], np.int64) for i in range(0, len(ids), window)]
    return [piece for piece in pieces if len(piece) >= 2]


def window_log_probs(runner: Runner[Any], cache: TokenCache, window: np.ndarray) -> np.ndarray:
    """[T] ids -> [T-1, V]: the log-probability of every next token, from one forward of the
    whole window (the graph returns every position's logits when asked to keep T)."""
    cache.reset()
    logits = runner.forward(window[None, :], cache, keep=len(window))
    return log_softmax(logits[0, :-1])


def token_by_token_nll(runner: Runner[Any], cache: TokenCache, window: np.ndarray) -> float:
    """Summed negative log-likelihood of window[1:], each token's logits from feeding the
    tokens before it one at a time through the KV cache, as generation does."""
    cache.reset()
    total = 0.0
    for t in range(len(window) - 1):
        logits = runner.forward(window[None, t:t + 1], cache, keep=1)
        total -= float(log_softmax(logits[0, 0])[window[t + 1]])
    return total


@dataclass
class Score:
    """Sums over the scored tokens; the figures are their means."""

    nll: float = 0.0
    tokens: int = 0
    kl: float = 0.0
    top1_same: int = 0
    tbt_nll: float = 0.0  # token by token
    tbt_tokens: int = 0

    @property
    def ppl(self) -> float:
        return math.exp(self.nll / self.tokens)

    @property
    def tbt_ppl(self) -> float:
        return math.exp(self.tbt_nll / self.tbt_tokens) if self.tbt_tokens else math.nan

    @property
    def mean_kl(self) -> float:
        return self.kl / self.tokens

    @property
    def top1(self) -> float:
        return self.top1_same / self.tokens


def score_runners(runners: dict[str, Runner[Any]], reference: str, windows: Sequence[np.ndarray],
                  tbt_windows: int, progress: Progress = _stderr) -> dict[str, Score]:
    """Every runner on every window, window by window, so that only one window's reference
    log-probabilities are held ([T-1, V] fp32, 100 MB at T = 512): KL and top-1 are against
    runners[reference]. The first `tbt_windows` windows are also scored token by token."""
    scores = {name: Score() for name in runners}
    caches = {name: runner.new_cache() for name, runner in runners.items()}
    for index, window in enumerate(windows):
        progress(f"window {index + 1}/{len(windows)}")
        targets, rows = window[1:], np.arange(len(window) - 1)
        ref = window_log_probs(runners[reference], caches[reference], window)
        ref_p, ref_top = np.exp(ref), ref.argmax(-1)
        for name, runner in runners.items():
            log_p = ref if name == reference else window_log_probs(runner, caches[name], window)
            score = scores[name]
            score.nll -= float(log_p[rows, targets].sum(dtype=np.float64))
            score.tokens += len(targets)
            score.kl += float((ref_p * (ref - log_p)).sum(dtype=np.float64))
            score.top1_same += int((log_p.argmax(-1) == ref_top).sum())
            if index < tbt_windows:
                score.tbt_nll += token_by_token_nll(runner, caches[name], window)
                score.tbt_tokens += len(targets)
    return scores


# --- checkpoints that compute the same function -------------------------------------------------

def add_outliers(weights: dict[str, np.ndarray], n_layer: int, n_embd: int,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """A copy with outlier channels: in every block, OUTLIER_CHANNELS seeded output channels of
    ln_1 and of ln_2 scaled by s in OUTLIER_SCALES, and the rows of c_attn / c_fc they feed
    divided by s. Only fp32 round-off tells it from the original."""
    rng = np.random.default_rng(seed)
    out = dict(weights)
    for i in range(n_layer):
        for norm, consumer in NORM_CONSUMERS:
            channels = rng.choice(n_embd, OUTLIER_CHANNELS, replace=False)
            scales = rng.uniform(*OUTLIER_SCALES, OUTLIER_CHANNELS).astype(np.float32)
            rescale_channels(out, f"h.{i}.{norm}", f"h.{i}.{consumer}", channels, scales)
    return out


def write_checkpoint(src: Path, out: Path, weights: dict[str, np.ndarray]) -> Path:
    """`weights` as a Hugging Face checkpoint folder, with src's config and tokenizer files (so
    that llama.cpp's converter reads it too)."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True)
    save_file({name: np.ascontiguousarray(a, np.float32) for name, a in weights.items()},
              str(out / "model.safetensors"), metadata={"format": "pt"})
    for name in ("config.json", "vocab.json", "merges.txt", "tokenizer.json",
                 "tokenizer_config.json"):
        if (src / name).exists():
            shutil.copyfile(src / name, out / name)
    return out


# --- rows ---------------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the table: a model folder of ours, or a GGUF file of llama.cpp's."""

    name: str
    path: Path
    base: str  # the row whose perplexity the Δ columns are measured from
    ppl: float = math.nan
    tbt_ppl: float = math.nan  # token by token
    kl: float = math.nan
    top1: float = math.nan
    size_mb: float = math.nan
    decode_tok_s: float = math.nan

    def take(self, score: Score) -> None:
        self.ppl, self.tbt_ppl, self.kl, self.top1 = (score.ppl, score.tbt_ppl, score.mean_kl,
                                                      score.top1)


@dataclass(frozen=True)
class Variant:
    name: str
    quant: QuantOptions | None = None  # None: the defaults
    smooth: bool = True  # the converter's default for int8 / int4


def variants_for(precision: str, n_embd: int) -> list[Variant]:
    """The knobs tried one at a time on a weight-quantised precision: MatMulNBits'
    accuracy_level, the block size (those that differ from the default), zero points (on when
    the default is off, and off when on), for int4 the LM head in 4 bits (the default keeps it
    int8) and the MLP's c_proj in int8, and leaving out SmoothQuant (the default folds it in
    at SMOOTH_ALPHA); for int8 the matrices per column (DynamicQuantizeMatMul)."""
    from models.graph import DEFAULT_QUANT, SYMMETRIC, WEIGHT_BITS, QuantOptions

    bits = WEIGHT_BITS[precision]
    widths = (n_embd, 4 * n_embd)  # every K the blocks run along
    found = [Variant(f"accuracy_level {level}", QuantOptions(accuracy_level=level))
             for level in (1, 0)]
    for block in (32, 64, 128, 256):
        quant = QuantOptions(block_size=block)
        if any(k % block for k in widths):
            continue
        if [quant.block_for(k, bits) for k in widths] != \
                [DEFAULT_QUANT.block_for(k, bits) for k in widths]:
            found.append(Variant(f"block {block}", quant))
    symmetric = not SYMMETRIC[bits]
    found.append(Variant("symmetric, no zero points" if symmetric else "zero points",
                         QuantOptions(symmetric=symmetric)))
    if bits == 8:
        found.append(Variant("per-column int8 (DynamicQuantizeMatMul)",
                             QuantOptions(per_column=True)))
    if bits == 4:
        found.append(Variant("LM head int4", QuantOptions(head_bits=4)))
        found.append(Variant("MLP c_proj int8", QuantOptions(int8_matrices=("mlp.c_proj",))))
    found.append(Variant(f"no SmoothQuant (default α {SMOOTH_ALPHA})", smooth=False))
    return found


def _folder_mb(folder: Path) -> float:
    return sum((folder / name).stat().st_size
               for name in ("model.onnx", "model.onnx.data")) / 1e6


def convert(src: Path, out: Path, precision: str, checkpoint: Checkpoint | None = None,
            quant: QuantOptions | None = None, smooth: bool = True) -> Path:
    """`src` converted by our converter into `out`; `checkpoint`: its weights, already read
    (or changed: the outlier copy); `smooth`: False leaves out the converter's SmoothQuant."""
    from models.export import export_model
    from models.graph import DEFAULT_QUANT

    export_model(src, out, precision, progress=lambda _: None, checkpoint=checkpoint,
                 quant=quant or DEFAULT_QUANT, smooth=smooth)
    return out


def measure_decode(engines: dict[str, Engine], prompt_ids: list[int]) -> dict[str, float]:
    """Greedy decode tok/s of each engine, the median of DECODE_ROUNDS rounds run round-robin,
    so that a slow minute of a shared machine lands on every row alike."""
    from app.engine.sampling_params import GREEDY

    runs: dict[str, list[float]] = {name: [] for name in engines}
    for round_index in range(DECODE_ROUNDS + 1):  # round 0 warms up: first runs allocate
        for name, engine in engines.items():
            generator = engine.generator
            generator.cache.reset()
            new_tokens = 8 if round_index == 0 else DECODE_NEW_TOKENS
            list(generator.generate(prompt_ids, GREEDY.replace(max_new_tokens=new_tokens)))
            if round_index:
                runs[name].append(generator.last_stats.decode_tok_s)
    return {name: float(np.median(values)) for name, values in runs.items()}


# --- llama.cpp ----------------------------------------------------------------------------------

def default_llama_dir() -> Path:
    """Where ../shared/bench/setup_llama.sh builds the tools ($LLAMA_TOOLS or its default)."""
    if os.environ.get("LLAMA_TOOLS"):
        return Path(os.environ["LLAMA_TOOLS"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "llama.cpp-tools"


@dataclass(frozen=True)
class LlamaTools:
    bin: Path  # llama-perplexity, llama-quantize, llama-bench
    python: Path  # a Python with gguf, torch and transformers
    converter: Path  # convert_hf_to_gguf.py

    @classmethod
    def find(cls, folder: Path) -> LlamaTools | None:
        """The tools in `folder` laid out as setup_llama.sh makes them, or None."""
        bins = [folder / "llama-bench-build" / "bin", folder]
        converters = sorted(folder.glob("sdist/*/vendor/llama.cpp/convert_hf_to_gguf.py"))
        python = folder / "venv-conv" / "bin" / "python"
        for bin_dir in bins:
            names = ("llama-perplexity", "llama-quantize", "llama-bench")
            if all((bin_dir / name).is_file() for name in names) and converters and \
                    python.is_file():
                return cls(bin_dir, python, converters[-1])
        return None

    def to_gguf(self, checkpoint: Path, out_prefix: Path, types: Sequence[str]) -> dict[str, Path]:
        """{"F32": …, "Q8_0": …}: the checkpoint converted by llama.cpp's own converter, then
        quantised by llama-quantize (what to_gguf.sh does)."""
        staging = out_prefix.parent / (out_prefix.name + "-hf")
        staging.mkdir()
        (staging / "model.safetensors").symlink_to((checkpoint / "model.safetensors").resolve())
        for name in ("vocab.json", "merges.txt"):
            shutil.copyfile(checkpoint / name, staging / name)
        config = json.loads((checkpoint / "config.json").read_text("utf-8"))
        config.setdefault("n_ctx", config.get("n_positions", 1024))
        config = {k: v for k, v in config.items() if not k.startswith("ghostpen")}
        (staging / "config.json").write_text(json.dumps(config), "utf-8")
        files = {"F32": out_prefix.parent / f"{out_prefix.name}-F32.gguf"}
        _run([str(self.python), str(self.converter), str(staging), "--outtype", "f32",
              "--outfile", str(files["F32"])], env={**os.environ, "HF_HUB_OFFLINE": "1"})
        for kind in types:
            files[kind] = out_prefix.parent / f"{out_prefix.name}-{kind}.gguf"
            _run([str(self.bin / "llama-quantize"), str(files["F32"]), str(files[kind]), kind])
        return files

    def perplexity(self, model: Path, text: Path, threads: int, kld_base: Path,
                   write_base: bool, chunks: int = 0) -> dict[str, float]:
        """llama-perplexity at a 512 context: it scores the second half of each chunk (the first
        half is context), so its figure is comparable within its own rows only. With
        `write_base` the run saves its log-probabilities to `kld_base`; otherwise it reads them
        and reports KL divergence and top-token agreement against them. `chunks`: only the
        first so many (0: all)."""
        command = [str(self.bin / "llama-perplexity"), "-m", str(model), "-c", str(WINDOW),
                   "-b", str(WINDOW), "-t", str(threads), "--kl-divergence-base", str(kld_base)]
        command += ["-f", str(text)] if write_base else ["--kl-divergence"]
        command += ["--chunks", str(chunks)] if chunks else []
        output = _run(command)
        if write_base:
            found = re.search(r"Final estimate: PPL = ([\d.]+)", output)
            if not found:
                raise GhostpenError(f"llama-perplexity printed no PPL for {model.name}")
            return {"ppl": float(found.group(1)), "kl": 0.0, "top1": 1.0}
        ppl = re.search(r"Mean PPL\(Q\)\s*:\s*([\d.]+)", output)
        kl = re.search(r"Mean\s+KLD:\s*([-\d.e]+)", output)
        top = re.search(r"Same top p:\s*([\d.]+)", output)
        if not (ppl and kl and top):
            raise GhostpenError(f"llama-perplexity's KL output for {model.name} was not "
                                "understood")
        return {"ppl": float(ppl.group(1)), "kl": float(kl.group(1)),
                "top1": float(top.group(1)) / 100}

    def decode_tok_s(self, model: Path, threads: int) -> float:
        """llama-bench's decode of DECODE_NEW_TOKENS tokens, one run."""
        output = _run([str(self.bin / "llama-bench"), "-m", str(model), "-p", "0", "-n",
                       str(DECODE_NEW_TOKENS), "-t", str(threads), "-r", "1", "-o", "json"])
        return float(json.loads(output[output.index("["):])[0]["avg_ts"])


def _run(command: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise GhostpenError(f"{Path(command[0]).name} failed: {tail[0]}")
    return result.stdout + result.stderr


# --- the table ----------------------------------------------------------------------------------

def _figure(value: float, spec: str) -> str:
    return format(value + 0.0, spec) if math.isfinite(value) else "–"  # + 0.0: no "-0.00"


def _delta(value: float, base: float) -> str:
    return _figure((value / base - 1) * 100, "+.3f") + "%" if math.isfinite(value) else "–"


def format_table(rows: list[Row], tbt_windows: int) -> str:
    by_name = {row.name: row for row in rows}
    lines = [
        f"| model | PPL | Δ PPL | PPL token by token ({tbt_windows} windows) | Δ | "
        "mean KL vs fp32 | top-1 = fp32 | MB | decode tok/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        base = by_name[row.base]
        lines.append(" | ".join([
            f"| {row.name}", _figure(row.ppl, ".4f"), _delta(row.ppl, base.ppl),
            _figure(row.tbt_ppl, ".4f"), _delta(row.tbt_ppl, base.tbt_ppl),
            _figure(row.kl, ".2e"), _figure(row.top1 * 100, ".2f") + "%",
            _figure(row.size_mb, ".1f"), _figure(row.decode_tok_s, ".0f")]) + " |")
    return "\n".join(lines)


# --- the bench ----------------------------------------------------------------------------------

def quality_bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app bench quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=STANDIN_DIR,
                        help="Hugging Face GPT-2 checkpoint folder (default: the stand-in, "
                             f"{STANDIN_DIR})")
    parser.add_argument("--text", type=Path, default=None,
                        help=f"held-out text to score (default: {STANDIN_TEXT} beside --src)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS),
                        help="comma-separated, of fp32,fp16,int8,int4 (fp32 is always scored: "
                             "KL and top-1 are against it)")
    parser.add_argument("--outliers", action="store_true",
                        help="add the rows of an outlier copy of the checkpoint (same function)")
    parser.add_argument("--variants", action="store_true",
                        help="try accuracy_level, block size, zero points, the int4 LM head "
                             "and SmoothQuant on the outlier copy (implies --outliers)")
    parser.add_argument("--windows", type=int, default=3,
                        help="windows scored token by token through the KV cache (default 3)")
    parser.add_argument("--max-windows", type=int, default=0,
                        help="score only the first N windows (default: all)")
    parser.add_argument("--llama-dir", type=Path, default=None,
                        help="llama.cpp tools as setup_llama.sh lays them out (default: "
                             "$LLAMA_TOOLS or ~/.cache/llama.cpp-tools, when there)")
    parser.add_argument("--threads", type=int, default=2,
                        help="onnxruntime / llama.cpp threads (default 2, as on a laptop)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the outlier channels")
    args = parser.parse_args(argv)
    try:
        return _run_bench(args)
    except GhostpenError as error:
        print(f"error: {user_message(error, 'the quality bench failed')}", file=sys.stderr)
        return 2


def _run_bench(args: argparse.Namespace) -> int:
    from app.engine.engine import load_engine
    from app.engine.tokenizer import Tokenizer
    from models.checkpoint import load_checkpoint

    src: Path = args.src
    text_path: Path = args.text or src / STANDIN_TEXT
    if not (src / "config.json").exists():
        raise GhostpenError(f"{src} is not a checkpoint folder (no config.json); pass --src.")
    if not text_path.is_file():
        raise GhostpenError(f"{text_path} does not exist; pass the text to score with --text.")
    precisions = [p for p in args.precisions.split(",") if p]
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        raise GhostpenError(f"unknown precision {unknown[0]}; choose from "
                            f"{','.join(PRECISIONS)}.")
    precisions = [REFERENCE, *(p for p in precisions if p != REFERENCE)]
    started, load_before = datetime.datetime.now(), os.getloadavg()

    tokenizer = Tokenizer.from_dir(src)
    ids = tokenizer.encode(text_path.read_text("utf-8"))
    windows = token_windows(ids)[: args.max_windows or None]
    tbt_windows = min(args.windows, len(windows))
    checkpoint = load_checkpoint(src)
    config = checkpoint[0]
    with tempfile.TemporaryDirectory(prefix="ghostpen-quality-") as tmp_name:
        tmp = Path(tmp_name)
        _stderr(f"converting {src} to {', '.join(precisions)}")
        rows, sources = _our_rows(args, src, checkpoint, precisions, tmp)
        engines = {row.name: load_engine(row.path, device="cpu", threads=args.threads)
                   for row in rows}
        runners = {name: engine.generator.runner for name, engine in engines.items()}
        _stderr(f"scoring {len(rows)} models on {len(windows)} windows of {text_path.name}")
        scores = score_runners(runners, rows[0].name, windows, tbt_windows)
        _stderr("timing greedy decode")
        speeds = measure_decode(engines, ids[:DECODE_PROMPT_TOKENS])
        for row in rows:
            row.take(scores[row.name])
            row.decode_tok_s, row.size_mb = speeds[row.name], _folder_mb(row.path)
        del engines, runners

        llama_dir = args.llama_dir or default_llama_dir()
        tools = LlamaTools.find(llama_dir)
        if tools is None:
            llama_note = (f"llama.cpp rows: no llama.cpp tools in {llama_dir}; build them with "
                          f"`{LLAMA_SETUP}` (~10 min, PyPI only) or pass --llama-dir.")
        else:
            rows += _llama_rows(tools, sources, text_path, args.threads, args.max_windows, tmp)
            llama_note = (f"llama.cpp rows ({tools.bin}): llama-perplexity at context {WINDOW} "
                          "scores the second half of each chunk, so their PPL compares with "
                          "llama.cpp's F32 row only; their KL and top-1 are against that F32.")

    print(f"quality of {src} ({config.n_layer} layers × {config.n_embd}) on {text_path}: "
          f"{len(ids):,} tokens, {len(windows)} windows of {WINDOW}, "
          f"{sum(len(w) - 1 for w in windows):,} tokens scored")
    print(f"{started:%Y-%m-%d %H:%M}, {machine_description()}, {args.threads} threads; "
          f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(format_table(rows, tbt_windows))
    if len(sources) > 1:
        original, copy = (next(r.ppl for r in rows if r.name == f"{prefix}ours {REFERENCE}")
                          for prefix in ("", OUTLIER_PREFIX))
        same = f"{original:.5g}" == f"{copy:.5g}"
        print(f"outlier copy: fp32 PPL {copy:.6f} vs the original's {original:.6f}, "
              f"{'equal' if same else 'NOT EQUAL'} to 5 significant digits "
              f"({OUTLIER_CHANNELS} channels of every ln_1 and ln_2 scaled by "
              f"{OUTLIER_SCALES[0]:g} to {OUTLIER_SCALES[1]:g}, seed {args.seed})")
    print(llama_note)
    return 0


OUTLIER_PREFIX = "outlier copy, "


def _our_rows(args: argparse.Namespace, src: Path, checkpoint: Checkpoint,
              precisions: list[str], tmp: Path) -> tuple[list[Row], list[tuple[str, Path]]]:
    """Our conversions (the first row is the fp32 reference) and the checkpoints they came from
    as (row name prefix, folder), for llama.cpp to convert too."""
    config, weights = checkpoint
    reference = f"ours {REFERENCE}"
    rows = [Row(f"ours {p}", convert(src, tmp / f"ours-{p}", p, checkpoint), reference)
            for p in precisions]
    sources = [("", src)]
    if not (args.outliers or args.variants):
        return rows, sources
    outlier_weights = add_outliers(weights, config.n_layer, config.n_embd, args.seed)
    outlier_src = write_checkpoint(src, tmp / "outlier-checkpoint", outlier_weights)
    sources.append((OUTLIER_PREFIX, outlier_src))
    rows += [Row(f"{OUTLIER_PREFIX}ours {p}", convert(outlier_src, tmp / f"outlier-{p}", p,
                                                     (config, outlier_weights)), reference)
             for p in precisions]
    if args.variants:
        for precision in (p for p in precisions if p in ("int8", "int4")):
            for variant in variants_for(precision, config.n_embd):
                folder = tmp / f"variant-{precision}-{re.sub(r'[^a-z0-9]+', '-', variant.name)}"
                convert(outlier_src, folder, precision, (config, outlier_weights), variant.quant,
                        variant.smooth)
                rows.append(Row(f"{OUTLIER_PREFIX}ours {precision}, {variant.name}", folder,
                                reference))
    return rows, sources


def _llama_rows(tools: LlamaTools, sources: list[tuple[str, Path]], text: Path, threads: int,
                chunks: int, tmp: Path) -> list[Row]:
    """llama.cpp's F32 and LLAMA_TYPES of each checkpoint; KL and top-1 against the first
    checkpoint's F32 (the outlier copy computes the same function)."""
    rows: list[Row] = []
    kld_base = tmp / "llama-f32.kld"
    for index, (prefix, checkpoint) in enumerate(sources):
        _stderr(f"llama.cpp: converting {checkpoint}")
        files = tools.to_gguf(checkpoint, tmp / f"gguf-{index}", LLAMA_TYPES)
        for kind, path in files.items():
            _stderr(f"llama.cpp: {prefix}{kind}")
            figures = tools.perplexity(path, text, threads, kld_base,
                                       write_base=not kld_base.exists(), chunks=chunks)
            rows.append(Row(f"{prefix}llama.cpp {kind}", path, "llama.cpp F32",
                            ppl=figures["ppl"], kl=figures["kl"], top1=figures["top1"],
                            size_mb=path.stat().st_size / 1e6))
    _stderr("llama.cpp: timing decode")
    runs: list[list[float]] = [[] for _ in rows]
    for _ in range(DECODE_ROUNDS):  # round-robin, as for our rows
        for row, speeds in zip(rows, runs, strict=True):
            speeds.append(tools.decode_tok_s(row.path, threads))
    for row, speeds in zip(rows, runs, strict=True):
        row.decode_tok_s = float(np.median(speeds))
    return rows
