"""The surprise lens in the real window: colours, hover, perplexity, repeats, rescoring after an
edit, and giving way to a generation. The fake engine ranks bytes by a fixed rule (a lowercase
letter or a space 1, a capital 50, punctuation 500, anything else 5000): see FakeEngine.score."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QColor, QHelpEvent, QPalette, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QApplication, QToolTip
from pytestqt.qtbot import QtBot

from app.engine.fake import FakeEngine
from app.engine.sampling_params import SamplingParams
from app.engine.scoring import perplexity, rank_bucket
from app.ui.engines import NoModelError
from app.ui.main_window import MainWindow
from app.ui.surprise_lens import _figure, rank_colour
from app.ui.worker import EngineWorker

from .conftest import generate_and_wait, set_max_tokens

TEXT = "the cat sat. The Cat sat!"


def lens_on(qtbot: QtBot, window: MainWindow, text: str = TEXT) -> None:
    window.editor.set_text(text)
    qtbot.keyClick(window.editor, Qt.Key.Key_L,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.lens.enabled()
    qtbot.waitUntil(lambda: len(window.lens.scores()) == len(text.encode()), timeout=5000)


def backgrounds(window: MainWindow) -> dict[tuple[int, int], QColor]:
    """The lens's washes: [start, end) -> colour (painted behind the text, see
    test_the_washes_are_painted_behind_their_own_words)."""
    return {(start, end): colour for start, end, colour in window.editor.lens_washes()}


def test_the_lens_colours_every_token_by_rank_without_touching_the_document(
        qtbot: QtBot, window: MainWindow) -> None:
    lens_on(qtbot, window)
    editor, palette = window.editor, window.editor.palette()
    marks = backgrounds(window)
    # "the" top 10 (green), "." top 1000 (red), "T" top 100 (yellow); a lone space has none.
    assert marks[(0, 3)] == rank_colour(0, palette)
    assert (3, 4) not in marks
    assert marks[(11, 12)] == rank_colour(2, palette)
    assert marks[(13, 14)] == rank_colour(1, palette)
    assert editor.toPlainText() == TEXT
    assert not editor.document().isModified()
    assert not editor.document().isUndoAvailable()
    assert window.lens.legend.isVisible()
    assert window.lens.legend.swatches[3].text() == "beyond"

    window.lens.action.trigger()  # off: the normal view comes back
    assert not window.lens.enabled()
    assert backgrounds(window) == {}
    assert not window.lens.legend.isVisible()


def test_probability_mode_and_the_dark_theme_change_the_colours(
        qtbot: QtBot, window: MainWindow) -> None:
    lens_on(qtbot, window)
    light = backgrounds(window)[(0, 3)]
    window.lens.legend.mode_button.click()
    assert window.lens.legend.mode_button.text() == "By probability"
    by_probability = backgrounds(window)[(0, 3)]
    assert by_probability != light
    window.set_theme("dark", save=False)
    qtbot.waitUntil(lambda: backgrounds(window).get((0, 3)) != by_probability, timeout=2000)


def test_hovering_a_token_shows_its_rank_probability_and_alternatives(
        qtbot: QtBot, window: MainWindow) -> None:
    lens_on(qtbot, window)
    editor = window.editor
    assert window.lens.tooltip_at(13) == ("“T”: the model's 50th choice here, <0.1 %\n"
                                          "Its top choices: “e” 50 %, “t” 17 %, “a” 8.3 %")
    cursor = QTextCursor(editor.document())
    cursor.setPosition(13)
    rect = editor.cursorRect(cursor)
    point = QPoint(rect.x() + 2, rect.center().y())  # inside the "T"
    event = QHelpEvent(QEvent.Type.ToolTip, point, editor.viewport().mapToGlobal(point))
    QApplication.sendEvent(editor.viewport(), event)
    assert QToolTip.text().startswith("“T”: the model's 50th choice here")


def test_the_status_bar_shows_the_document_and_paragraph_perplexity(
        qtbot: QtBot, window: MainWindow) -> None:
    text = "abc\nA."
    lens_on(qtbot, window, text)
    # p = 1 / (rank (rank + 1)) for ranks 1, 1, 1 | 5000 (the break), 50, 500
    label = window.lens.legend.perplexity_label
    window.editor.moveCursor(QTextCursor.MoveOperation.Start)
    assert label.text() == "Perplexity 710 · paragraph 2.0"
    window.editor.moveCursor(QTextCursor.MoveOperation.End)
    assert label.text() == "Perplexity 710 · paragraph 25,274"


def test_a_passage_that_repeats_an_earlier_one_is_underlined(
        qtbot: QtBot, window: MainWindow) -> None:
    text = "abcd xyz abcd"
    lens_on(qtbot, window, text)
    assert window.lens.repeats() == [(9, 13)]
    underlined = [(s.cursor.selectionStart(), s.cursor.selectionEnd())
                  for s in window.editor.extraSelections()
                  if s.format.underlineStyle() == QTextCharFormat.UnderlineStyle.SingleUnderline]
    assert underlined == [(9, 13)]
    assert window.lens.tooltip_at(10).endswith("Repeats a passage that appeared earlier.")


def test_an_edit_rescores_only_what_changed(qtbot: QtBot,
                                            make_window: Callable[..., MainWindow]) -> None:
    engine = FakeEngine()
    window = make_window(engine=lambda: engine)
    lens_on(qtbot, window)
    window.editor.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(window.editor, " Q")
    assert window.editor.toPlainText() == TEXT + " Q"
    qtbot.waitUntil(lambda: len(window.lens.scores()) == len(TEXT) + 2, timeout=5000)
    assert engine.rescored_from == len(TEXT)
    assert window.lens.score_at(len(TEXT) + 1) is not None
    assert window.lens.score_at(len(TEXT) + 1).score.rank == 50  # type: ignore[union-attr]


def test_scoring_gives_way_to_a_generation_and_resumes(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    engine = FakeEngine(token_delay_s=0.005)
    window = make_window(engine=lambda: engine)
    set_max_tokens(window, 3)
    text = "a" * 300  # 1.5 s of scoring
    window.editor.set_text(text)
    events: list[tuple[str, float]] = []
    window.worker.generation_finished.connect(lambda *_: events.append(("generated",
                                                                        time.monotonic())))
    window.worker.scores_ready.connect(lambda *_: events.append(("scored", time.monotonic())))
    window.lens.set_enabled(True)
    qtbot.waitUntil(lambda: window.lens.legend.progress_label.text().startswith("Scoring"),
                    timeout=3000)
    window.editor.moveCursor(QTextCursor.MoveOperation.End)
    generate_and_wait(qtbot, window)
    assert events[0][0] == "generated"  # it did not wait for the whole text to be scored
    qtbot.waitUntil(lambda: len(window.lens.scores()) == len(window.editor.toPlainText()),
                    timeout=10000)
    assert len(window.editor.toPlainText()) == 303


def test_a_long_text_is_coloured_where_it_shows_first(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    engine = FakeEngine(token_delay_s=0.0005)
    window = make_window(engine=lambda: engine)
    text = "abc def\n" * 600  # 4,800 characters: far more than the editor shows
    window.editor.set_text(text)
    window.editor.moveCursor(QTextCursor.MoveOperation.Start)
    window.lens.set_enabled(True)
    qtbot.waitUntil(lambda: bool(window.lens.scores()), timeout=5000)
    shown = len(window.lens.scores())
    assert 0 < shown < 1000  # the lines on screen, not the whole text
    assert window.lens.score_at(0) is not None
    qtbot.waitUntil(lambda: len(window.lens.scores()) == len(text), timeout=10000)
    assert engine.rescored_from == shown  # the second pass carried on from the first


def fake_colour(char: str, window: MainWindow) -> QColor:
    """The colour the lens gives `char` with the fake engine (one token per character)."""
    rank = FakeEngine.score(FakeEngine(), char)[0].rank
    return rank_colour(rank_bucket(rank), window.editor.palette())


def miscoloured(window: MainWindow) -> list[tuple[int, str]]:
    """Characters under a wash of another colour than their own, or white space washed."""
    text = window.editor.toPlainText()
    return [(at, text[at]) for (start, end), colour in backgrounds(window).items()
            for at in range(start, end)
            if text[at].isspace() or colour != fake_colour(text[at], window)]


def view(window: MainWindow) -> tuple[int, int]:
    viewport = window.editor.viewport()
    corner = QPoint(viewport.width() - 1, viewport.height() - 1)
    return (window.editor.cursorForPosition(QPoint(0, 0)).position(),
            window.editor.cursorForPosition(corner).position())


def unmarked_on_screen(window: MainWindow) -> list[int]:
    """Visible characters on screen that no wash covers."""
    text = window.editor.toPlainText()
    first, last = view(window)
    covered = set()
    for start, end in backgrounds(window):
        covered.update(range(start, end))
    return [at for at in range(first, last) if not text[at].isspace() and at not in covered]


def settled(window: MainWindow, text: str) -> bool:
    return not window.lens.busy() and len(window.lens.scores()) == len(text)


LONG_TEXT = "abc DEF, ghi jkl.\n" * 2000  # 36,000 characters: tens of screens


def test_a_long_document_is_coloured_wherever_one_scrolls(
        qtbot: QtBot, window: MainWindow) -> None:
    window.editor.set_text(LONG_TEXT)
    window.editor.moveCursor(QTextCursor.MoveOperation.Start)
    window.lens.set_enabled(True)
    qtbot.waitUntil(lambda: settled(window, LONG_TEXT), timeout=20000)
    bar = window.editor.verticalScrollBar()
    for value in (0, bar.maximum() // 3, bar.maximum() // 2, bar.maximum()):
        bar.setValue(value)
        assert unmarked_on_screen(window) == []
        assert miscoloured(window) == []
    assert window.lens.tooltip_at(LONG_TEXT.rindex("D")).startswith("“D”: the model's 50th choice")
    # The perplexity is the whole document's, not that of the part marked.
    whole = perplexity([placed.score for placed in window.lens.scores()])
    assert whole is not None
    qtbot.waitUntil(lambda: window.lens.legend.perplexity_label.text().startswith(
        f"Perplexity {_figure(whole)}"), timeout=5000)


def test_an_edit_while_the_scores_are_placed_does_not_colour_the_wrong_text(
        qtbot: QtBot, window: MainWindow) -> None:
    text = "abc DEF, ghi jkl.\n" * 20
    window.editor.set_text(text)
    edits: list[int] = []

    def type_at_the_start() -> None:  # runs just after the lens took the scores in
        if not edits:
            edits.append(window.editor.revision)
            cursor = QTextCursor(window.editor.document())
            cursor.insertText("XY ")

    window.worker.scores_ready.connect(type_at_the_start)
    window.lens.set_enabled(True)
    qtbot.waitUntil(lambda: bool(edits), timeout=5000)
    qtbot.wait(300)  # placed, not yet scored again (that waits 600 ms after an edit)
    assert miscoloured(window) == []
    qtbot.waitUntil(lambda: settled(window, "XY " + text), timeout=5000)
    assert miscoloured(window) == []
    assert unmarked_on_screen(window) == []
    assert window.lens.score_at(0).score.text == "X"  # type: ignore[union-attr]


def test_turning_the_lens_off_while_the_scores_are_placed_leaves_no_colours(
        qtbot: QtBot, window: MainWindow) -> None:
    window.editor.set_text(LONG_TEXT)
    turned_off: list[bool] = []

    def turn_off() -> None:  # runs just after the lens took the scores in
        if not turned_off:
            turned_off.append(True)
            window.lens.action.trigger()

    window.worker.scores_ready.connect(turn_off)
    window.lens.set_enabled(True)
    qtbot.waitUntil(lambda: bool(turned_off), timeout=10000)
    qtbot.wait(500)
    assert not window.lens.enabled()
    assert backgrounds(window) == {}
    assert window.lens.scores() == []
    assert window.lens.legend.perplexity_label.text() == ""

    window.lens.action.trigger()  # on again: all of it comes back
    qtbot.waitUntil(lambda: settled(window, LONG_TEXT), timeout=20000)
    assert unmarked_on_screen(window) == []


def test_a_model_loaded_while_the_lens_is_on_scores_the_text(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    engines: list[FakeEngine] = []

    def factory(device: str) -> FakeEngine:
        if not engines:
            engines.append(FakeEngine())
            raise NoModelError("No model is installed yet.")
        return engines[0]

    window = make_window(engine=None, factory=factory, wait_for_engine=False)
    qtbot.waitUntil(lambda: bool(engines), timeout=5000)
    window.editor.set_text(TEXT)
    window.lens.set_enabled(True)
    qtbot.wait(200)
    assert window.lens.scores() == []  # no model: nothing to score with
    window.load_engine()
    qtbot.waitUntil(lambda: len(window.lens.scores()) == len(TEXT), timeout=5000)


def test_the_worker_pauses_scoring_for_a_suggestion_and_stops_it_on_request(
        qtbot: QtBot) -> None:
    worker = EngineWorker()
    try:
        with qtbot.waitSignal(worker.engine_loaded, timeout=5000):
            worker.load(lambda: FakeEngine(token_delay_s=0.002))
        order: list[str] = []
        worker.suggestions_ready.connect(lambda *_: order.append("suggested"))
        worker.scores_ready.connect(lambda _, scores: order.append(f"scored {len(scores)}"))
        with qtbot.waitSignal(worker.score_progress, timeout=5000):
            worker.score("a" * 400)
        worker.suggest("a", SamplingParams(seed=1), 1, 4, False)
        qtbot.waitUntil(lambda: len(order) == 2, timeout=10000)
        assert order == ["suggested", "scored 400"]  # paused, then resumed to the end

        with qtbot.waitSignal(worker.score_progress, timeout=5000):
            worker.score("b" * 400)
        worker.stop_scoring()
        worker.suggest("a", SamplingParams(seed=1), 1, 4, False)
        qtbot.waitUntil(lambda: len(order) == 3, timeout=5000)
        qtbot.wait(300)
        assert order[2:] == ["suggested"]  # stopped: nothing resumed
        assert not worker.busy()
    finally:
        worker.shutdown()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose models/ holds a tiny random GPT-2, converted by our own exporter."""
    from models.export import export_model
    from models.random import write_random_checkpoint

    root = tmp_path_factory.mktemp("tiny-lens")
    write_random_checkpoint("tiny", root / "checkpoint", seed=0)
    export_model(root / "checkpoint", root / "data" / "models" / "tiny")
    return root / "data"


