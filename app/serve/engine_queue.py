"""One engine, many clients: requests wait in a FIFO and one thread runs them on the engine.

A job is one request's generations, run one after another; each hands its updates (the prompt's
token count, every token event, how it finished) to the job's `emit`, which is called on the
queue's thread and must only pass them on. A client that leaves sets the job's cancel event:
the engine stops at the next token, and a job still waiting is dropped when its turn comes.

`run_on_engine(call)` is how the queue's thread reaches the engine, and the engine is only ever
called from inside it. Headless, the queue's thread owns the engine and calls it directly; in the
window it hands `call` to the window's EngineWorker and waits, so that the worker's thread stays
the engine's only caller there too.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from app.engine.errors import GhostpenError, user_message
from app.engine.events import TokenEvent
from app.engine.protocol import TextEngine
from app.engine.sampling_params import SamplingParams
from app.engine.tokenizer import IncrementalDecoder

log = logging.getLogger(__name__)

RunOnEngine = Callable[[Callable[[TextEngine], None]], None]


@dataclass(frozen=True)
class Generation:
    """One completion to write."""

    run: int  # its number in the job
    prompt: str
    params: SamplingParams
    max_tokens: int  # 0: none, only the prompt's count (and pieces)


@dataclass(frozen=True)
class Started:
    run: int
    prompt_tokens: int
    prompt_pieces: tuple[str, ...] | None  # the prompt's tokens' text, when the job asked


@dataclass(frozen=True)
class Token:
    run: int
    event: TokenEvent


@dataclass(frozen=True)
class Finished:
    run: int
    finish_reason: str  # OpenAI's: "stop" (end of text or a stop string) or "length"
    completion_tokens: int


@dataclass(frozen=True)
class JobEnded:
    error: str | None = None  # one line; None when every generation finished


Update = Started | Token | Finished | JobEnded


@dataclass
class Job:
    generations: tuple[Generation, ...]
    emit: Callable[[Update], None]
    n_alternatives: int = 0  # alternatives each token event lists
    prompt_pieces: bool = False  # tokenize the prompt for the caller (echo with logprobs)
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class QueueStats:
    waiting: int  # jobs in the queue whose client is still there
    running: bool
    completed: int
    cancelled: int  # stopped while running: the client left
    dropped: int  # the client left before the job's turn
    tokens_generated: int  # token events the engine produced, all jobs together


class QueueClosedError(GhostpenError):
    """The server is stopping and takes no more requests."""


class EngineQueue:
    def __init__(self, run_on_engine: RunOnEngine, name: str = "ghostpen-serve-engine") -> None:
        self._run_on_engine = run_on_engine
        self._wake = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._running: Job | None = None
        self._closed = False
        self._completed = self._cancelled = self._dropped = self._tokens = 0
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._wake:
            if self._closed:
                raise QueueClosedError("The server is stopping; send the request again once "
                                       "it runs.")
            self._waiting.append(job)
            self._wake.notify()

    def stats(self) -> QueueStats:
        with self._wake:
            waiting = sum(1 for job in self._waiting if not job.cancel.is_set())
            return QueueStats(waiting, self._running is not None, self._completed,
                              self._cancelled, self._dropped, self._tokens)

    def close(self, timeout_s: float | None = None) -> None:
        """Take no more jobs, end the waiting ones, cancel the running one and wait for it."""
        with self._wake:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            if self._running is not None:
                self._running.cancel.set()
            self._wake.notify()
        for job in waiting:
            job.cancel.set()
            job.emit(JobEnded("The server is stopping."))
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    # --- the queue's thread ------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job = self._waiting.popleft()
                if job.cancel.is_set():
                    self._dropped += 1
                    continue
                self._running = job
            error: str | None = None
            try:
                self._run_on_engine(lambda engine, job=job: self._run(engine, job))
            except Exception as failure:
                if not isinstance(failure, GhostpenError):  # a bug: the traceback to the log
                    log.error("Generation failed", exc_info=failure)
                error = user_message(failure, "Generation failed")
            with self._wake:
                self._running = None
                if job.cancel.is_set():
                    self._cancelled += 1
                else:
                    self._completed += 1
            job.emit(JobEnded(error))

    def _run(self, engine: TextEngine, job: Job) -> None:
        for generation in job.generations:
            if job.cancel.is_set():
                return
            prompt_tokens = engine.count_tokens(generation.prompt)
            pieces = prompt_pieces(engine, generation.prompt) if job.prompt_pieces else None
            job.emit(Started(generation.run, prompt_tokens, pieces))
            if generation.max_tokens == 0:
                job.emit(Finished(generation.run, "length", 0))
                continue
            events = engine.generate(generation.prompt, generation.params, job.cancel,
                                     n_alternatives=job.n_alternatives)
            try:
                for event in events:
                    with self._wake:
                        self._tokens += 1
                    job.emit(Token(generation.run, event))
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()  # the engine's own clean-up runs here, on its thread
            if job.cancel.is_set():
                return
            stats = engine.last_stats
            reason = "length" if stats.stop_reason == "max_new_tokens" else "stop"
            job.emit(Finished(generation.run, reason, stats.new_tokens))


def prompt_pieces(engine: TextEngine, prompt: str) -> tuple[str, ...]:
    """The prompt's tokens as text, as the engine reads it: pieces that join to the prompt (a
    token holding part of a character is "" and the token that completes it holds it). An
    engine that shows no tokenizer (the fake one) gives the prompt as one piece."""
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None:
        return (prompt,) if prompt else ()
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(token) for token in tokenizer.encode(prompt)]
    if pieces:
        pieces[-1] += decoder.flush()
    return tuple(pieces)
