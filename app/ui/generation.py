"""Generate, Stop and Regenerate: turns the worker's token signals into edits of the editor.

Only the answer to the newest request is used: a token, end or error tagged with any other id
(say, from a run that was just stopped and whose last signals are still queued) is dropped, so
nothing appears after Stop.

Tokens go into the editor at most every WRITE_INTERVAL_MS: the first of a stream at once, those
that come while the interval runs together at its end. A small model writes a token every 1-2
ms, and each edit of the document costs a layout and a repaint on the GUI thread, whose Python
the worker then waits for (the GIL): written one at a time, the 16M stand-in wrote 128-283
tok/s in the window (Token Colours on) against ~450-500 in the engine alone (2 cores,
2026-12-03).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from app.engine.events import GenerationStats, TokenEvent
from app.engine.sampling_params import SamplingParams
from app.ui.editor import Editor
from app.ui.spans import GenerationRange
from app.ui.worker import EngineWorker

# The most a written token waits for the editor: under a frame at 30 Hz, so the text still
# streams, and at a few hundred tokens a second several go in at once.
WRITE_INTERVAL_MS = 30


@dataclass(frozen=True)
class WrittenRun:
    """A run that put text in the document: what it wrote, where, after what, and the last
    generation as it was when the run began (the run replaced part of it, or followed it)."""

    prompt: str
    tokens: tuple[TokenEvent, ...]
    start: int
    replaced: bool  # it took the place of text (Regenerate), rather than going in at a point
    previous: GenerationRange | None
    params: SamplingParams


class GenerationController(QObject):
    running_changed = Signal(bool)
    token_written = Signal(object)  # TokenEvent, once it is in the editor
    finished = Signal(object)  # GenerationStats, also for a stopped run
    failed = Signal(str)
    run_written = Signal(object)  # WrittenRun: a run that wrote something has ended

    def __init__(self, worker: EngineWorker, editor: Editor,
                 params_for_run: Callable[[], SamplingParams], parent: QObject | None = None
                 ) -> None:
        super().__init__(parent)
        self._worker = worker
        self._editor = editor
        self._params_for_run = params_for_run
        self._active: int | None = None
        self._stopped: int | None = None
        self._run: WrittenRun | None = None  # the running one; its tokens gather in _tokens
        self._tokens: list[TokenEvent] = []
        self._unwritten: list[TokenEvent] = []  # the active run's, waiting for the interval
        self._write_timer = QTimer(self, singleShot=True, interval=WRITE_INTERVAL_MS)
        self._write_timer.timeout.connect(self._write_waiting)
        self.run_params = SamplingParams()  # those of the running or the last run
        worker.token_generated.connect(self._on_token)
        worker.generation_finished.connect(self._on_finished)
        worker.generation_failed.connect(self._on_failed)
        editor.regenerate_requested.connect(self.generate_range)

    @property
    def running(self) -> bool:
        return self._active is not None

    def generate(self) -> None:
        """Continue the text at the cursor."""
        if self.running:
            self.stop()
        at = self._editor.insertion_point()
        self.generate_range(at, at)

    def regenerate(self) -> None:
        """Replace what the model last wrote with a new run; without a last generation,
        generate at the cursor.

        Only the text the writer has not touched is replaced: when they changed something
        inside the last generation, everything up to the end of their last change there stays
        (it is the writer's now, and the prompt of the new run) and the rest is written anew.
        """
        if self.running:
            self.stop()
        last = self._editor.last_generation()
        if last is None:
            self.generate()
        else:
            self.generate_range(last.untouched, last.end)

    def generate_range(self, start: int, end: int) -> None:
        """Replace [start, end) (empty: insert at start) with a generation, as one undo step."""
        if self.running:
            self.stop()
        params = self._params_for_run()
        self.run_params = params
        prompt = self._editor.text_before(start)
        self._run = WrittenRun(prompt, (), start, end > start, self._editor.last_generation(),
                               params)
        self._tokens = []
        self._editor.begin_generation(start, end if end > start else None)
        self._active = self._worker.generate(prompt, params)
        self.running_changed.emit(True)

    def stop(self) -> None:
        """End the run now: the text stays as it is, and later tokens of this run are dropped."""
        if self._active is None:
            return
        self._write_all()  # what came before Stop was the run's
        self._worker.stop()
        self._stopped, self._active = self._active, None
        self._editor.end_generation()
        self._emit_written()
        self.running_changed.emit(False)

    def _on_token(self, request_id: int, event: TokenEvent) -> None:
        if request_id != self._active:
            return
        self._unwritten.append(event)
        if not self._write_timer.isActive():  # the first of a stream goes in at once
            self._write_waiting()

    def _write_waiting(self) -> None:
        """Write the tokens that came since the last write, and wait the interval before the
        next write (stopped once nothing more came in one)."""
        events, self._unwritten = self._unwritten, []
        if not events:
            self._write_timer.stop()
            return
        self._editor.append_tokens(events)
        self._tokens.extend(event for event in events if event.text)
        self._write_timer.start()
        for event in events:
            self.token_written.emit(event)

    def _write_all(self) -> None:
        """Write what is waiting now, as the run ends: the next run's first token then goes in
        at once too."""
        self._write_waiting()
        self._write_timer.stop()

    def _on_finished(self, request_id: int, stats: GenerationStats) -> None:
        if request_id == self._stopped:
            self._stopped = None
            self.finished.emit(stats)
            return
        if request_id != self._active:
            return
        self._write_all()
        self._active = None
        self._editor.end_generation()
        self._emit_written()
        self.running_changed.emit(False)
        self.finished.emit(stats)

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id != self._active:
            return
        self._write_all()  # what the run wrote before it failed stays
        self._active = None
        self._editor.end_generation()
        self._emit_written()
        self.running_changed.emit(False)
        self.failed.emit(message)

    def _emit_written(self) -> None:
        run, self._run = self._run, None
        if run is not None and self._tokens:
            tokens, self._tokens = tuple(self._tokens), []
            self.run_written.emit(WrittenRun(run.prompt, tokens, run.start, run.replaced,
                                             run.previous, run.params))
