"""The distribution view: banned words shown as cut, and the chart following the model as it
writes; with the fake engine and with a real tiny GPT-2."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.engine.events import Alternative, TokenEvent
from app.engine.fake import FakeEngine
from app.engine.sampling_params import SamplingParams
from app.engine.text_escapes import escape
from app.ui.distribution_feed import writes_banned
from app.ui.distribution_view import DistributionView
from app.ui.main_window import MainWindow

from .conftest import set_max_tokens, set_number


def value_of(view: DistributionView, token: str) -> str | None:
    """What the row of `token` (as the view writes it) says after sampling."""
    return dict(view.rows()).get(token)


def kept(view: DistributionView, text: str) -> bool | None:
    """Whether the view shows the token `text` as kept; None when it has no row."""
    return next((c.kept for c in view.candidates() if c.text == text), None)


def test_a_banned_word_is_shown_cut_by_the_ban(qtbot: QtBot, window: MainWindow) -> None:
    view = window.panel.distribution
    qtbot.keyClicks(window.editor, "Hello")
    set_number(window, "top_k", 4)
    qtbot.waitUntil(lambda: [c.text for c in view.candidates() if c.kept] == list("abcd"),
                    timeout=5000)
    window.panel.banned_edit.setPlainText("b")
    qtbot.waitUntil(lambda: kept(view, "b") is False, timeout=5000)
    assert value_of(view, "b") == "banned"
    assert [value_of(view, t) for t in "acd"] == ["33 %"] * 3  # they share what the ban left
    assert "would write a banned string" in view.accessibleDescription()


def test_a_token_is_banned_when_it_completes_a_banned_string_in_the_run() -> None:
    assert writes_banned("", " darkness", ("dark",))  # a word inside a token
    assert not writes_banned("", " da", ("dark",))  # only the start of one: not yet
    assert writes_banned("in the da", "rk", ("dark",))  # the end of one begun before
    assert not writes_banned("in the da", "wn", ("dark",))


class NumberingEngine(FakeEngine):
    """Writes "0 1 2 …", one number a token (id 1000 + n), every 10 ms; at each step the
    chain keeps the number and "c" of the alternatives."""

    def generate(self, prompt: str, params: SamplingParams,
                 cancel: threading.Event | None = None,
                 n_alternatives: int = 10) -> Iterator[TokenEvent]:
        for n in range(params.max_new_tokens):
            if cancel is not None and cancel.is_set():
                return
            time.sleep(0.01)
            yield TokenEvent(1000 + n, f"{n} ", 0.5, (
                Alternative(1000 + n, f"{n} ", 0.5, 0.6), Alternative(99, "c", 0.3, 0.4),
                Alternative(98, "d", 0.2, 0.0)))


def test_the_view_follows_the_model_as_it_writes(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window(NumberingEngine)
    view = window.panel.distribution
    window.panel.banned_edit.setPlainText("c")
    set_max_tokens(window, 1000)
    qtbot.keyClicks(window.editor, "Go ")
    qtbot.waitUntil(lambda: kept(view, "c") is False, timeout=5000)
    window.generate_action.trigger()
    steps: list[int] = []

    def step_shown() -> int:
        return max(c.token_id for c in view.candidates()) - 1000

    while len(steps) < 5:  # five later and later steps, each shown while the model writes
        qtbot.waitUntil(lambda: step_shown() > (steps[-1] if steps else -1), timeout=2000)
        assert window.generation.running
        step = step_shown()
        assert view.chosen_id() == 1000 + step
        written = int(window.editor.toPlainText().split()[-1])
        assert written - 20 <= step <= written  # the step of a token it has just written
        assert window.panel.distribution_title.text() == "Latest token the model wrote"
        assert dict(view.rows()) == {f"{step}·": "100 %", "c": "banned", "d": "cut"}
        steps.append(step)
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: view.chosen_id() is None, timeout=5000)  # back at the cursor
    assert window.panel.distribution_title.text() == "Next token at the cursor"


@pytest.fixture
def real_window(tiny_model: Path, make_window: Callable[..., MainWindow]) -> MainWindow:
    pytest.importorskip("onnxruntime")
    from app.engine.engine import load_engine

    return make_window(lambda: load_engine(tiny_model, device="cpu"))


def test_with_a_real_model_a_banned_favourite_hands_its_place_to_the_next(
        qtbot: QtBot, real_window: MainWindow) -> None:
    window = real_window
    view = window.panel.distribution
    set_number(window, "temperature", 0)  # greedy: the likeliest token gets everything
    qtbot.keyClicks(window.editor, "The lighthouse keeper")
    qtbot.waitUntil(lambda: bool(view.candidates()) and view.candidates()[0].p_final == 1.0,
                    timeout=5000)
    favourite, runner_up = view.candidates()[:2]
    assert not runner_up.kept
    window.panel.banned_edit.setPlainText(escape(favourite.text))
    qtbot.waitUntil(lambda: not view.candidates()[0].kept, timeout=5000)
    assert view.rows()[0][1] == "banned"
    first, second = view.candidates()[:2]
    assert first.token_id == favourite.token_id and not first.kept
    assert second.token_id == runner_up.token_id
    assert second.kept and second.p_final == pytest.approx(1.0)  # what greedy will write now


def test_with_a_real_model_the_view_shows_what_the_chain_kept_while_writing(
        qtbot: QtBot, real_window: MainWindow) -> None:
    window = real_window
    view = window.panel.distribution
    window.panel.set_params(SamplingParams(temperature=1.0, top_k=3, top_p=1.0, min_p=0.0,
                                           max_new_tokens=2000))
    qtbot.keyClicks(window.editor, "The lighthouse keeper")
    qtbot.waitUntil(lambda: len(view.candidates()) == 12, timeout=5000)  # at the cursor
    qtbot.keyClick(window.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(view.candidates()) == 10, timeout=5000)  # a step's ten
    assert window.generation.running
    kept_now = [c for c in view.candidates() if c.kept]
    assert len(kept_now) == 3
    assert sum(c.p_final for c in kept_now) == pytest.approx(1.0, abs=1e-4)
    assert view.chosen_id() in {c.token_id for c in kept_now}
    window.stop_action.trigger()
