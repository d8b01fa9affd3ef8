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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from app.engine.errors import GhostpenError
from app.engine.events import GenerationStats
from app.engine.protocol import TextEngine
from app.engine.sampling_params import SamplingParams
from app.ui.engines import NoModelError

log = logging.getLogger(__name__)

# Run order when several kinds wait: a model load first, then generation, then a suggestion
# (someone is waiting for it), then the preview, then reading the text ahead of time.
_KINDS = ("load", "generate", "suggest", "candidates", "warm")


@dataclass
class _Job:
    kind: str
    request_id: int
    args: tuple[Any, ...]
    cancel: threading.Event = field(default_factory=threading.Event)


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

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("engine-worker")
        self._wake = threading.Condition()
        self._pending: dict[str, _Job] = {}
        self._running: _Job | None = None
        self._quit = False
        self._last_id = 0
        self._engine: TextEngine | None = None  # touched on the worker thread only

    # --- requests, from the GUI thread -------------------------------------------------------

    def load(self, factory: Callable[[], TextEngine]) -> int:
        """Replace the engine with `factory()`, built on this thread; cancels a generation."""
        with self._wake:
            self._cancel_running("generate", "suggest", "warm")
            for kind in ("generate", "suggest", "warm"):
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
            self._pending.clear()
            if self._running is not None:
                self._running.cancel.set()
            self._wake.notify()
        if self.isRunning():
            self.wait()

    def _cancel_running(self, *kinds: str) -> None:
        if self._running is not None and self._running.kind in kinds:
            self._running.cancel.set()

    def _submit(self, kind: str, args: tuple[Any, ...]) -> int:
        self._last_id += 1
        self._pending[kind] = _Job(kind, self._last_id, args)
        if not self.isRunning() and not self._quit:
            self.start()
        self._wake.notify()
        return self._last_id

    # --- the worker thread -------------------------------------------------------------------

    def run(self) -> None:
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
                    getattr(self, f"_run_{job.kind}")(job)
                finally:
                    with self._wake:
                        self._running = None
        finally:
            self._close_engine()

    def _run_load(self, job: _Job) -> None:
        (factory,) = job.args
        self._close_engine()
        try:
            self._engine = factory()
        except Exception as error:
            self.engine_failed.emit(_one_line(error, "Could not load the model"),
                                    isinstance(error, NoModelError))
            return
        self.engine_loaded.emit(self._engine.info)

    def _run_generate(self, job: _Job) -> None:
        prompt, params = job.args
        self.generation_started.emit(job.request_id)
        if self._engine is None:
            self.generation_failed.emit(job.request_id, "No model is loaded.")
            return
        events = None
        try:
            events = iter(self._engine.generate(prompt, params, job.cancel))
            for event in events:
                if job.cancel.is_set():
                    break
                self.token_generated.emit(job.request_id, event)
        except Exception as error:
            self.generation_failed.emit(job.request_id, _one_line(error, "Generation failed"))
            return
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # the engine's own clean-up runs here, on its thread
        stats = dataclasses.replace(self._engine.last_stats or GenerationStats())
        if job.cancel.is_set():
            stats.stop_reason = "cancelled"
        self.generation_finished.emit(job.request_id, stats)

    def _run_suggest(self, job: _Job) -> None:
        if self._engine is None or job.cancel.is_set():
            return
        try:
            suggestions = self._engine.suggest(*job.args, cancel=job.cancel)
        except Exception as error:
            self.suggestions_failed.emit(job.request_id, _one_line(error, "Suggestion failed"))
            return
        if not job.cancel.is_set():
            self.suggestions_ready.emit(job.request_id, suggestions)

    def _run_candidates(self, job: _Job) -> None:
        prompt, params, top_n = job.args
        if self._engine is None:
            return
        try:
            candidates = self._engine.candidates(prompt, params, top_n)
            n_tokens = self._engine.count_tokens(prompt)
        except Exception as error:
            self.candidates_failed.emit(job.request_id, _one_line(error, "Preview failed"))
            return
        self.candidates_ready.emit(job.request_id, candidates, n_tokens)

    def _run_warm(self, job: _Job) -> None:
        prompt, room = job.args
        if self._engine is None:
            return
        try:
            n_tokens = self._engine.warm(prompt, room, job.cancel)
        except Exception as error:  # only a head start was lost; the next request says why
            log.warning("%s", _one_line(error, "Reading the text ahead failed"))
            return
        self.warmed.emit(job.request_id, n_tokens)

    def _close_engine(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            try:
                engine.close()
            except Exception:
                log.exception("engine.close() failed")


def _one_line(error: BaseException, context: str) -> str:
    """A GhostpenError already speaks to the user; anything else is a bug: log it, summarise."""
    if isinstance(error, GhostpenError):
        return str(error).splitlines()[0] if str(error) else context + "."
    log.error("%s", context, exc_info=error)
    return f"{context}: {type(error).__name__}: {error}".splitlines()[0] + " (details in the log)"
