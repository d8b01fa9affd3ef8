"""Fault: ghost-text requests, cancelled and overtaken at random, against the real engine.

`python -m tests.fault_campaign.suggestions [--quick] [--requests N] [--preset tiny|gpt2]`

10,000 suggestion requests (600 with --quick) go to the window's own EngineWorker (the
QThread that owns the engine), which runs a real onnxruntime session on a converted random
GPT-2 (tiny int8 by default). Each round is a keystroke as the window sends it (cancel the
running suggestion, change the text, ask again), then one of: wait for the answer; cancel it
after a random moment (Esc, a click); or type the next key while it runs, so the newer request
overtakes it. The text grows and shrinks at its end and now and then jumps to another document,
one of them longer than the model's context, so the KV cache is reused, rewound and slid.

Passes when every request that is waited for is answered, every cancel leaves the worker idle,
both within DEADLINE_S (no deadlock), no request fails, the worker thread is still running at
the end and shuts down, and the resident memory after the run is within 5% of what it was
after the first 500 requests (after the first half with --quick).
"""

from __future__ import annotations

import argparse
import faulthandler
import random
import sys
import time
from pathlib import Path

from tests.fault_campaign.common import (
    Verdict,
    app_env,
    build_model,
    percentile,
    prose,
    rss_mb,
    use_env,
    wait_for,
    work_dir,
)

DEADLINE_S = 10.0  # an answer, or the worker idle after a cancel, within this
RSS_AT = 500  # the memory baseline: after this many requests (half a shorter run) the caches
# have their size
KEYS = "abcdefghijklmnopqrstuvwxyz     ,.éü"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault_campaign.suggestions",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 requests instead of 10,000")
    parser.add_argument("--requests", type=int, help="how many suggestion requests")
    parser.add_argument("--preset", default="tiny", help="models.random preset (tiny, gpt2)")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    requests = args.requests or (600 if args.quick else 10_000)

    verdict = Verdict("suggestions")
    folder = work_dir("suggestions", args.keep)
    use_env(app_env(folder))
    model = build_model(folder, args.preset, args.precision)
    verdict.figure("model", f"{args.preset} {args.precision} (random, seed 0), CPU")
    run(requests, model, random.Random(args.seed), verdict)
    return verdict.finish()


