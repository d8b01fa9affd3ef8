"""`python -m app bench lens`: does the window stay responsive while the surprise lens colours
a long document?

The real window with a real model scores a 20,000-word document of English (the stand-in's
held-out text, repeated as needed) once the lens is turned on. Measured on the GUI thread: the
longest stall and the 99th percentile, as the lateness of a 5 ms QTimer from the moment the
lens is turned on until every token is scored and on show; the time to the first colours and
to the whole document; the longest pass of Python's garbage collector meanwhile (on any thread,
it holds the GIL); and as a yardstick the same stalls of the window idle just before (on a
loaded machine the operating system alone keeps the GUI thread waiting). The model only sets
how long the worker takes: the GUI thread's work is per token, so the 16M stand-in (default)
and the 124M random GPT-2 (`--preset gpt2`) load it alike.
"""

from __future__ import annotations

import argparse
import gc
import sys
from dataclasses import dataclass
from pathlib import Path

from app.bench.common import (
    STANDIN_DIR,
    app_with_only,
    default_cache_dir,
    prepare_models,
    prepare_standin,
)
from app.bench.gui import TICK_MS, TickLoop, stall_figures

SETTLE_S = 2.0  # after the text is set, before anything is measured: the layout settles
IDLE_S = 3.0  # then the window idle, as a yardstick: what this machine's load alone costs


def english_words(words: int) -> str:
    """`words` words of the stand-in's held-out text, its paragraphs kept, repeated as needed."""
    paragraphs = [p for p in (STANDIN_DIR / "val-dev.txt").read_text().split("\n") if p.strip()]
    out: list[str] = []
    count = 0
    while count < words:
        for paragraph in paragraphs:
            taken = paragraph.split()[: words - count]
            out.append(" ".join(taken))
            count += len(taken)
            if count >= words:
                break
    return "\n".join(out) + "\n"


@dataclass
class _Run:
    """Where a measurement stands; times in ms since the clock started."""

    phase: str = "loading"  # then settling, idle, scoring
    last: float = 0.0  # the last tick
    since: float = 0.0  # the phase's start
    first: float = 0.0  # the first colours, from the lens turned on
    all: float = 0.0  # every token on show, from the lens turned on


def measure_lens(text: str) -> dict[str, float]:
    from PySide6.QtGui import QTextCursor
    from PySide6.QtWidgets import QApplication

    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    window = MainWindow(Settings())
    window.resize(1400, 900)
    window.show()
    lens, editor = window.lens, window.editor
    lateness: list[float] = []
    idle: list[float] = []
    run = _Run()
    last_position = len(text) - 1
    # Python's garbage collector holds the GIL for a pass over every live object whichever
    # thread triggers it: the passes while scoring are timed, as they stall the window too.
    collections: list[float] = []
    collection_started = [0.0]

    def on_collection(phase: str, info: dict[str, int]) -> None:
        now = ticks.now()
        if phase == "start":
            collection_started[0] = now
        elif run.phase == "scoring":
            collections.append(now - collection_started[0])

    def finished() -> bool:
        busy = getattr(lens, "busy", lambda: False)()  # a lens without busy() placed all at once
        return lens.score_at(last_position) is not None and not busy

    def tick() -> None:
        now = ticks.now()
        if run.phase == "scoring":
            lateness.append(now - run.last - TICK_MS)
        elif run.phase == "idle":
            idle.append(now - run.last - TICK_MS)
        run.last = now
        if run.phase == "loading" and window.engine_info is not None:
            editor.set_text(text)
            editor.moveCursor(QTextCursor.MoveOperation.Start)
            run.phase, run.since = "settling", now
        elif run.phase == "settling" and now - run.since > SETTLE_S * 1000:
            run.phase, run.since = "idle", now
        elif run.phase == "idle" and now - run.since > IDLE_S * 1000:
            run.phase, run.since = "scoring", now
            lens.set_enabled(True)
            run.last = ticks.now()  # turning it on is part of the next gap
        elif run.phase == "scoring":
            if not run.first and editor.lens_washes():
                run.first = now - run.since
            if finished():
                run.all = now - run.since
                ticks.stop()

    ticks = TickLoop(tick)
    gc.callbacks.append(on_collection)
    try:
        ticks.run()
    finally:
        gc.callbacks.remove(on_collection)
    tokens = len(lens.scores())
    window.shutdown(keep_unsaved=False)
    app.processEvents()
    longest, p99 = stall_figures(lateness)
    idle_longest, idle_p99 = stall_figures(idle)
    return {"max_stall_ms": longest, "p99_stall_ms": p99,
            "idle_max_stall_ms": idle_longest, "idle_p99_stall_ms": idle_p99,
            "ticks": float(len(lateness)), "first_colours_s": run.first / 1000,
            "all_coloured_s": run.all / 1000, "tokens": float(tokens),
            "longest_collection_ms": max(collections, default=0.0)}


def lens_bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app bench lens", description=__doc__)
    parser.add_argument("--preset", default="standin",
                        help="standin (the trained 16M stand-in, default) or a random GPT-2 "
                             "size such as gpt2")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--words", type=int, default=20_000)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--no-gc", action="store_true",
                        help="turn Python's garbage collector off while measuring, to tell its "
                             "share of the stalls")
    args = parser.parse_args(argv)
    cache = args.cache_dir or default_cache_dir()
    if args.preset == "standin":
        model = prepare_standin(cache, args.precision)
    else:
        model = prepare_models(cache, args.preset, [args.precision])[args.precision]
    text = english_words(args.words)
    if args.no_gc:
        gc.disable()
    with app_with_only(model) as _:
        row = measure_lens(text)
    gc.enable()
    print(f"| {args.preset} {args.precision}, {args.words:,} words ({row['tokens']:,.0f} tokens, "
          f"{len(text):,} characters) | longest GUI stall (ms) | p99 stall (ms) | "
          "first colours (s) | all coloured (s) | longest GC pass (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| the window idle, {IDLE_S:.0f} s before (this machine's yardstick) | "
          f"{row['idle_max_stall_ms']:.1f} | {row['idle_p99_stall_ms']:.1f} | | | |")
    label = "surprise lens on" + (", garbage collector off" if args.no_gc else "")
    print(f"| {label} | {row['max_stall_ms']:.1f} | {row['p99_stall_ms']:.1f} | "
          f"{row['first_colours_s']:.2f} | {row['all_coloured_s']:.1f} | "
          f"{row['longest_collection_ms']:.1f} |")
    return 0
