"""`python -m app bench gui`: is the window responsive while GPT-2 writes?

The two figures a writer notices: the longest stall of the GUI thread while the 124M model
(int8) generates, measured as the lateness of a 5 ms QTimer, and how long after launch the window
is shown (a fresh `python -m app --smoke-test` process, offscreen). The window is the real one,
driven through its own actions; the event loop is Qt's own (`exec`), as in the app.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from app.bench.common import (
    STANDIN_DIR,
    app_with_only,
    default_cache_dir,
    prepare_models,
    prepare_standin,
)

TEXT = "The lighthouse keeper climbed the stairs each evening and lit the lamp."
# How late a timer of this period fires on the GUI thread is how long the window stalled; the
# lens bench (app/bench/lens.py) keeps the same clock.
TICK_MS = 5


class TickLoop:
    """A precise QTimer calling `tick()` every `interval_ms` inside a local event loop (Qt's own
    `exec`, as in the app) until `stop()`. `now()` is ms since the loop was made."""

    def __init__(self, tick: Callable[[], None], interval_ms: int = TICK_MS) -> None:
        from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer

        self.interval_ms = interval_ms
        self.clock = QElapsedTimer()
        self.clock.start()
        self.loop = QEventLoop()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(tick)

    def now(self) -> float:
        return self.clock.nsecsElapsed() / 1e6

    def run(self) -> None:
        self.timer.start(self.interval_ms)
        try:
            self.loop.exec()
        finally:
            self.timer.stop()

    def stop(self) -> None:
        self.loop.quit()  # not app.quit(): that would close the window and ask about saving


def stall_figures(lateness: Sequence[float]) -> tuple[float, float]:
    """(longest, 99th percentile) of the ticks' lateness, ms."""
    ordered = sorted(lateness)
    return ordered[-1], ordered[int(len(ordered) * 0.99)]


def measure_stalls(model: Path, tokens: int, token_view: bool) -> dict[str, float]:
    from PySide6.QtGui import QTextCursor
    from PySide6.QtWidgets import QApplication

    from app.engine.sampling_params import SamplingParams
    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    window = MainWindow(Settings())
    window.resize(1400, 900)
    window.show()
    lateness: list[float] = []
    state = {"phase": "loading", "last": 0.0, "started": 0.0, "tokens_s": 0.0}

    def tick() -> None:
        now = ticks.now()
        if state["phase"] == "generating":
            lateness.append(now - state["last"] - TICK_MS)
        state["last"] = now
        if state["phase"] == "loading" and window.engine_info is not None:
            window.editor.setPlainText(TEXT)
            window.editor.moveCursor(QTextCursor.MoveOperation.End)
            window.panel.set_params(SamplingParams(seed=1, max_new_tokens=tokens))
            window.set_token_view(token_view)
            state["phase"], state["started"] = "generating", time.perf_counter()
            window.generate_action.trigger()
        elif state["phase"] == "generating" and not window.generation.running:
            state["tokens_s"] = tokens / (time.perf_counter() - state["started"])
            ticks.stop()

    ticks = TickLoop(tick)
    ticks.run()
    window.shutdown(keep_unsaved=False)
    app.processEvents()  # let the worker's last signals land before the next run
    longest, p99 = stall_figures(lateness)
    return {"max_stall_ms": longest, "p99_stall_ms": p99,
            "ticks": float(len(lateness)), "tokens_per_s_in_window": state["tokens_s"]}


def measure_launch(data_dir: Path, config_dir: Path) -> float:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "GHOSTPEN_DATA_DIR": str(data_dir),
           "GHOSTPEN_CONFIG_DIR": str(config_dir)}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "app", "--smoke-test"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if re.match(r"window shown", line):
            shown = time.perf_counter() - started
            process.wait(timeout=60)
            return shown
    raise RuntimeError("the window never reported being shown")


def gui_bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app bench gui", description=__doc__)
    parser.add_argument("--preset", default="gpt2",
                        help="model size (default: gpt2, 124M), or 'standin' for the trained 16M "
                             "stand-in, whose tokens come fastest")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    cache = args.cache_dir or default_cache_dir()
    if args.preset == "standin":
        if not STANDIN_DIR.is_dir():
            print(f"the stand-in is not at {STANDIN_DIR}; use a --preset of random weights "
                  "instead", file=sys.stderr)
            return 2
        model = prepare_standin(cache, args.precision)
    else:
        model = prepare_models(cache, args.preset, [args.precision])[args.precision]
    with app_with_only(model) as (data, config):
        launch = [measure_launch(data, config) for _ in range(3)]
        rows = {view: measure_stalls(model, args.tokens, view) for view in (False, True)}
    print(f"| {args.preset} {args.precision}, {args.tokens} tokens | longest GUI stall (ms) | "
          "p99 stall (ms) | tok/s in the window |")
    print("|---|---:|---:|---:|")
    for view, row in rows.items():
        print(f"| token colours {'on' if view else 'off'} | {row['max_stall_ms']:.1f} | "
              f"{row['p99_stall_ms']:.1f} | {row['tokens_per_s_in_window']:.0f} |")
    print(f"\nwindow shown after launch: {min(launch):.2f} s best, {max(launch):.2f} s worst "
          "of 3 (offscreen, a model loading on the worker thread)")
    return 0