def run(requests: int, model: Path, rng: random.Random, verdict: Verdict) -> None:
    from PySide6.QtCore import QCoreApplication, QObject, Slot

    from app.engine.engine import load_engine
    from app.engine.events import EngineInfo, Suggestion
    from app.ui.ghost_text import SUGGESTION_PARAMS
    from app.ui.worker import EngineWorker

    app = QCoreApplication.instance() or QCoreApplication([sys.argv[0]])
    assert app is not None

    class Listener(QObject):
        """Receives the worker's signals on this (the GUI) thread, queued, as the window does."""

        def __init__(self) -> None:
            super().__init__()
            self.answered: dict[int, float] = {}  # request id -> when its answer arrived
            self.failed: list[str] = []
            self.malformed = 0
            self.loaded: list[EngineInfo] = []

        @Slot(int, object)
        def on_ready(self, request_id: int, suggestions: list[Suggestion]) -> None:
            self.answered[request_id] = time.perf_counter()
            if not (isinstance(suggestions, list) and len(suggestions) <= 3
                    and all(isinstance(s, Suggestion) for s in suggestions)):
                self.malformed += 1

        @Slot(int, str)
        def on_failed(self, request_id: int, message: str) -> None:
            self.failed.append(f"request {request_id}: {message}")

        @Slot(object)
        def on_loaded(self, info: EngineInfo) -> None:
            self.loaded.append(info)

        @Slot(str, bool)
        def on_load_failed(self, message: str, no_model: bool) -> None:
            self.failed.append(f"load: {message}")

    listener = Listener()
    worker = EngineWorker()
    worker.suggestions_ready.connect(listener.on_ready)
    worker.suggestions_failed.connect(listener.on_failed)
    worker.engine_loaded.connect(listener.on_loaded)
    worker.engine_failed.connect(listener.on_load_failed)
    worker.load(lambda: load_engine(model, "cpu"))
    if not verdict.check(wait_for(lambda: bool(listener.loaded or listener.failed), 120)
                         and bool(listener.loaded), f"the model did not load: {listener.failed}"):
        worker.shutdown()
        return

    params = SUGGESTION_PARAMS.replace(max_new_tokens=8)
    documents = [prose(rng, 30), prose(rng, 400), prose(rng, 1_100)]  # the last > 1024 tokens
    text = documents[1]
    latencies_ms: list[float] = []
    cancel_ms: list[float] = []
    waited = cancels = overtaken = early = 0
    rss_baseline = 0.0
    baseline_at = min(RSS_AT, requests // 2)
    typical_s = 0.02
    started = time.perf_counter()
    for index in range(1, requests + 1):
        # Keep a stuck worker from hanging the run: dump every thread's stack and exit.
        faulthandler.dump_traceback_later(DEADLINE_S * 6, exit=True)
        text = keystroke(text, documents, rng)
        worker.cancel_suggestion()  # the window does this on every key
        sent = time.perf_counter()
        request = worker.suggest(text, params, 3, 8, False)
        roll = rng.random()
        if roll < 0.55:  # the pause is long enough: the answer is waited for
            waited += 1
            if not verdict.check(wait_for(lambda r=request: r in listener.answered, DEADLINE_S),
                                 f"request {index} not answered within {DEADLINE_S:.0f} s "
                                 "(deadlock?)"):
                break
            latencies_ms.append((listener.answered[request] - sent) * 1000)
            typical_s = percentile(latencies_ms[-50:], 50) / 1000
        elif roll < 0.80:  # cancelled at a random moment: Esc, a click, a cursor move
            wait_for(lambda r=request: r in listener.answered, rng.uniform(0, 2 * typical_s))
            if request in listener.answered:
                early += 1
            else:
                cancels += 1
                at = time.perf_counter()
                worker.cancel_suggestion()
                if not verdict.check(wait_for(lambda: not worker.busy(), DEADLINE_S),
                                     f"request {index}: the worker still busy "
                                     f"{DEADLINE_S:.0f} s after its cancel (deadlock?)"):
                    break
                cancel_ms.append((time.perf_counter() - at) * 1000)
        else:  # the next key comes while it runs: the newer request overtakes it
            wait_for(lambda r=request: r in listener.answered, rng.uniform(0, typical_s))
            if request in listener.answered:
                early += 1
            else:
                overtaken += 1
        if index == baseline_at:
            wait_for(lambda: not worker.busy(), DEADLINE_S)
            rss_baseline = rss_mb()
    faulthandler.dump_traceback_later(DEADLINE_S * 6, exit=True)
    wait_for(lambda: not worker.busy(), DEADLINE_S)
    elapsed = time.perf_counter() - started
    app.processEvents()
    rss_end = rss_mb()
    alive = worker.isRunning()
    worker.shutdown()
    faulthandler.cancel_dump_traceback_later()

    done = len(latencies_ms) + early + len(cancel_ms) + overtaken
    verdict.figure("requests", f"{index:,} in {elapsed:.0f} s = {index / elapsed:.0f} requests/s",
                   summary=True)
    verdict.figure("waited for and answered", f"{len(latencies_ms):,} of {waited:,}")
    verdict.figure("time to answer (ms)", f"p50 {percentile(latencies_ms, 50):.1f}, "
                   f"p95 {percentile(latencies_ms, 95):.1f}, max {max(latencies_ms or [0]):.1f}",
                   summary=True)
    verdict.figure("cancelled mid-run", f"{cancels:,}; worker idle after "
                   f"p50 {percentile(cancel_ms, 50):.1f} ms, p95 {percentile(cancel_ms, 95):.1f}"
                   f" ms, max {max(cancel_ms or [0]):.1f} ms", summary=True)
    verdict.figure("overtaken by the next key", f"{overtaken:,}")
    verdict.figure("answered before their cancel or the next key", f"{early:,}")
    verdict.figure("answers received in all", f"{len(listener.answered):,} "
                   "(an overtaken or cancelled request can still finish first)")
    verdict.figure(f"RSS after {baseline_at:,} / after {index:,}",
                   f"{rss_baseline:.1f} MB / {rss_end:.1f} MB "
                   f"({(rss_end / rss_baseline - 1) * 100 if rss_baseline else 0:+.1f}%)",
                   summary=True)
    verdict.check(done == index or bool(verdict.failures),
                  f"{index - done} requests neither answered, cancelled nor overtaken")
    verdict.check(not listener.failed, f"{len(listener.failed)} requests failed, first: "
                  f"{listener.failed[:1]}")
    verdict.check(listener.malformed == 0, f"{listener.malformed} answers were not a list of "
                  "at most 3 suggestions")
    verdict.check(alive, "the worker thread had stopped before the end of the run")
    verdict.check(rss_baseline > 0 and rss_end <= rss_baseline * 1.05,
                  f"RSS grew from {rss_baseline:.1f} to {rss_end:.1f} MB (more than 5%)")


def keystroke(text: str, documents: list[str], rng: random.Random) -> str:
    """What one key (or a jump elsewhere) does to the text before the cursor."""
    roll = rng.random()
    if roll < 0.03:  # another document, or another place in one: the cache starts over
        document = rng.choice(documents)
        return document[: rng.randint(len(document) // 2, len(document))]
    if roll < 0.15 and len(text) > 20:
        return text[:-1]  # Backspace
    return text + rng.choice(KEYS)


if __name__ == "__main__":
    sys.exit(main())
