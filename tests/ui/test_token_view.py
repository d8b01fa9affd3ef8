"""The token view: colours by probability, alternatives on hover, a click swaps the token."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.engine.fake import FakeEngine
from app.ui import editor as editor_module
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


def select(window: MainWindow, start: int, end: int) -> None:
    cursor = window.editor.textCursor()
    cursor.setPosition(start)
    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    window.editor.setTextCursor(cursor)


def token_marks(window: MainWindow) -> list[tuple[int, int]]:
    window.editor.refresh_marks()
    return [(m.cursor.selectionStart(), m.cursor.selectionEnd())
            for m in window.editor.extraSelections()]


def test_token_colours_come_back_after_undo_and_redo(qtbot: QtBot, window: MainWindow) -> None:
    generate_with_colours(qtbot, window)
    coloured = token_marks(window)
    assert coloured == [(i, i + 1) for i in range(5, 11)]
    qtbot.keyClick(window.editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert token_marks(window) == []
    window.redo_action.trigger()
    assert token_marks(window) == coloured
    assert [s.event.text for s in window.editor.tokens()] == list(window.editor.toPlainText()[5:])


def test_undoing_a_deletion_colours_its_tokens_where_they_are_again(qtbot: QtBot,
                                                                    window: MainWindow) -> None:
    """Marks are kept from one repaint to the next; a deleted token's mark collapsed with its
    text, and must not come back collapsed when Undo brings the token back."""
    generate_with_colours(qtbot, window)
    coloured = token_marks(window)
    select(window, 6, 9)
    qtbot.keyClick(window.editor, Qt.Key.Key_Delete)
    qtbot.keyClick(window.editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert token_marks(window) == coloured


def test_undoing_an_edit_inside_a_token_brings_its_colour_back(qtbot: QtBot,
                                                               window: MainWindow) -> None:
    generate_with_colours(qtbot, window)
    coloured = token_marks(window)
    select(window, 7, 8)
    qtbot.keyClicks(window.editor, "Q")
    assert (7, 8) not in token_marks(window)
    window.undo_action.trigger()
    assert token_marks(window) == coloured


def open_alternatives_from_the_keyboard(qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 6)
    qtbot.keyClicks(window.editor, "Hi")
    generate_and_wait(qtbot, window)
    cursor = window.editor.textCursor()
    cursor.setPosition(4)
    window.editor.setTextCursor(cursor)
    qtbot.keyClick(window.editor, Qt.Key.Key_A,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(window.editor.popup.isVisible, timeout=2000)


def test_the_keyboard_popup_stays_open_while_the_pointer_rests_on_the_editor(
        qtbot: QtBot, window: MainWindow) -> None:
    window.set_token_view(True)
    qtbot.mouseMove(window.editor.viewport(), QPoint(3, 3))
    open_alternatives_from_the_keyboard(qtbot, window)
    popup = window.editor.popup
    span = popup.span
    other_token = point_of(window, window.editor.tokens()[0])
    for point in (QPoint(3, 3), QPoint(400, 300), other_token, QPoint(40, 60)):
        qtbot.mouseMove(window.editor.viewport(), point)
        qtbot.wait(editor_module.HOVER_DELAY_MS + 50)
    qtbot.wait(editor_module.HIDE_DELAY_MS + 200)
    assert popup.isVisible() and popup.span is span
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Escape)
    assert not popup.isVisible()


def test_up_and_down_move_between_rows_only(qtbot: QtBot, window: MainWindow) -> None:
    open_alternatives_from_the_keyboard(qtbot, window)
    popup = window.editor.popup
    assert QApplication.focusWidget() is popup.buttons[0]
    for row in (1, 2, 3):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Down)
        assert QApplication.focusWidget() is popup.buttons[row]
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Up)
    assert QApplication.focusWidget() is popup.buttons[2]
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Right)  # the row's ⟳
    assert QApplication.focusWidget() is popup.regenerate_buttons[2]
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Down)  # from ⟳ to the next row
    assert QApplication.focusWidget() is popup.buttons[3]
    assert popup.isVisible()


def test_enter_on_a_row_swaps_the_token(qtbot: QtBot, window: MainWindow) -> None:
    open_alternatives_from_the_keyboard(qtbot, window)
    before = window.editor.toPlainText()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Down)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Return)
    assert not window.editor.popup.isVisible()
    assert window.editor.toPlainText() == before[:3] + "b" + before[4:]


def test_ctrl_r_on_a_row_swaps_the_token_and_regenerates_after_it(qtbot: QtBot,
                                                                  window: MainWindow) -> None:
    open_alternatives_from_the_keyboard(qtbot, window)
    before = window.editor.toPlainText()
    for _ in range(3):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Down)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.generation.running, timeout=5000)
    after = window.editor.toPlainText()
    assert after[:4] == before[:3] + "d"
    assert len(after) == 4 + 6  # a fresh run of max_new_tokens after the chosen token


def test_a_click_elsewhere_closes_the_keyboard_popup(qtbot: QtBot, window: MainWindow) -> None:
    open_alternatives_from_the_keyboard(qtbot, window)
    popup = window.editor.popup
    before = window.editor.toPlainText()
    qtbot.wait(editor_module.HIDE_DELAY_MS + 100)
    assert popup.isVisible()
    # An open popup holds the pointer, so Qt hands it a click anywhere else on the screen.
    elsewhere = popup.mapFromGlobal(window.editor.viewport().mapToGlobal(QPoint(400, 300)))
    assert not popup.rect().contains(elsewhere)
    qtbot.mouseClick(popup, Qt.MouseButton.LeftButton, pos=elsewhere)
    assert not popup.isVisible()
    assert window.editor.toPlainText() == before


def test_a_long_generation_marks_the_tokens_on_screen_wherever_one_scrolls(
        qtbot: QtBot, window: MainWindow) -> None:
    """20,000 marks made every repaint ~50 ms: only the part on screen (and a margin) is
    marked, and scrolling marks the part then on show."""
    from app.engine.events import TokenEvent

    editor = window.editor
    editor.begin_generation(0)
    for i in range(6000):
        editor.append_tokens([TokenEvent(i, f"w{i % 7}" + ("\n" if i % 12 == 11 else " "),
                                         0.1 + (i % 9) / 10)])
    editor.end_generation()
    window.set_token_view(True)
    spans = editor.tokens()
    bar = editor.verticalScrollBar()
    for value in (0, bar.maximum() // 2, bar.maximum()):
        bar.setValue(value)
        marked = {(m.cursor.selectionStart(), m.cursor.selectionEnd())
                  for m in editor.extraSelections()}
        assert len(marked) < len(spans) // 4
        first = editor.cursorForPosition(QPoint(0, 0)).position()
        corner = QPoint(editor.viewport().width() - 1, editor.viewport().height() - 1)
        last = editor.cursorForPosition(corner).position()
        on_screen = [(s.start, s.end) for s in spans if s.end > first and s.start < last]
        assert on_screen and all(span in marked for span in on_screen)


def test_tokens_written_together_each_keep_their_own_place(qtbot: QtBot,
                                                          window: MainWindow) -> None:
    """The window writes tokens that came together in one edit (GenerationController); each
    still gets its own span and colour, after the writer's text and before text after it."""
    from app.engine.events import TokenEvent

    editor = window.editor
    editor.setPlainText("Before. After.")
    editor.begin_generation(7)
    editor.append_tokens([TokenEvent(i, text, 0.2 * (i + 1))
                          for i, text in enumerate([" one", " two", "", " three"])])
    editor.append_tokens([TokenEvent(4, " four", 0.9)])
    editor.end_generation()
    assert editor.toPlainText() == "Before. one two three four After."
    assert [(s.start, s.end, s.event.text) for s in editor.tokens()] == [
        (7, 11, " one"), (11, 15, " two"), (15, 21, " three"), (21, 26, " four")]
    window.set_token_view(True)
    marked = [(m.cursor.selectionStart(), m.cursor.selectionEnd())
              for m in editor.extraSelections()]
    assert marked == [(7, 11), (11, 15), (15, 21), (21, 26)]