def test_the_lens_with_the_real_model(qtbot: QtBot, tiny_data: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      make_window: Callable[..., MainWindow]) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("GHOSTPEN_DATA_DIR", str(tiny_data))
    window = make_window(engine=None, wait_for_engine=False)
    qtbot.waitUntil(lambda: window.engine_info is not None, timeout=20000)
    text = "The lighthouse keeper climbed the stairs. The lighthouse keeper climbed the stairs."
    window.editor.set_text(text)
    window.lens.set_enabled(True)
    qtbot.waitUntil(lambda: bool(window.lens.scores()), timeout=20000)
    scores = window.lens.scores()
    assert "".join(p.score.text for p in scores) == text
    assert all(text[p.start : p.end] == p.score.text for p in scores)
    assert window.lens.repeats() and window.lens.repeats()[0][0] > len(text) // 2
    assert "choice here" in window.lens.tooltip_at(4)
    # the figure follows the colours by an event-loop turn or two
    qtbot.waitUntil(lambda: window.lens.legend.perplexity_label.text().startswith(
        "Perplexity "), timeout=5000)
    assert backgrounds(window)
    assert not window.editor.document().isModified()


def test_with_token_colours_on_a_generated_token_shows_one_popup_not_two(
        qtbot: QtBot, window: MainWindow) -> None:
    """The token view's popup (the alternatives when it was written, Use, Regenerate) and the
    lens's tooltip would both open over a generated token: the popup alone does."""
    set_max_tokens(window, 6)
    window.editor.set_text("the cat")
    window.editor.moveCursor(QTextCursor.MoveOperation.End)
    generate_and_wait(qtbot, window)
    window.set_token_view(True)
    text = window.editor.toPlainText()
    qtbot.keyClick(window.editor, Qt.Key.Key_L,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: len(window.lens.scores()) == len(text.encode()), timeout=5000)
    editor = window.editor

    def tooltip_over(position: int) -> str:
        QToolTip.hideText()
        cursor = QTextCursor(editor.document())
        cursor.setPosition(position)
        rect = editor.cursorRect(cursor)
        point = QPoint(rect.x() + 2, rect.center().y())
        event = QHelpEvent(QEvent.Type.ToolTip, point, editor.viewport().mapToGlobal(point))
        QApplication.sendEvent(editor.viewport(), event)
        return QToolTip.text() if QToolTip.isVisible() else ""

    generated = editor.tokens()[1]
    assert tooltip_over(generated.start) == ""  # the token popup's place
    assert tooltip_over(1).startswith("“")  # the writer's own "the cat": the lens's tooltip


