"""`python -m app bench lookup`: what prompt lookup saves when the model continues real text.

For each model (by default the trained stand-in and a random GPT-2 124M, both int8), each
sampling mode (greedy, and the app's defaults: temperature 0.8 with its usual chain) and each
prompt (excerpts of the stand-in's held-out English text), the same continuation is written
with lookup off and on, interleaved, and the decode rates compared as ratios within the run.
It also counts the continuations that came out identical (they should, but for kernel rounding
between one-token and several-token passes) and the share of draft tokens the model wrote.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.bench.common import (
    STANDIN_DIR,
    STANDIN_TEXT,
    default_cache_dir,
        machine_description,
    prepare_models,
    prepare_standin,
)
from app.engine.engine import Engine, load_engine
from app.engine.sampling_params import GREEDY, SamplingParams

MODES = {"greedy": replace(GREEDY), "temperature 0.8": SamplingParams()}


@dataclass
class Tally:
    seconds: dict[bool, float] = field(default_factory=lambda: {False: 0.0, True: 0.0})
    tokens: dict[bool, int] = field(default_factory=lambda: {False: 0, True: 0})
    drafted: int = 0
    written: int = 0
    identical: int = 0
    runs: int = 0


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
    return parser.parse_args(argv)


def default_models(cache_dir: Path) -> dict[str, Path]:
    return {"stand-in (16M, trained) int8": prepare_standin(cache_dir, "int8"),
            "gpt2 124M (random weights) int8": prepare_models(cache_dir, "gpt2", ["int8"])["int8"]}


def prompts_from_held_out_text(engine: Engine, count: int, length: int = 300) -> list[list[int]]:
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


def time_model(engine: Engine, args: argparse.Namespace) -> dict[str, Tally]:
    prompts = prompts_from_held_out_text(engine, args.prompts)
    tallies = {mode: Tally() for mode in MODES}
    for round_index in range(args.rounds):
        for mode, base in MODES.items():
            tally = tallies[mode]
            for number, prompt in enumerate(prompts):
                params = replace(base, max_new_tokens=args.tokens, seed=number)
                written: dict[bool, list[int]] = {}
                # Alternate which goes first, so a drift of the machine's speed hits both.
                for lookup in ((False, True) if (round_index + number) % 2 else (True, False)):
                    tokens, seconds = continue_text(engine, prompt, params, lookup)
                    written[lookup] = tokens
                    tally.seconds[lookup] += seconds
                    tally.tokens[lookup] += len(tokens)
                    if lookup:
                        tally.drafted += engine.last_stats.draft_tokens
                        tally.written += engine.last_stats.accepted_draft_tokens
                tally.identical += written[True] == written[False]
                tally.runs += 1
    return tallies


def lookup_bench_main(argv: list[str]) -> int:
    args = parse_args(argv)
    cache_dir = args.cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    models = {folder.name: folder for folder in args.model} if args.model \
        else default_models(cache_dir)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}; {machine_description()}; {args.threads} threads; "
          f"{args.prompts} excerpts of {STANDIN_TEXT} × {args.rounds} rounds, "
          f"{args.tokens} tokens each")
    print()
    print("| model | sampling | decode, lookup off (tok/s) | lookup on (tok/s) | on / off "
          "| draft tokens written | identical text |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, folder in models.items():
        engine = load_engine(folder, device="cpu", threads=args.threads)
        for mode, tally in time_model(engine, args).items():
            rate = {on: tally.tokens[on] / tally.seconds[on] if tally.seconds[on] else 0.0
                    for on in (False, True)}
            share = tally.written / tally.drafted if tally.drafted else 0.0
            print(f"| {name} | {mode} | {rate[False]:.0f} | {rate[True]:.0f} | "
                  f"{rate[True] / rate[False]:.2f}× | {tally.written} of {tally.drafted} "
                  f"({share:.0%}) | {tally.identical} of {tally.runs} |", flush=True)
    return 0
