"""Generate, Stop, Undo and Regenerate in the real window, with the fake engine."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from pytestqt.qtbot import QtBot

from app.engine.fake import FakeEngine
from app.ui.main_window import MainWindow

from .conftest import generate_and_wait, set_max_tokens


def test_typing_shows_in_the_editor_and_marks_the_title(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.keyClicks(window.editor, "It was a dark night")
    assert window.editor.toPlainText() == "It was a dark night"
    assert window.isWindowModified()
    assert window.windowTitle().startswith("Untitled")


def test_the_status_bar_names_the_model(window: MainWindow) -> None:
    assert window.model_label.text() == "fake · fp32 · Fake"
    assert "/ 1024" in window.context_label.text()


def test_ctrl_enter_streams_tokens_in_order(qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 6)
    qtbot.keyClicks(window.editor, "Once")
    snapshots: list[str] = []
    window.editor.textChanged.connect(lambda: snapshots.append(window.editor.toPlainText()))
    w = window.worker
    with qtbot.waitSignals([w.generation_started, *[w.token_generated] * 6,
                            w.generation_finished], order="strict", timeout=5000):
        qtbot.keyClick(window.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.generation.running)
    text = window.editor.toPlainText()
    assert text.startswith("Once") and len(text) == 4 + 6
    assert snapshots[0] == text[:5]  # the first token shows at once, on its own
    assert all(text.startswith(s) for s in snapshots)  # then the rest, in order
    assert window.speed_label.text().endswith("tok/s") and window.speed_label.text()[0].isdigit()
    assert window.context_label.text() == "Context 10 / 1024"


def texts_while_writing(qtbot: QtBot, make_window: Callable[..., MainWindow],
                        token_delay_s: float, tokens: int) -> tuple[str, list[str]]:
    """(the text after a run of `tokens` after "Once", the text after each edit of it)."""
    window = make_window(lambda: FakeEngine(token_delay_s=token_delay_s))
    set_max_tokens(window, tokens)
    qtbot.keyClicks(window.editor, "Once")
    edits: list[str] = []
    window.editor.textChanged.connect(lambda: edits.append(window.editor.toPlainText()))
    generate_and_wait(qtbot, window)
    return window.editor.toPlainText(), edits


def test_a_slow_model_shows_each_token_as_it_comes(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    _, edits = texts_while_writing(qtbot, make_window, 0.1, 4)
    grown = [s for s in edits if s != edits[-1]] + [edits[-1]]
    assert [len(s) for s in grown] == [5, 6, 7, 8]  # one token at a time


def test_a_fast_model_has_its_tokens_written_together(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    """Tokens that come faster than the editor is written go in several at a time (one layout
    and repaint for all), in order, none lost: the GUI thread's work a token slowed a small
    model to a third to a half of its speed in the window."""
    text, edits = texts_while_writing(qtbot, make_window, 0.0, 60)
    assert len(text) == 4 + 60 and all(text.startswith(e) for e in edits)
    assert len(edits) <= 30


def test_generation_goes_in_at_the_cursor(qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 3)
    qtbot.keyClicks(window.editor, "Start. End.")
    cursor = window.editor.textCursor()
    cursor.setPosition(6)
    window.editor.setTextCursor(cursor)
    generate_and_wait(qtbot, window)
    text = window.editor.toPlainText()
    assert text.startswith("Start.") and text.endswith(" End.") and len(text) == 14


def test_generated_text_is_marked_until_edited(qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 5)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    marks = window.editor.extraSelections()
    assert [(m.cursor.selectionStart(), m.cursor.selectionEnd()) for m in marks] == [(5, 10)]
    cursor = window.editor.textCursor()
    cursor.setPosition(7)
    window.editor.setTextCursor(cursor)
    qtbot.keyClicks(window.editor, "X")  # an edit inside the third token
    window.editor.refresh_marks()
    marks = window.editor.extraSelections()
    assert [(m.cursor.selectionStart(), m.cursor.selectionEnd()) for m in marks] == [
        (5, 7), (8, 11)]


def test_escape_stops_at_once_and_nothing_comes_after(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window(lambda: FakeEngine(token_delay_s=0.02))
    set_max_tokens(window, 500)
    qtbot.keyClicks(window.editor, "Go")
    qtbot.keyClick(window.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(window.editor.toPlainText()) >= 5, timeout=5000)
    with qtbot.waitSignal(window.worker.generation_finished, timeout=5000) as finished:
        qtbot.keyClick(window.editor, Qt.Key.Key_Escape)
        at_stop = window.editor.toPlainText()
        assert not window.generation.running
    qtbot.wait(50)  # let any queued token signal arrive; none may show
    assert finished.args[1].stop_reason == "cancelled"
    assert window.editor.toPlainText() == at_stop
    assert window.generate_action.isEnabled() and not window.stop_action.isEnabled()
    assert "stopped" in window.statusBar().currentMessage()


def test_undo_removes_exactly_the_generation(qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 8)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    assert len(window.editor.toPlainText()) == 13
    qtbot.keyClick(window.editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.editor.toPlainText() == "Hello"
    qtbot.waitUntil(lambda: window.editor.extraSelections() == [])  # the mark went with it


def test_typing_after_a_generation_is_its_own_undo_step(qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 4)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    generated = window.editor.toPlainText()
    qtbot.keyClicks(window.editor, " more")
    window.editor.undo()
    assert window.editor.toPlainText() == generated
    window.editor.undo()
    assert window.editor.toPlainText() == "Hello"


def test_regenerate_replaces_the_last_generation(qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 12)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    first = window.editor.toPlainText()
    window.editor.moveCursor(QTextCursor.MoveOperation.Start)  # Ctrl+R ignores the cursor
    qtbot.keyClick(window.editor, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.generation.running, timeout=5000)
    second = window.editor.toPlainText()
    assert second.startswith("Hello") and len(second) == len(first)
    assert second != first  # a fresh seed: 12 random letters again
    window.editor.undo()  # the regeneration is one step too
    assert window.editor.toPlainText() == first


def test_a_locked_seed_replays_the_same_text(qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 10)
    window.panel.seed_box.setValue(1234)
    window.panel.seed_lock.setChecked(True)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    first = window.editor.toPlainText()
    window.regenerate_action.trigger()
    qtbot.waitUntil(lambda: not window.generation.running, timeout=5000)
    assert window.editor.toPlainText() == first


def test_the_editor_is_read_only_while_generating(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window(lambda: FakeEngine(token_delay_s=0.02))
    set_max_tokens(window, 500)
    window.generate_action.trigger()
    qtbot.waitUntil(lambda: len(window.editor.toPlainText()) >= 2, timeout=5000)
    assert window.editor.isReadOnly() and not window.undo_action.isEnabled()
    window.stop_action.trigger()
    assert not window.editor.isReadOnly()


def select(window: MainWindow, start: int, end: int) -> None:
    cursor = window.editor.textCursor()
    cursor.setPosition(start)
    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    window.editor.setTextCursor(cursor)


def regenerate_and_wait(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.keyClick(window.editor, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.generation.running, timeout=5000)


def test_regenerate_keeps_the_writers_edit_and_replaces_what_follows_it(
        qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 12)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    first = window.editor.toPlainText()  # "Hello" + 12 one-letter tokens
    select(window, 9, 10)
    qtbot.keyClicks(window.editor, "XY")  # the writer rewrites the fifth token
    edited = window.editor.toPlainText()
    assert edited == first[:9] + "XY" + first[10:]
    regenerate_and_wait(qtbot, window)
    second = window.editor.toPlainText()
    assert second[:11] == first[:9] + "XY"  # the edit and all before it stay
    assert len(second) == 11 + 12  # a fresh run after the edit replaced the 7 tokens after it
    assert second[11:18] != first[10:]
    window.editor.undo()
    assert window.editor.toPlainText() == edited


def test_regenerate_again_keeps_the_edit_and_rerolls_the_tail(qtbot: QtBot,
                                                              window: MainWindow) -> None:
    set_max_tokens(window, 6)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    select(window, 7, 8)
    qtbot.keyClicks(window.editor, "-")
    kept = window.editor.toPlainText()[:8]
    regenerate_and_wait(qtbot, window)
    regenerate_and_wait(qtbot, window)
    text = window.editor.toPlainText()
    assert text[:8] == kept and len(text) == 8 + 6


def test_typing_next_to_the_generation_does_not_count_as_an_edit_of_it(
        qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 6)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    qtbot.keyClicks(window.editor, " end")  # after it
    regenerate_and_wait(qtbot, window)
    text = window.editor.toPlainText()
    assert text.startswith("Hello") and text.endswith(" end") and len(text) == 5 + 6 + 4


def test_after_undo_and_redo_regenerate_replaces_the_same_text(qtbot: QtBot,
                                                               window: MainWindow) -> None:
    set_max_tokens(window, 8)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    first = window.editor.toPlainText()
    qtbot.keyClick(window.editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.editor.toPlainText() == "Hello"
    qtbot.keyClick(window.editor, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.editor.toPlainText() == first
    regenerate_and_wait(qtbot, window)
    second = window.editor.toPlainText()
    assert second.startswith("Hello") and len(second) == len(first)  # replaced, not appended
    assert second != first


def test_undo_of_a_regeneration_brings_back_the_first_one_to_regenerate(
        qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 8)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    first = window.editor.toPlainText()
    regenerate_and_wait(qtbot, window)
    window.undo_action.trigger()
    assert window.editor.toPlainText() == first
    assert [(s.start, s.end) for s in window.editor.tokens()] == [(i, i + 1)
                                                                  for i in range(5, 13)]
    regenerate_and_wait(qtbot, window)
    assert len(window.editor.toPlainText()) == len(first)
