"""`python -m app bench speculate --sizes gpt2-medium,gpt2-large,gpt2-xl`: speculative decoding
at the big sizes, on seeded random checkpoints at their real shapes.

For each size (one at a time: gpt2-xl's fp32 checkpoint is 6.2 GB) and precision, greedy
continuations of excerpts of the stand-in's held-out text are written four ways, interleaved:
plain (no guessing), prompt lookup, a draft model (a smaller size, same vocabulary) with the
generator's cost-aware draft length, and the draft model with every guess checked (the
strictest test of exactness: every token after the first comes out of a pass of two or more).
Each speculative continuation is compared with the plain one token by token; where they part,
the plain run's top-1 minus top-2 logit there is reported, beside the median over all tokens.

Then what a pass costs: a pass of S tokens against one (the model's and the draft's), how far a
pass of 8 tokens' logits are from 8 passes of one at the same positions, and the acceptance
rate a draft would need for 2x the plain decode, given those costs.

Precisions: fp32, int8 (the CPU default), and int8-al1: int8 weights computed in fp32
(MatMulNBits accuracy_level 1 instead of 4), to tell the int8-activation kernels' rounding
apart from the generator's logic; not a way to run (its decode step took 14 times int8's at
124M, 2026-12-02).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from app.bench.common import (
    STANDIN_TEXT,
    default_cache_dir,
    machine_description,
    made_by_this_converter,
    prepare_models,
    stamp_converter,
)
from app.bench.lookup import prompts_from_held_out_text
from app.engine.draft_model import DraftModel
from app.engine.engine import Engine, load_engine
from app.engine.events import TokenEvent
from app.engine.runner_protocol import Runner
from app.engine.sampling_params import GREEDY

DEFAULT_SIZES = "gpt2-medium,gpt2-large,gpt2-xl"
PRECISIONS = ("int8", "fp32", "int8-al1")


@dataclass(frozen=True)
class Way:
    """One way of writing the same continuation."""

    lookup: bool
    draft: bool
    always: bool  # check every guess, whatever it costs


WAYS = {
    "plain": Way(lookup=False, draft=False, always=False),
    "prompt lookup": Way(lookup=True, draft=False, always=False),
    "draft model": Way(lookup=False, draft=True, always=False),
    "draft model, every guess checked": Way(lookup=False, draft=True, always=True),
}


@dataclass
class Tally:
    seconds: float = 0.0
    tokens: int = 0
    drafted: int = 0
    written: int = 0
    identical: int = 0
    runs: int = 0
    ratios: list[float] = field(default_factory=list)  # its rate / plain's, prompt by prompt
    parted_at: list[int] = field(default_factory=list)  # token index where it left plain
    margins: list[float] = field(default_factory=list)  # plain's top-1 minus top-2 logit there


@dataclass
class Written:
    tokens: list[int]
    events: list[TokenEvent]
    seconds: float
    drafted: int
    written: int


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app bench speculate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=DEFAULT_SIZES,
                        help=f"GPT-2 presets, comma-separated (default {DEFAULT_SIZES})")
    parser.add_argument("--precisions", default="int8",
                        help=f"comma-separated, of {', '.join(PRECISIONS)} (default int8)")
    parser.add_argument("--draft", default="distilgpt2",
                        help="the draft model's preset, converted to int8 (default distilgpt2)")
    parser.add_argument("--prompts", type=int, default=3,
                        help="excerpts of the held-out text to continue (default 3)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per continuation")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all prompts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where the converted models are kept (default: the bench cache)")
    parser.add_argument("--drop-checkpoints", action="store_true",
                        help="delete each size's fp32 checkpoint once its precisions are "
                             "measured (made again from its seed when a conversion needs it)")
    args = parser.parse_args(argv)
    for precision in args.precisions.split(","):
        if precision not in PRECISIONS:
            parser.error(f"precision {precision!r} is unknown; choose one of "
                         f"{', '.join(PRECISIONS)}")
    return args


def prepare(cache_dir: Path, preset: str, precision: str) -> Path:
    """The preset's seeded random checkpoint converted to `precision`, kept in the cache. A
    conversion the current converter made is used without its checkpoint (gpt2-xl's is 6.2 GB,
    deleted by --drop-checkpoints)."""
    folder = cache_dir / f"{preset}-{precision}"
    if made_by_this_converter(folder):
        return folder
    if precision != "int8-al1":
        return prepare_models(cache_dir, preset, [precision])[precision]
    from models.export import export_model
    from models.graph import QuantOptions

    checkpoint = prepare_models(cache_dir, preset, [])["checkpoint"]
    print(f"converting {preset} to int8 computed in fp32", file=sys.stderr)
    shutil.rmtree(folder, ignore_errors=True)
    export_model(checkpoint, folder, "int8", quant=QuantOptions(accuracy_level=1),
                 progress=lambda _: None, gate=False)
    stamp_converter(folder)
    return folder


def write(engine: Engine, prompt: list[int], tokens: int, way: Way) -> Written:
    generator = engine.generator
    draft_model = generator.draft_model if way.draft else None
    saved = generator.draft_model
    generator.lookup, generator.always_draft, generator.draft_model = \
        way.lookup, way.always, draft_model
    try:
        generator.cache.reset()
        events = list(generator.generate(prompt, replace(GREEDY, max_new_tokens=tokens)))
    finally:
        generator.draft_model = saved
    stats = generator.last_stats
    seconds = stats.new_tokens / stats.decode_tok_s if stats.decode_tok_s else 0.0
    return Written([e.token_id for e in events], events, seconds, stats.draft_tokens,
                   stats.accepted_draft_tokens)


def top_margin(event: TokenEvent) -> float:
    """Top-1 minus top-2 logit where `event` was drawn (ln of their probabilities' ratio)."""
    first, second = event.alternatives[0].p, event.alternatives[1].p
    return math.log(first / second) if second > 0 else math.inf


def first_difference(a: list[int], b: list[int]) -> int | None:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def compare_ways(engine: Engine, prompts: list[list[int]], ways: dict[str, Way],
                 args: argparse.Namespace) -> tuple[dict[str, Tally], list[float]]:
    """Every way's tally, and the plain runs' margins at every token."""
    tallies = {name: Tally() for name in ways}
    all_margins: list[float] = []
    names = list(ways)
    for name in names:  # warm-up: a session's first runs allocate, whichever way goes first
        write(engine, prompts[0], min(16, args.tokens), ways[name])
    for round_index in range(args.rounds):
        for number, prompt in enumerate(prompts):
            # Rotate which way goes first, so a drift of the machine's speed hits each alike.
            shift = (round_index * len(prompts) + number) % len(names)
            written = {name: write(engine, prompt, args.tokens, ways[name])
                       for name in names[shift:] + names[:shift]}
            plain = written["plain"]
            all_margins += [top_margin(e) for e in plain.events]
            for name, run in written.items():
                tally = tallies[name]
                tally.seconds += run.seconds
                tally.tokens += len(run.tokens)
                tally.drafted += run.drafted
                tally.written += run.written
                tally.runs += 1
                if run.seconds and plain.seconds:
                    tally.ratios.append(len(run.tokens) / run.seconds
                                        / (len(plain.tokens) / plain.seconds))
                parted = first_difference(run.tokens, plain.tokens)
                if parted is None:
                    tally.identical += 1
                else:
                    tally.parted_at.append(parted)
                    if parted < len(plain.events):
                        tally.margins.append(top_margin(plain.events[parted]))
    return tallies, all_margins


def pass_seconds(runner: Runner, prompt: list[int], sizes: list[int], repeats: int = 7
                 ) -> dict[int, float]:
    """Median seconds of a pass over S new tokens after `prompt`, by S (interleaved)."""
    cache = runner.new_cache()
    runner.forward(np.array([prompt]), cache)
    times: dict[int, list[float]] = {s: [] for s in sizes}
    for _ in range(repeats):
        for s in sizes:
            cache.pos = len(prompt)
            started = time.perf_counter()
            runner.forward(np.array([prompt[:s]]), cache, keep=s)
            times[s].append(time.perf_counter() - started)
    return {s: statistics.median(t) for s, t in times.items()}


def pass_agreement(runner: Runner, prompt: list[int], count: int = 8) -> tuple[float, float]:
    """Mean and max |logit difference| between one pass of `count` greedy tokens and `count`
    passes of one, at the same positions after `prompt`."""
    cache = runner.new_cache()
    logits = runner.forward(np.array([prompt]), cache)[0, -1]
    tokens, one_by_one = [], []
    for _ in range(count):
        tokens.append(int(np.argmax(logits)))
        logits = runner.forward(np.array([[tokens[-1]]]), cache)[0, -1].copy()
        one_by_one.append(logits)
    cache.pos = len(prompt)
    together = runner.forward(np.array([tokens]), cache, keep=count)[0]
    difference = np.abs(together - np.stack(one_by_one))
    return float(difference.mean()), float(difference.max())


def needed_acceptance(pass_ratio: dict[int, float], draft_cost: float,
                      target: float = 2.0) -> tuple[float, int] | None:
    """The lowest acceptance rate a (each guess right with chance a, independently) at which
    drafts of k tokens reach `target` times the plain decode, and that k; None if none can.

    A round guesses k tokens (k draft passes of `draft_cost` plain passes each) and checks them
    with the next token in one pass of k + 1 (pass_ratio[k + 1] plain passes); it writes
    1 + a + ... + a^k tokens on average. Per-token overheads outside the passes are left out.
    """
    best: tuple[float, int] | None = None
    for k in range(1, max(pass_ratio)):
        cost = k * draft_cost + pass_ratio[k + 1]
        if (k + 1) / cost < target:
            continue  # even every guess right would not do
        low, high = 0.0, 1.0
        for _ in range(40):
            a = (low + high) / 2
            if sum(a**i for i in range(k + 1)) / cost >= target:
                high = a
            else:
                low = a
        if best is None or high < best[0]:
            best = (high, k)
    return best


def describe_parting(tally: Tally) -> str:
    if not tally.parted_at:
        return "–"
    pairs = sorted(zip(tally.parted_at, tally.margins, strict=False))
    return ", ".join(f"{at} ({margin:.2f})" for at, margin in pairs)


def bench_size(preset: str, precision: str, draft_dir: Path, args: argparse.Namespace,
               cache_dir: Path) -> None:
    folder = prepare(cache_dir, preset, precision)
    # The draft preset's own int8 cannot draft for itself: its draft ways are left out.
    own = folder.resolve() == draft_dir.resolve()
    engine = load_engine(folder, device="cpu", threads=args.threads,
                         draft_dir=None if own else draft_dir)
    prompts = prompts_from_held_out_text(engine, args.prompts)
    ways = {name: way for name, way in WAYS.items() if not (own and way.draft)}
    tallies, margins = compare_ways(engine, prompts, ways, args)
    finite = [m for m in margins if math.isfinite(m)]
    print(f"\n{preset} {precision}: median top-1 minus top-2 logit over the plain tokens "
          f"{statistics.median(finite):.2f}, lowest {min(finite):.3f}\n")
    # × plain: the median of the ratios to the plain run of the same prompt and round, which
    # the machine's drift between one prompt and the next does not move.
    print("| model | way | decode (tok/s) | × plain (median of pairs) | guesses written "
          "| identical to plain | parted at token (plain's top-1 − top-2 logit there) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name, tally in tallies.items():
        rate = tally.tokens / tally.seconds if tally.seconds else 0.0
        share = f"{tally.written} of {tally.drafted} ({tally.written / tally.drafted:.0%})" \
            if tally.drafted else "–"
        speedup = statistics.median(tally.ratios) if tally.ratios else 0.0
        print(f"| {preset} {precision} | {name} | {rate:.1f} | {speedup:.2f}× | "
              f"{share} | {tally.identical} of {tally.runs} | {describe_parting(tally)} |",
              flush=True)

    runner = engine.generator.runner
    sizes = list(range(1, 10))
    seconds = pass_seconds(runner, prompts[0], sizes)
    ratio = {s: seconds[s] / seconds[1] for s in sizes}
    draft = engine.generator.draft_model
    draft_runner = draft.generator.runner if isinstance(draft, DraftModel) else runner
    draft_cost = pass_seconds(draft_runner, prompts[0], [1])[1] / seconds[1]
    mean, largest = pass_agreement(runner, prompts[0])

    def needs(cost: float) -> str:
        found = needed_acceptance(ratio, cost)
        return "unreachable" if found is None else f"{found[0]:.0%} (k = {found[1]})"

    print(f"\n{preset} {precision} (1-minute load {os.getloadavg()[0]:.1f}): a pass of 1 "
          f"token {seconds[1] * 1000:.1f} ms; S = 2 / 3 / 5 / 9 cost {ratio[2]:.2f} / "
          f"{ratio[3]:.2f} / {ratio[5]:.2f} / {ratio[9]:.2f}×; "
          f"the draft's pass {draft_cost:.3f}× ({1 / draft_cost:.1f} draft passes a pass); "
          f"|Δlogit| of a pass of 8 vs 8 of 1: mean {mean:.2g}, max {largest:.2g}; "
          f"acceptance for 2× plain: prompt lookup {needs(0.0)}, draft model "
          f"{needs(draft_cost)}", flush=True)
    engine.close()


def speculate_bench_main(argv: list[str]) -> int:
    args = parse_args(argv)
    cache_dir = args.cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    draft_dir = prepare(cache_dir, args.draft, "int8")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}; {machine_description()}; {args.threads} threads; "
          f"greedy; {args.prompts} excerpts of {STANDIN_TEXT} × {args.rounds} rounds, "
          f"{args.tokens} tokens each; draft model {args.draft} int8 (random weights)")
    precisions = args.precisions.split(",")
    for preset in args.sizes.split(","):
        for precision in precisions:  # converted one at a time, each just before it is timed
            bench_size(preset, precision, draft_dir, args, cache_dir)
        if args.drop_checkpoints:
            shutil.rmtree(cache_dir / f"{preset}-checkpoint", ignore_errors=True)
    return 0
