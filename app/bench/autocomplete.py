"""`python -m app bench autocomplete`: keystroke-to-suggestion latency of ghost-text autocomplete.

What a person waits for after the typing pause (the configured delay is not counted): the
document grows by one typed character at its end, then `engine.suggest` runs on the text
before the cursor (tokenising it, feeding the KV cache, decoding K alternatives together as one
batch). Measured on a seeded random GPT-2 checkpoint at real shapes (speed depends on shapes,
not weights), for a short and a long document, with prefix reuse on (what the app does) and
off (every keystroke re-reads the whole context window), to show what reuse saves.

Then the same documents in the real window (app/bench/ghost.py): how long after the end of
the typing pause the suggestion is on screen, now that its work starts inside the pause.

`--model FOLDER` times a model you already have instead (any folder the app opens, a foreign
export included), e.g. to see what converting an optimum export would save.

`--context-quality` measures instead what a shorter window costs a suggestion, on the trained
stand-in (fp32) and its held-out text: the same next 8 tokens of many places, read after
different amounts of context; their perplexity, and how often each one's likeliest token is the
one the longest context gives.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from app.bench.common import (
    STANDIN_DIR,
    STANDIN_TEXT,
    app_with_only,
    default_cache_dir,
    machine_description,
    prepare_models,
)
from app.bench.memory_floor import measure_memory_read

PROSE = (
    "The harbour town woke slowly that spring. Fishermen mended their nets on the quay while "
    "the bakery sent the smell of warm bread down the narrow streets, and the gulls argued "
    "over whatever the night tide had left on the stones. Mara had lived above the chandlery "
    "for eleven years, long enough to know every creak of its stairs and every draught that "
    "slipped under its doors. She kept the accounts for the shop below, wrote letters for "
    "neighbours who could not, and in the evenings worked on the book she had promised "
    "herself she would finish before the summer storms came.\n\n"
    "It was a book about her grandfather, a lighthouse keeper who had counted one hundred and "
    "twelve steps every evening and lit the lamp that warned ships away from the rocks. He "
    "kept a log in a careful hand: the weather, the ships that passed, the names of the men "
    "who rowed out with supplies. Most entries were short. Some ran for pages, and those were "
    "the ones Mara read again and again, trying to hear the voice behind the ink.\n\n"
    "\"No ship lost tonight,\" he had written after the great storm of 1893, when the glass "
    "of the lantern broke and he held a lamp in his own hands until morning. The town still "
    "told that story, though the details changed with every teller. In one version he sang "
    "to keep himself awake; in another his wife climbed the stairs with hot tea every hour; "
    "in a third a stranger appeared at the door and took the lamp from him at dawn.\n\n"
)
TYPED = " She opened the log at the page where the ink had faded and read it twice"
DOC_TOKENS = (600, 3000)
SUGGESTED_TOKENS = 8  # what --context-quality scores after each context


def make_document(tokenizer: object, n_tokens: int) -> str:
    """Prose of exactly `n_tokens` tokens (the story repeated as needed), ending a sentence."""
    text = PROSE
    while len(tokenizer.encode(text)) < n_tokens + 50:  # type: ignore[attr-defined]
        text += PROSE
    ids = tokenizer.encode(text)[:n_tokens]  # type: ignore[attr-defined]
    return str(tokenizer.decode(ids)).rstrip()  # type: ignore[attr-defined]


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def measure(engine: object, document: str, keystrokes: str, n_alternatives: int,
            max_tokens: int, reuse: bool) -> tuple[list[float], int, list[int]]:
    """Latency in ms of each keystroke's suggestion, the document growing by one character;
    how many keystrokes re-read the whole context window (nothing reused); and how many tokens
    of the document each suggestion read (its window)."""
    from app.ui.ghost_text import SUGGESTION_PARAMS

    generator = engine.generator  # type: ignore[attr-defined]
    generator.reuse_prefix = reuse
    params = SUGGESTION_PARAMS.replace(seed=0)
    generator.cache.reset()
    engine.suggest(document, params, n_alternatives, max_tokens)  # type: ignore[attr-defined]
    latencies, full_reads, windows = [], 0, []
    for typed in keystrokes:
        document += typed
        started = time.perf_counter()
        suggestions = engine.suggest(document, params,  # type: ignore[attr-defined]
                                     n_alternatives, max_tokens)
        latencies.append((time.perf_counter() - started) * 1000)
        assert suggestions, "the engine gave no suggestion"
        full_reads += engine.last_stats.reused_tokens == 0  # type: ignore[attr-defined]
        windows.append(engine.last_stats.prompt_tokens)  # type: ignore[attr-defined]
    generator.reuse_prefix = True
    return latencies, full_reads, windows


# document, reuse on, latencies (ms), full re-reads, tokens read (the window)
Row = tuple[str, bool, list[float], int, list[int]]


def format_table(rows: list[Row], n_alternatives: int, max_tokens: int) -> str:
    lines = [
        "| document | window (tokens) | prefix reuse | keystrokes | whole window re-read | "
        f"p50 (ms) | p95 (ms) | max (ms) | {max_tokens} tokens × {n_alternatives} alternatives |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, reuse, ms, full_reads, windows in rows:
        p50, p95 = percentile(ms, 50), percentile(ms, 95)
        verdict = ("meets p50 ≤ 60, p95 ≤ 120" if p50 <= 60 and p95 <= 120
                   else "misses p50 ≤ 60, p95 ≤ 120") if reuse else "baseline"
        lines.append(f"| {name} | {min(windows)}–{max(windows)} | {'on' if reuse else 'off'} | "
                     f"{len(ms)} | {full_reads} | "
                     f"{p50:.0f} | {p95:.0f} | {max(ms):.0f} | {verdict} |")
    return "\n".join(lines)


def autocomplete_bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app bench autocomplete", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2", help="model size (default: gpt2, 124M)")
    parser.add_argument("--precision", default="int8", help="default: int8, fastest on CPU")
    parser.add_argument("--model", type=Path, default=None,
                        help="time this model folder instead of a converted random checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keystrokes", type=int, default=40)
    parser.add_argument("--alternatives", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--no-window", action="store_true",
                        help="skip the measurement in the real window")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where the random checkpoint and its export are kept and reused")
    parser.add_argument("--context-quality", metavar="TOKENS", default=None,
                        help="comma-separated context lengths, longest first (e.g. "
                             "504,384,256): what a shorter window costs, on the stand-in")
    parser.add_argument("--places", type=int, default=460,
                        help="--context-quality: places scored in the held-out text")
    args = parser.parse_args(argv)
    if args.context_quality:
        contexts = [int(n) for n in args.context_quality.split(",") if n]
        print(format_context_table(measure_context_quality(contexts, args.places,
                                                           args.threads)))
        return 0
    if args.cache_dir is None:
        args.cache_dir = default_cache_dir()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from app.engine.engine import load_engine
    from app.engine.errors import GhostpenError

    if args.model is not None:
        folder = args.model
    else:
        folder = prepare_models(args.cache_dir, args.preset, [args.precision])[args.precision]
    try:
        engine = load_engine(folder, device="cpu", threads=args.threads)
    except GhostpenError as error:  # a wrong --model: one line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    keystrokes = (TYPED * (args.keystrokes // len(TYPED) + 1))[: args.keystrokes]
    rows: list[Row] = []
    bandwidth = measure_memory_read(args.threads, args.cache_dir).gb_s
    for n_tokens in DOC_TOKENS:
        document = make_document(engine.tokenizer, n_tokens)
        for reuse in (True, False):
            print(f"{n_tokens}-token document, reuse {'on' if reuse else 'off'}…",
                  file=sys.stderr)
            ms, full_reads, windows = measure(engine, document, keystrokes, args.alternatives,
                                              args.tokens, reuse)
            rows.append((f"{n_tokens:,} tokens", reuse, ms, full_reads, windows))
    print(f"{engine.info.model_name} ({engine.info.precision}), {engine.info.provider}, "
          f"{args.threads} threads; "
          f"{machine_description()}; memory read {bandwidth:.0f} GB/s")
    print(format_table(rows, args.alternatives, args.tokens))
    if not args.no_window:
        engine.close()  # the window loads its own
        print(format_window_table(measure_in_window(folder, engine.tokenizer, keystrokes)))
    return 0


def measure_context_quality(contexts: list[int], places: int,
                            threads: int) -> list[tuple[int, float, float]]:
    """Per context length: the perplexity of the next SUGGESTED_TOKENS tokens at `places` evenly
    spread places of the stand-in's held-out text, and the share of those tokens whose
    likeliest prediction equals the one after contexts[0] (teacher-forced: each token is
    predicted after the true tokens before it)."""
    import tempfile

    import numpy as np

    from app.bench.quality import convert
    from app.engine.engine import load_engine
    from models.quality_gate import log_softmax

    n = SUGGESTED_TOKENS
    with tempfile.TemporaryDirectory(prefix="ghostpen-context-") as tmp:
        engine = load_engine(convert(STANDIN_DIR, Path(tmp) / "fp32", "fp32"), device="cpu",
                             threads=threads)
        runner, cache = engine.generator.runner, engine.generator.cache
        ids = engine.tokenizer.encode((STANDIN_DIR / STANDIN_TEXT).read_text("utf-8"))
        first = max(contexts)
        step = max(1, (len(ids) - n - first) // places)
        nll: dict[int, list[float]] = {c: [] for c in contexts}
        agree: dict[int, list[bool]] = {c: [] for c in contexts}
        for place in range(first, len(ids) - n, step):
            targets = np.asarray(ids[place : place + n])
            longest: np.ndarray | None = None
            for context in contexts:
                cache.reset()
                tokens = np.asarray([ids[place - context : place + n - 1]], np.int64)
                logits = runner.forward(tokens, cache, keep=n)[0]  # predicts the targets
                nll[context] += (-log_softmax(logits)[np.arange(n), targets]).tolist()
                best = logits.argmax(axis=-1)
                longest = best if longest is None else longest
                agree[context] += (best == longest).tolist()
        engine.close()
    return [(c, float(np.exp(np.mean(nll[c]))), float(np.mean(agree[c]))) for c in contexts]


def format_context_table(rows: list[tuple[int, float, float]]) -> str:
    lines = [f"| context (tokens) | next-{SUGGESTED_TOKENS}-token perplexity | likeliest token "
             f"as with {rows[0][0]} |", "|---:|---:|---:|"]
    for context, ppl, agreement in rows:
        lines.append(f"| {context} | {ppl:.2f} | {agreement:.1%} |")
    return "\n".join(lines)


def measure_in_window(folder: Path, tokenizer: object, keystrokes: str) -> dict[str, list[float]]:
    """Per document: ms from the end of each key's pause to its suggestion in the window."""
    from app.bench.ghost import measure_after_pause

    waits = {}
    with app_with_only(folder):
        for n_tokens in DOC_TOKENS:
            print(f"{n_tokens}-token document in the window…", file=sys.stderr)
            waits[f"{n_tokens:,} tokens"] = measure_after_pause(
                make_document(tokenizer, n_tokens), keystrokes)
    return waits


def format_window_table(waits: dict[str, list[float]]) -> str:
    lines = ["| in the window (default settings) | keystrokes | after the pause: p50 (ms) | "
             "p95 (ms) | max (ms) |", "|---|---:|---:|---:|---:|"]
    for name, ms in waits.items():
        lines.append(f"| {name} | {len(ms)} | {percentile(ms, 50):.0f} | "
                     f"{percentile(ms, 95):.0f} | {max(ms):.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(autocomplete_bench_main(sys.argv[1:]))
