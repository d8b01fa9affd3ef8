"""`python -m app bench lookup`: what prompt lookup saves when the model continues real text.

For each model (by default the trained stand-in and a random GPT-2 124M, both int8), each
sampling mode (greedy, and the app's defaults: temperature 0.8 with its usual chain) and each
prompt (excerpts of the stand-in's held-out English text), the same continuation is written
with lookup off and on, interleaved; "on / off" is the median of those pairs' speed ratios
(robust to a minute of the machine running slow), the rates beside it are totals.
It also counts the continuations that came out identical (they should, but for kernel rounding
between one-token and several-token passes) and the share of draft tokens the model wrote.
With --llama-bench, llama.cpp's q8_0 of each model's checkpoint decodes the same number of
tokens after as many tokens of context (llama-bench, its decode without sampling), once per
round, beside ours: the speed a writer gets from each, as a ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from statistics import median

from app.bench.common import (
    STANDIN_DIR,
    STANDIN_TEXT,
    default_cache_dir,
        machine_description,
    prepare_models,
    prepare_standin,
)
from app.bench.llama import LlamaTools, LlamaToolsMissing, decode_tok_s, find_tools, prepare_gguf
from app.engine.engine import Engine, load_engine
from app.engine.sampling_params import GREEDY, SamplingParams

MODES = {"greedy": replace(GREEDY), "temperature 0.8": SamplingParams()}
PROMPT_TOKENS = 300  # each excerpt's length: the context a continuation starts after


@dataclass
class Tally:
    seconds: dict[bool, float] = field(default_factory=lambda: {False: 0.0, True: 0.0})
    tokens: dict[bool, int] = field(default_factory=lambda: {False: 0, True: 0})
    drafted: int = 0
    written: int = 0
    identical: int = 0
    runs: int = 0
    ratios: list[float] = field(default_factory=list)  # on / off, each prompt and round


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app bench lookup", description=__doc__)
    parser.add_argument("--model", type=Path, action="append", default=None,
                        help="a model folder to time (repeatable); default: the stand-in and "
                             "a random gpt2 (124M), both int8")
    parser.add_argument("--prompts", type=int, default=6,
                        help="excerpts of the held-out text to continue (default 6)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per continuation")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all prompts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where the converted models are kept (default: the bench cache)")
    parser.add_argument("--llama-bench", type=Path, metavar="PATH",
                        help="also time llama.cpp's q8_0 of each model's checkpoint (the folder "
                             "../shared/bench/setup_llama.sh builds, or its bin folder)")
    return parser.parse_args(argv)


def default_models(cache_dir: Path) -> dict[str, Path]:
    return {"stand-in (16M, trained) int8": prepare_standin(cache_dir, "int8"),
            "gpt2 124M (random weights) int8": prepare_models(cache_dir, "gpt2", ["int8"])["int8"]}


def source_checkpoint(folder: Path) -> Path | None:
    """The checkpoint a converted model folder was made from (its manifest's "source"), if it
    names one that is still there."""
    manifest = folder / "manifest.json"
    if not manifest.exists():  # not ours: a foreign export
        return None
    source = Path(json.loads(manifest.read_text("utf-8")).get("source") or "")
    return source if (source / "config.json").exists() else None


def q8_0_files(tools: LlamaTools, models: dict[str, Path], cache_dir: Path) -> dict[str, Path]:
    """llama.cpp's q8_0 GGUF of each model's checkpoint, converted once into `cache_dir` (the
    engine bench's own for the random gpt2: "gpt2-checkpoint" -> "gpt2-gguf")."""
    files = {}
    for name, folder in models.items():
        checkpoint = source_checkpoint(folder)
        if checkpoint is None:
            raise RuntimeError(f"{folder} does not name a checkpoint that is still there "
                               "(its manifest's source), which llama.cpp's converter needs; "
                               "convert it again from its checkpoint")
        preset = checkpoint.name.removesuffix("-checkpoint")
        files[name] = prepare_gguf(tools, checkpoint, cache_dir, preset, ["q8_0"])["q8_0"]
    return files


def _time_llama(rates: list[float], tools: LlamaTools, gguf: Path,
                args: argparse.Namespace) -> None:
    """llama.cpp's decode of as many tokens after PROMPT_TOKENS of context, median of 3."""
    rates.append(decode_tok_s(tools.bench, gguf, args.threads, 3, PROMPT_TOKENS, args.tokens))


def prompts_from_held_out_text(engine: Engine, count: int,
                               length: int = PROMPT_TOKENS) -> list[list[int]]:
    ids = engine.tokenizer.encode((STANDIN_DIR / STANDIN_TEXT).read_text("utf-8"))
    step = max(length, (len(ids) - length) // max(1, count))
    return [ids[start : start + length] for start in range(0, step * count, step)][:count]


def continue_text(engine: Engine, prompt: list[int], params: SamplingParams,
                  lookup: bool) -> tuple[list[int], float]:
    """(tokens written, decode seconds), from a cache that holds nothing yet."""
    generator = engine.generator
    generator.lookup = lookup
    generator.cache.reset()
    tokens = [event.token_id for event in generator.generate(prompt, params)]
    stats = generator.last_stats
    return tokens, stats.new_tokens / stats.decode_tok_s if stats.decode_tok_s else 0.0


def time_model(engine: Engine, args: argparse.Namespace,
               each_round: Callable[[], None] | None = None) -> dict[str, Tally]:
    """Every mode and prompt, lookup off and on, `args.rounds` times; `each_round` is called
    at the start of each round (another engine's timing, interleaved with ours)."""
    prompts = prompts_from_held_out_text(engine, args.prompts)
    tallies = {mode: Tally() for mode in MODES}
    # Warm-up, both ways: a session's first runs allocate, which would land on whichever of
    # lookup off and on goes first.
    for lookup in (False, True):
        continue_text(engine, prompts[0], replace(GREEDY, max_new_tokens=16), lookup)
    for round_index in range(args.rounds):
        if each_round is not None:
            each_round()
        for mode, base in MODES.items():
            tally = tallies[mode]
            for number, prompt in enumerate(prompts):
                params = replace(base, max_new_tokens=args.tokens, seed=number)
                written: dict[bool, list[int]] = {}
                rate: dict[bool, float] = {}
                # Alternate which goes first, so a drift of the machine's speed hits both.
                for lookup in ((False, True) if (round_index + number) % 2 else (True, False)):
                    tokens, seconds = continue_text(engine, prompt, params, lookup)
                    written[lookup] = tokens
                    rate[lookup] = len(tokens) / seconds if seconds else 0.0
                    tally.seconds[lookup] += seconds
                    tally.tokens[lookup] += len(tokens)
                    if lookup:
                        tally.drafted += engine.last_stats.draft_tokens
                        tally.written += engine.last_stats.accepted_draft_tokens
                tally.identical += written[True] == written[False]
                tally.runs += 1
                if rate[False] and rate[True]:
                    tally.ratios.append(rate[True] / rate[False])
    return tallies


def lookup_bench_main(argv: list[str]) -> int:
    args = parse_args(argv)
    cache_dir = args.cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tools = None
    if args.llama_bench is not None:
        try:
            tools = find_tools(args.llama_bench)
        except LlamaToolsMissing as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    models = {folder.name: folder for folder in args.model} if args.model \
        else default_models(cache_dir)
    ggufs: dict[str, Path] = {}
    if tools is not None:
        try:
            ggufs = q8_0_files(tools, models, cache_dir)
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print(f"{time.strftime('%Y-%m-%d %H:%M')}; {machine_description()}; {args.threads} threads; "
          f"{args.prompts} excerpts of {PROMPT_TOKENS} tokens of {STANDIN_TEXT} × "
          f"{args.rounds} rounds, {args.tokens} tokens each")
    if ggufs:
        print(f"llama.cpp q8_0: llama-bench decoding {args.tokens} tokens after "
              f"{PROMPT_TOKENS} of context (without sampling), once per round, median")
    print()
    llama_columns = " | llama.cpp q8_0 (tok/s) | lookup on ÷ q8_0" if ggufs else ""
    print(f"| model | sampling | decode, lookup off (tok/s) | lookup on (tok/s) | on / off, median "
          f"| draft tokens written | identical text{llama_columns} |")
    print("|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if ggufs else ""))
    for name, folder in models.items():
        engine = load_engine(folder, device="cpu", threads=args.threads)
        llama_rates: list[float] = []
        time_llama = None
        if tools is not None and name in ggufs:  # once a round, so drift hits both alike
            time_llama = partial(_time_llama, llama_rates, tools, ggufs[name], args)
        for mode, tally in time_model(engine, args, time_llama).items():
            rate = {on: tally.tokens[on] / tally.seconds[on] if tally.seconds[on] else 0.0
                    for on in (False, True)}
            share = tally.written / tally.drafted if tally.drafted else 0.0
            llama = ""
            if llama_rates:
                q8 = median(llama_rates)
                llama = f" | {q8:.0f} | {rate[True] / q8:.2f}×"
            print(f"| {name} | {mode} | {rate[False]:.0f} | {rate[True]:.0f} | "
                  f"{median(tally.ratios) if tally.ratios else 0.0:.2f}× | "
                  f"{tally.written} of {tally.drafted} "
                  f"({share:.0%}) | {tally.identical} of {tally.runs}{llama} |", flush=True)
    return 0
