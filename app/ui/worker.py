"""One long-lived thread that owns the engine and runs its jobs; the GUI only sends requests.

This is the pattern of Qt's mandelbrot example. Requests wait in one slot per kind under a
lock; a newer request of a kind replaces the older one still waiting, and a new generation
cancels the running one (the engine checks the cancel event between tokens): the newest
request wins. A suggestion (ghost text) is cancelled the same way by the next one, by
`cancel_suggestion` (a keystroke) and by a generation. The engine is created, used and closed
on this thread only. Nothing here touches a widget: results leave as signals, which Qt queues
to the GUI thread, each tagged with the id its request got so the GUI can ignore answers it no
longer wants.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from PySide6.QtCore import QObject, QThread, Signal, SignalInstance

from app.engine.errors import GhostpenError, user_message
from app.engine.events import GenerationStats
from app.engine.protocol import TextEngine
from app.engine.sampling_params import SamplingParams
from app.ui.engines import NoModelError
from app.ui.thread_priority import give_way_to_the_window

log = logging.getLogger(__name__)

# Run order when several kinds wait: a model load first, then generation, then a suggestion
# (someone is waiting for it), then the preview, then reading the text ahead of time, then a
# call from another thread (the local server's requests: the window's own work goes first).
# A writing action (summarise, translate… in the side pane) runs after a suggestion: its
# answer goes beside the text, so the ghost text at the cursor is not kept waiting for it.
# Scoring the whole text for the surprise lens comes last, and any other request except reading
# ahead pauses it: it goes back to its slot and carries on (from where it stopped: the engine
# keeps the scores it had) once the rest has run.
JobKind = Literal["load", "generate", "suggest", "action", "candidates", "warm", "call", "score"]
_KINDS: tuple[JobKind, ...] = ("load", "generate", "suggest", "action", "candidates", "warm",
                               "call", "score")
_SCORE_PROGRESS_S = 0.1  # at most this often a progress signal while scoring


@dataclass
class _Job:
    kind: JobKind
    request_id: int
    args: tuple[Any, ...]
    cancel: threading.Event = field(default_factory=threading.Event)
    resume: bool = False  # cancelled to let another job run first: goes back to its slot


FailureReport = Callable[[_Job, Exception, str], None]  # (job, error, one-line message)


@dataclass(frozen=True)
class _JobHandler:
    """How one kind of job runs, and how its failure reaches the GUI."""

    run: Callable[[_Job], None]
    context: str  # what failed, in a person's words: the start of the one-line message
    report_failure: FailureReport


def _emit_for_request(signal: SignalInstance) -> FailureReport:
    """Report a failure as `signal(request id, message)`."""
    return lambda job, error, message: signal.emit(job.request_id, message)


def _log_only(job: _Job, error: Exception, message: str) -> None:
    """Reading ahead only lost a head start: the next request on the text says what is wrong."""
    log.warning("%s", message)


class EngineWorker(QThread):
    engine_loaded = Signal(object)  # EngineInfo
    engine_failed = Signal(str, bool)  # one-line message, True when simply no model is installed
    generation_started = Signal(int)
    token_generated = Signal(int, object)  # request id, TokenEvent
    generation_finished = Signal(int, object)  # request id, GenerationStats
    generation_failed = Signal(int, str)  # request id, one-line message
    candidates_ready = Signal(int, object, int)  # request id, list[Candidate], prompt tokens
    candidates_failed = Signal(int, str)
    suggestions_ready = Signal(int, object)  # request id, list[Suggestion] (never when cancelled)
    suggestions_failed = Signal(int, str)
    warmed = Signal(int, int)  # request id, tokens read into the KV cache
    action_token = Signal(int, object)  # request id, TokenEvent of a writing action
    action_finished = Signal(int, object)  # request id, GenerationStats, also when stopped
    action_failed = Signal(int, str)  # request id, one-line message
    score_progress = Signal(int, int, int)  # request id, tokens scored, tokens in all
    scores_ready = Signal(int, object)  # request id, ScoreTable (never when cancelled)
    scoring_failed = Signal(int, str)  # request id, one-line message

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("engine-worker")
        self._wake = threading.Condition()
        self._pending: dict[str, _Job] = {}
        self._running: _Job | None = None
        self._quit = False
        self._last_id = 0
        self._engine: TextEngine | None = None  # touched on the worker thread only
        self._handlers: dict[JobKind, _JobHandler] = {
            "load": _JobHandler(self._run_load, "Could not load the model", self._load_failed),
            "generate": _JobHandler(self._run_generate, "Generation failed",
                                    _emit_for_request(self.generation_failed)),
            "suggest": _JobHandler(self._run_suggest, "Suggestion failed",
                                   _emit_for_request(self.suggestions_failed)),
            "candidates": _JobHandler(self._run_candidates, "Preview failed",
                                      _emit_for_request(self.candidates_failed)),
            "action": _JobHandler(self._run_action, "The writing action failed",
                                  _emit_for_request(self.action_failed)),
            "warm": _JobHandler(self._run_warm, "Reading the text ahead failed", _log_only),
            "call": _JobHandler(self._run_call, "A call on the engine failed", _log_only),
            "score": _JobHandler(self._run_score, "Scoring the text failed",
                                 _emit_for_request(self.scoring_failed)),
        }

    # --- requests, from the GUI thread -------------------------------------------------------

    def load(self, factory: Callable[[], TextEngine]) -> int:
        """Replace the engine with `factory()`, built on this thread; cancels a generation."""
        with self._wake:
            self._cancel_running("generate", "suggest", "action", "warm")
            for kind in ("generate", "suggest", "action", "warm"):
                self._pending.pop(kind, None)
            return self._submit("load", (factory,))

    def generate(self, prompt: str, params: SamplingParams) -> int:
        with self._wake:
            self._cancel_running("generate", "suggest")
            self._pending.pop("suggest", None)
            return self._submit("generate", (prompt, params))

    def suggest(self, prompt: str, params: SamplingParams, n_alternatives: int, max_tokens: int,
                stop_at_sentence_end: bool) -> int:
        """Ghost-text suggestions for `prompt`; replaces and cancels any earlier request."""
        with self._wake:
            self._cancel_running("suggest")
            return self._submit("suggest", (prompt, params, n_alternatives, max_tokens,
                                            stop_at_sentence_end))

    def cancel_suggestion(self) -> None:
        """Stop the running suggestion now and forget a waiting one (a key was pressed)."""
        with self._wake:
            self._pending.pop("suggest", None)
            self._cancel_running("suggest")

    def warm(self, prompt: str, room: int) -> int:
        """Read `prompt` into the model's KV cache while nothing else runs, so that the next
        request on it runs only what changed. A newer one replaces it; other requests do not
        stop it (they want the same prefix)."""
        with self._wake:
            self._cancel_running("warm")
            return self._submit("warm", (prompt, room))

    def request_candidates(self, prompt: str, params: SamplingParams, top_n: int = 20) -> int:
        with self._wake:
            return self._submit("candidates", (prompt, params, top_n))

    def run_on_engine(self, call: Callable[[TextEngine], None]) -> None:
        """Run `call(engine)` on this thread once the jobs already waiting have run, and wait
        for it; raises what it raised. For one other thread that needs the engine (the local
        server's queue), never the GUI thread: it blocks."""
        finished = threading.Event()
        failure: list[Exception] = []
        with self._wake:
            if self._quit:
                raise GhostpenError("The window is closing.")
            assert "call" not in self._pending, "run_on_engine takes one caller at a time"
            self._submit("call", (call, finished, failure))
        finished.wait()
        if failure:
            raise failure[0]

    def run_action(self, build_prompt: Callable[[TextEngine], str],
                   params: SamplingParams) -> int:
        """Generate from the prompt `build_prompt(engine)` makes on this thread (it may count
        tokens) for the side pane: `action_token`s, then `action_finished`. Replaces and
        cancels an earlier action; the document's generation and suggestions go on."""
        with self._wake:
            self._cancel_running("action")
            return self._submit("action", (build_prompt, params))

    def stop_action(self) -> None:
        """Cancel the running writing action and a waiting one."""
        with self._wake:
            self._pending.pop("action", None)
            self._cancel_running("action")

    def score(self, text: str) -> int:
        """Every token of `text` with its probability and rank (the surprise lens), in the
        background: `score_progress`, then `scores_ready`. Replaces and cancels an earlier
        request; other requests pause it."""
        with self._wake:
            self._stop_scoring()
            return self._submit("score", (text,))

    def stop_scoring(self) -> None:
        """Cancel the running scoring and a waiting one; nothing resumes."""
        with self._wake:
            self._stop_scoring()

    def _stop_scoring(self) -> None:
        self._pending.pop("score", None)
        if self._running is not None and self._running.kind == "score":
            self._running.resume = False
            self._running.cancel.set()

    def stop(self) -> None:
        """Cancel the running generation and any waiting one."""
        with self._wake:
            self._pending.pop("generate", None)
            if self._running is not None and self._running.kind == "generate":
                self._running.cancel.set()

    def busy(self) -> bool:
        """A job is running or waiting."""
        with self._wake:
            return self._running is not None or bool(self._pending)

    def shutdown(self) -> None:
        """Cancel everything, close the engine on its own thread and wait for the thread."""
        with self._wake:
            self._quit = True
            waiting_call = self._pending.get("call")
            if waiting_call is not None:  # its caller waits for an answer: give it one
                waiting_call.args[2].append(GhostpenError("The window is closing."))
                waiting_call.args[1].set()
            self._pending.clear()
            if self._running is not None:
                self._running.cancel.set()
            self._wake.notify()
        if self.isRunning():
            self.wait()

    def _cancel_running(self, *kinds: str) -> None:
        if self._running is not None and self._running.kind in kinds:
            self._running.cancel.set()

    def _submit(self, kind: JobKind, args: tuple[Any, ...]) -> int:
        running = self._running
        if (kind not in ("score", "warm") and running is not None and running.kind == "score"
                and not running.cancel.is_set()):  # a stopped one stays stopped
            running.resume = True  # pause it: it runs again after this one
            running.cancel.set()
        self._last_id += 1
        self._pending[kind] = _Job(kind, self._last_id, args)
        if not self.isRunning() and not self._quit:
            self.start()
        self._wake.notify()
        return self._last_id

    # --- the worker thread -------------------------------------------------------------------

    def run(self) -> None:
        # Before any model is loaded: onnxruntime's pool threads, started by this one, inherit it.
        give_way_to_the_window()
        try:
            while True:
                with self._wake:
                    while not self._pending and not self._quit:
                        self._wake.wait()
                    if self._quit:
                        return
                    job = self._pending.pop(next(k for k in _KINDS if k in self._pending))
                    self._running = job
                try:
                    self._run_job(job)
                finally:
                    with self._wake:
                        self._running = None
        finally:
            self._close_engine()

    def _run_job(self, job: _Job) -> None:
        """Run `job`'s handler; an exception it raises becomes its kind's failure report."""
        handler = self._handlers[job.kind]
        try:
            handler.run(job)
        except Exception as error:
            if not isinstance(error, GhostpenError):  # a bug: its traceback goes to the log
                log.error("%s", handler.context, exc_info=error)
            handler.report_failure(job, error, user_message(error, handler.context))

    def _run_load(self, job: _Job) -> None:
        (factory,) = job.args
        self._close_engine()
        self._engine = factory()
        self.engine_loaded.emit(self._engine.info)

    def _load_failed(self, job: _Job, error: Exception, message: str) -> None:
        self.engine_failed.emit(message, isinstance(error, NoModelError))

    def _run_generate(self, job: _Job) -> None:
        prompt, params = job.args
        self.generation_started.emit(job.request_id)
        if self._engine is None:
            self.generation_failed.emit(job.request_id, "No model is loaded.")
            return
        stats = self._stream(self._engine, job, prompt, params, self.token_generated)
        self.generation_finished.emit(job.request_id, stats)

    def _run_action(self, job: _Job) -> None:
        build_prompt, params = job.args
        if self._engine is None:
            self.action_failed.emit(job.request_id, "No model is loaded yet.")
            return
        prompt = build_prompt(self._engine)
        stats = self._stream(self._engine, job, prompt, params, self.action_token)
        self.action_finished.emit(job.request_id, stats)

    def _stream(self, engine: TextEngine, job: _Job, prompt: str, params: SamplingParams,
                token_signal: SignalInstance) -> GenerationStats:
        """Emit one `token_signal(request id, event)` per token until the end or a cancel."""
        events = None
        try:
            events = iter(engine.generate(prompt, params, job.cancel))
            for event in events:
                if job.cancel.is_set():
                    break
                token_signal.emit(job.request_id, event)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # the engine's own clean-up runs here, on its thread
        stats = dataclasses.replace(engine.last_stats or GenerationStats())
        if job.cancel.is_set():
            stats.stop_reason = "cancelled"
        return stats

    def _run_suggest(self, job: _Job) -> None:
        if self._engine is None or job.cancel.is_set():
            return
        suggestions = self._engine.suggest(*job.args, cancel=job.cancel)
        if not job.cancel.is_set():
            self.suggestions_ready.emit(job.request_id, suggestions)

    def _run_candidates(self, job: _Job) -> None:
        prompt, params, top_n = job.args
        if self._engine is None:
            return
        candidates = self._engine.candidates(prompt, params, top_n)
        n_tokens = self._engine.count_tokens(prompt)
        self.candidates_ready.emit(job.request_id, candidates, n_tokens)

    def _run_warm(self, job: _Job) -> None:
        prompt, room = job.args
        if self._engine is None:
            return
        n_tokens = self._engine.warm(prompt, room, job.cancel)
        self.warmed.emit(job.request_id, n_tokens)

    def _run_score(self, job: _Job) -> None:
        (text,) = job.args
        if self._engine is None:
            return
        last_emit = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last_emit
            now = time.monotonic()
            if done == total or now - last_emit >= _SCORE_PROGRESS_S:
                last_emit = now
                self.score_progress.emit(job.request_id, done, total)

        scores = self._engine.score(text, job.cancel, progress)
        if not job.cancel.is_set():
            self.scores_ready.emit(job.request_id, scores)
            return
        with self._wake:
            if job.resume and "score" not in self._pending and not self._quit:
                self._pending["score"] = _Job("score", job.request_id, job.args)

    def _run_call(self, job: _Job) -> None:
        call, finished, failure = job.args
        try:
            if self._engine is None:
                raise GhostpenError("No model is loaded in the window yet.")
            call(self._engine)
        except Exception as error:  # the caller's to report
            failure.append(error)
        finally:
            finished.set()

    def _close_engine(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            try:
                engine.close()
            except Exception:
                log.exception("engine.close() failed")

