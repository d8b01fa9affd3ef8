"""What the distribution view shows: the next token at the cursor, or, while the model writes,
the step at which it wrote its latest token.

At the cursor the candidates are the engine's answer to `EngineWorker.request_candidates`. The
engine keeps banned strings out of the sampler chain: it undoes a banned string once written
and draws again with the token that began it cut ahead of the chain. So when a candidate would
write a banned string, the question is asked once more with those tokens cut the same way (a
-inf logit bias before any truncating step), and they are shown as banned.

While it generates, the engine answers nothing else; instead each token it writes carries the
ten likeliest tokens of its step with what the chain kept of them. The view shows the latest
of these, at most every LIVE_INTERVAL_MS (a person cannot read faster), with the token that was
written in bold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from app.engine.events import Candidate, TokenEvent
from app.engine.sampling_params import SamplingParams
from app.ui.generation import GenerationController
from app.ui.sampling_panel import SamplingPanel
from app.ui.worker import EngineWorker

LIVE_INTERVAL_MS = 100
AT_CURSOR_TITLE = "Next token at the cursor"
LIVE_TITLE = "Latest token the model wrote"
_TRUNCATING_STEPS = ("top_k", "typical_p", "top_p", "min_p", "xtc")


def writes_banned(text_before: str, token_text: str, banned: Sequence[str]) -> bool:
    """Whether `token_text`, written after this run's `text_before`, completes a banned string
    (as the generator checks it: within the run's own text, never the prompt's)."""
    for s in banned:
        tail = text_before[-(len(s) - 1):] if len(s) > 1 else ""  # too short to hold s alone
        if s in tail + token_text:
            return True
    return False


def cut_banned(candidates: Sequence[Candidate], banned_ids: frozenset[int]) -> list[Candidate]:
    """Banned candidates cut; the others' share after sampling scaled up to the mass left, as
    the engine's draw without them would give it."""
    left = 1.0 - sum(c.p_final for c in candidates if c.kept and c.token_id in banned_ids)
    scale = 1.0 / left if left > 1e-9 else 1.0
    return [Candidate(c.token_id, c.text, c.p_model, 0.0, False) if c.token_id in banned_ids
            else Candidate(c.token_id, c.text, c.p_model, c.p_final * scale, c.kept)
            for c in candidates]


def params_banning(params: SamplingParams, banned_ids: frozenset[int]) -> SamplingParams | None:
    """`params` with `banned_ids` cut before any truncating step, where the generator's redraw
    cuts them; None when the person's own logit bias comes after a truncating step (moving it
    there would change what it does)."""
    order = list(params.sampler_order)
    truncating = [order.index(step) for step in _TRUNCATING_STEPS if step in order]
    first_truncating = min(truncating, default=len(order))
    if "logit_bias" not in order or order.index("logit_bias") > first_truncating:
        if params.logit_bias:
            return None
        if "logit_bias" in order:
            order.remove("logit_bias")
        order.insert(0, "logit_bias")
    bias = {**params.logit_bias, **{token_id: -math.inf for token_id in banned_ids}}
    return params.replace(logit_bias=bias, sampler_order=tuple(order))


@dataclass(frozen=True)
class _Question:
    """One preview asked of the engine."""

    prompt: str
    params: SamplingParams
    banned_ids: frozenset[int] = frozenset()  # cut in the question: this is the second asking


class DistributionFeed(QObject):
    context_counted = Signal(int)  # tokens before the cursor, as the engine counted them

    def __init__(self, worker: EngineWorker, generation: GenerationController,
                 panel: SamplingPanel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker = worker
        self._generation = generation
        self._view = panel.distribution
        self._title = panel.distribution_title
        self._request_id = 0
        self._question: _Question | None = None
        self._run_text = ""  # what the running generation has written so far
        self._latest: tuple[TokenEvent, str] | None = None  # a token and the run's text before
        self._live_timer = QTimer(self, singleShot=True, interval=LIVE_INTERVAL_MS)
        self._live_timer.timeout.connect(self._show_latest)
        worker.candidates_ready.connect(self._on_candidates)
        generation.running_changed.connect(self._on_running_changed)
        generation.token_written.connect(self._on_token)

    # --- at the cursor ------------------------------------------------------------------------

    def request(self, prompt: str, params: SamplingParams) -> None:
        """Ask for the next-token candidates after `prompt`; the answer is shown when it comes."""
        self._ask(_Question(prompt, params), params)

    def _ask(self, question: _Question, params: SamplingParams) -> None:
        self._question = question
        self._request_id = self._worker.request_candidates(question.prompt, params)

    def _on_candidates(self, request_id: int, candidates: list[Candidate], n_tokens: int) -> None:
        question = self._question
        if request_id != self._request_id or question is None:
            return
        banned = question.banned_ids
        if not banned:
            self.context_counted.emit(n_tokens)
            banned = frozenset(c.token_id for c in candidates
                               if writes_banned("", c.text, question.params.banned_strings))
            banning = params_banning(question.params, banned) if banned else None
            if banning is not None:
                self._ask(_Question(question.prompt, question.params, banned), banning)
                return
        self._title.setText(AT_CURSOR_TITLE)
        self._view.set_candidates(cut_banned(candidates, banned), banned)

    # --- while the model writes ---------------------------------------------------------------

    def _on_running_changed(self, running: bool) -> None:
        self._run_text = ""
        self._latest = None
        self._live_timer.stop()  # after the run the window asks for the cursor's preview
        if running:
            self._question = None  # a preview asked before the run is about another text

    def _on_token(self, event: TokenEvent) -> None:
        self._latest = (event, self._run_text)
        self._run_text += event.text
        if not self._live_timer.isActive():  # a throttle: the first token shows at once
            self._show_latest()
            self._live_timer.start()

    def _show_latest(self) -> None:
        if self._latest is None:
            return
        event, text_before = self._latest
        self._latest = None
        if not event.alternatives:
            return
        banned_strings = self._generation.run_params.banned_strings
        # An engine that does not record what the chain kept (p_final None) is shown as
        # keeping every token at the model's own probability.
        candidates = [Candidate(a.token_id, a.text, a.p, a.p if a.p_final is None else a.p_final,
                                a.p_final is None or a.p_final > 0)
                      for a in event.alternatives]
        banned = frozenset(c.token_id for c in candidates
                           if writes_banned(text_before, c.text, banned_strings))
        self._title.setText(LIVE_TITLE)
        self._view.set_candidates(cut_banned(candidates, banned), banned, event.token_id)
