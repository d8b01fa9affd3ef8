"""The token view: colours by probability, alternatives on hover, a click swaps the token."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QTextCursor
from pytestqt.qtbot import QtBot

from app.engine.fake import FakeEngine
from app.ui.main_window import MainWindow
from app.ui.spans import TokenSpan

from .conftest import generate_and_wait, set_max_tokens


def point_of(window: MainWindow, span: TokenSpan) -> QPoint:
    """The middle of a token on screen, in viewport coordinates."""
    cursor = QTextCursor(window.editor.document())
    cursor.setPosition(span.start)
    left = window.editor.cursorRect(cursor)
    cursor.setPosition(span.end)
    right = window.editor.cursorRect(cursor)
    return QPoint((left.x() + right.x()) // 2, left.center().y())


def hover(qtbot: QtBot, window: MainWindow, span: TokenSpan) -> None:
    """Move the pointer onto a token (from elsewhere: Qt sends no move to where it already is)."""
    qtbot.mouseMove(window.editor.viewport(), QPoint(1, 1))
    qtbot.mouseMove(window.editor.viewport(), point_of(window, span))


def generate_with_colours(qtbot: QtBot, window: MainWindow, n: int = 6) -> None:
    set_max_tokens(window, n)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    qtbot.keyClick(window.editor, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    assert window.token_view_action.isChecked()


def test_token_colours_mark_each_token(qtbot: QtBot, window: MainWindow) -> None:
    generate_with_colours(qtbot, window)
    marks = window.editor.extraSelections()
    assert len(marks) == 6  # one colour per token, not one wash for the run
    assert [m.cursor.selectionStart() for m in marks] == [5, 6, 7, 8, 9, 10]
    assert all(m.format.background().color().alpha() > 0 for m in marks)


def test_likelier_tokens_get_a_greener_colour() -> None:
    from PySide6.QtGui import QPalette

    from app.ui.theme import probability_colour

    palette = QPalette()
    assert probability_colour(0.9, palette).hue() > probability_colour(0.05, palette).hue()


def test_hovering_a_token_shows_its_alternatives(qtbot: QtBot, window: MainWindow) -> None:
    generate_with_colours(qtbot, window)
    span = window.editor.tokens()[2]
    hover(qtbot, window, span)
    popup = window.editor.popup
    qtbot.waitUntil(popup.isVisible, timeout=3000)
    assert popup.span is span
    assert len(popup.buttons) == 10
    assert [b.alternative.text for b in popup.buttons] == list("abcdefghij")
    assert all(b.text().rstrip().endswith("%") for b in popup.buttons)


def test_clicking_an_alternative_swaps_the_token(qtbot: QtBot, window: MainWindow) -> None:
    generate_with_colours(qtbot, window)
    before = window.editor.toPlainText()
    span = window.editor.tokens()[2]
    hover(qtbot, window, span)
    popup = window.editor.popup
    qtbot.waitUntil(popup.isVisible, timeout=3000)
    choice = next(b for b in popup.buttons if b.alternative.text != before[span.start])
    qtbot.mouseClick(choice, Qt.MouseButton.LeftButton)
    after = window.editor.toPlainText()
    assert after == before[:7] + choice.alternative.text + before[8:]
    assert not popup.isVisible()
    swapped = window.editor.token_at(7)
    assert swapped is not None and swapped.event.text == choice.alternative.text
    window.editor.undo()  # the swap is one undo step
    assert window.editor.toPlainText() == before


def test_regenerate_from_an_alternative(qtbot: QtBot, window: MainWindow) -> None:
    generate_with_colours(qtbot, window, n=6)
    before = window.editor.toPlainText()
    span = window.editor.tokens()[1]
    window.editor.show_alternatives(span)
    popup = window.editor.popup
    assert popup.buttons[3].alternative.text == "d"
    qtbot.mouseClick(popup.regenerate_buttons[3], Qt.MouseButton.LeftButton)  # "d", go on
    qtbot.waitUntil(lambda: not window.generation.running, timeout=5000)
    after = window.editor.toPlainText()
    assert after[:7] == before[:6] + "d"
    assert len(after) == 7 + 6  # a fresh run of max_new_tokens after the chosen token


def test_ctrl_shift_a_opens_the_alternatives_from_the_keyboard(qtbot: QtBot,
                                                               window: MainWindow) -> None:
    set_max_tokens(window, 4)
    qtbot.keyClicks(window.editor, "Hi")
    generate_and_wait(qtbot, window)
    cursor = window.editor.textCursor()
    cursor.setPosition(3)
    window.editor.setTextCursor(cursor)
    window.alternatives_action.trigger()
    popup = window.editor.popup
    assert popup.isVisible() and popup.span is window.editor.token_at(2)
    assert popup.buttons[0].accessibleName().endswith("%")


def test_no_popup_outside_generated_text(qtbot: QtBot, window: MainWindow) -> None:
    generate_with_colours(qtbot, window)
    cursor = QTextCursor(window.editor.document())
    left = window.editor.cursorRect(cursor)
    qtbot.mouseMove(window.editor.viewport(), left.center() + QPoint(2, 0))  # over "H"
    qtbot.wait(window.editor._hover_timer.interval() + 50)
    assert not window.editor.popup.isVisible()


def test_token_colours_are_painted_while_tokens_stream_in(qtbot: QtBot,
                                                          make_window: Callable[..., MainWindow]
                                                          ) -> None:
    """Tokens arriving faster than the repaint interval must not postpone the colours to
    the end of the generation."""
    window = make_window(engine=lambda: FakeEngine(token_delay_s=0.005))
    window.set_token_view(True)
    set_max_tokens(window, 400)
    window.generate_action.trigger()
    qtbot.waitUntil(lambda: len(window.editor.tokens()) > 40, timeout=10000)
    assert window.generation.running
    qtbot.waitUntil(lambda: len(window.editor.extraSelections()) > 20, timeout=1000)
    assert window.generation.running  # painted before the end, not after it
    window.stop_action.trigger()