def test_a_status_message_is_not_cut_by_the_colour_key(qtbot: QtBot, window: MainWindow) -> None:
    lens_on(qtbot, window)
    legend = window.lens.legend
    window.resize(1400, 900)
    assert all(swatch.isVisibleTo(window) for swatch in legend.swatches)
    message = "40 tokens, reached the maximum."
    window.statusBar().showMessage(message)
    assert not any(swatch.isVisibleTo(window) for swatch in legend.swatches)
    assert legend.perplexity_label.isVisibleTo(window)  # the figure a writer watches stays
    window.statusBar().clearMessage()
    assert all(swatch.isVisibleTo(window) for swatch in legend.swatches)


def test_the_progress_while_scoring_does_not_lay_the_window_out_again(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    """"Scoring 40 %" changes ten times a second: a label that could change size had the
    main window laid out and repainted each time (up to 70 ms of the GUI thread)."""
    window = make_window(engine=lambda: FakeEngine(token_delay_s=0.001))
    window.editor.set_text("a" * 3000)  # 3 s of scoring: dozens of progress figures
    layouts: list[QObject] = []

    class LayoutCounter(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.LayoutRequest:
                layouts.append(watched)
            return False

    counter = LayoutCounter()
    window.installEventFilter(counter)
    window.statusBar().installEventFilter(counter)
    shown: set[str] = set()
    window.worker.score_progress.connect(
        lambda *_: shown.add(window.lens.legend.progress_label.text()))
    window.lens.set_enabled(True)
    qtbot.waitUntil(lambda: len(window.lens.scores()) == 3000, timeout=10000)
    assert len(shown) >= 15  # the figure did change, many times
    # A few (the lens's strip coming, the progress figure shown and gone, the perplexity
    # shown), not one or two a figure.
    assert len(layouts) <= 16


def test_the_lens_comes_back_on_as_it_was_left(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    first = make_window()
    lens_on(qtbot, first)
    first.lens.legend.mode_button.click()  # by probability
    first.shutdown()
    again = make_window()  # the next start, with the settings the first one saved
    assert again.lens.enabled() and again.lens.legend.by_probability()
    again.editor.set_text(TEXT)
    qtbot.waitUntil(lambda: len(again.lens.scores()) == len(TEXT.encode()), timeout=5000)
    again.lens.action.trigger()  # off, and off at the start after that
    again.shutdown()
    assert not make_window().lens.enabled()


def test_the_washes_are_painted_behind_their_own_words(qtbot: QtBot, window: MainWindow) -> None:
    """Each wash is painted on the line and at the place of its text: the pixels there take
    its colour, and the paper between two words keeps the editor's."""
    text = "the cat sat on the mat and the dog sat on the log. " * 30  # wraps over many lines
    lens_on(qtbot, window, text)
    editor = window.editor
    qtbot.wait(50)
    image = editor.viewport().grab().toImage()
    paper = editor.palette().color(QPalette.ColorRole.Base)
    checked = 0
    for (start, end), colour in backgrounds(window).items():
        cursor = editor.textCursor()
        cursor.setPosition(start)
        left = editor.cursorRect(cursor)
        cursor.setPosition(end)
        right = editor.cursorRect(cursor)
        if left.top() != right.top() or left.bottom() > editor.viewport().height():
            continue  # wrapped, or below the screen
        # a pixel in the wash, clear of the glyphs: just below the text's baseline area
        x, y = (left.x() + right.x()) // 2, left.bottom() - 1
        pixel = image.pixelColor(x, y)
        assert pixel != paper, (start, end)
        assert abs(pixel.hue() - colour.hue()) <= 12 or colour.saturation() < 20, (start, end)
        checked += 1
    assert checked > 50
    gap = editor.textCursor()
    gap.setPosition(3)  # the space after "the", which no wash covers
    rect = editor.cursorRect(gap)
    assert image.pixelColor(rect.x() + 2, rect.bottom() - 1) == paper
