"""What people expect of any editor: find and replace, a word count, zoom, plain words in the
sampling panel, and a Generate that says what to do when there is no model."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from pytestqt.qtbot import QtBot

from app.engine.sampling_params import SAMPLER_HELP
from app.ui.main_window import MainWindow
from app.ui.settings import DEFAULTS

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
TEXT = "The cat sat. the cat ran. Concatenate."


def selection(window: MainWindow) -> tuple[int, int]:
    cursor = window.editor.textCursor()
    return cursor.selectionStart(), cursor.selectionEnd()


def select(window: MainWindow, start: int, end: int) -> None:
    cursor = window.editor.textCursor()
    cursor.setPosition(start)
    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    window.editor.setTextCursor(cursor)


def test_ctrl_f_finds_next_and_previous_and_esc_closes(qtbot: QtBot,
                                                       window: MainWindow) -> None:
    window.editor.set_text(TEXT)
    window.editor.setFocus()
    bar = window.find_bar
    qtbot.keyClick(window.editor, Qt.Key.Key_F, CTRL)
    assert bar.isVisible() and bar.find_edit.hasFocus()
    assert not bar.replace_edit.isVisible()
    qtbot.keyClicks(bar.find_edit, "cat")  # found as typed
    assert selection(window) == (4, 7) and bar.count_label.text() == "3 matches"
    qtbot.keyClick(bar.find_edit, Qt.Key.Key_Return)
    assert selection(window) == (17, 20)
    qtbot.keyClick(bar.find_edit, Qt.Key.Key_Return)
    assert selection(window) == (29, 32)  # inside "Concatenate"
    qtbot.keyClick(bar.find_edit, Qt.Key.Key_Return)
    assert selection(window) == (4, 7)  # round the end, back to the start
    qtbot.keyClick(bar.find_edit, Qt.Key.Key_Return, SHIFT)
    assert selection(window) == (29, 32)  # previous, round the start
    bar.words_box.setChecked(True)
    assert bar.count_label.text() == "2 matches"
    qtbot.keyClick(window.editor, Qt.Key.Key_F3, SHIFT)
    assert selection(window) == (17, 20)
    bar.find_edit.setText("The")
    bar.case_box.setChecked(True)
    assert bar.count_label.text() == "1 match"
    bar.find_edit.setFocus()
    qtbot.keyClick(bar.find_edit, Qt.Key.Key_Escape)
    assert not bar.isVisible() and window.editor.hasFocus()
    assert window.editor.toPlainText() == TEXT


def test_find_says_when_nothing_matches(qtbot: QtBot, window: MainWindow) -> None:
    window.editor.set_text(TEXT)
    window.find_action.trigger()
    qtbot.keyClicks(window.find_bar.find_edit, "dog")
    assert window.find_bar.count_label.text() == "No matches"
    assert not window.find_bar.find_next()


def test_replace_all_is_one_undo_step(qtbot: QtBot, window: MainWindow) -> None:
    window.editor.set_text(TEXT)
    qtbot.keyClick(window.editor, Qt.Key.Key_H, CTRL)
    bar = window.find_bar
    assert bar.replace_edit.isVisible()
    bar.find_edit.setText("cat")
    bar.words_box.setChecked(True)
    bar.replace_edit.setText("wildcat")  # holds what it replaces: still each match once
    qtbot.mouseClick(bar.replace_all_button, Qt.MouseButton.LeftButton)
    assert window.editor.toPlainText() == "The wildcat sat. the wildcat ran. Concatenate."
    assert bar.count_label.text() == "2 replaced"
    window.undo_action.trigger()
    assert window.editor.toPlainText() == TEXT
    window.redo_action.trigger()
    assert window.editor.toPlainText() == "The wildcat sat. the wildcat ran. Concatenate."


def test_replace_changes_the_selected_match_then_selects_the_next(
        qtbot: QtBot, window: MainWindow) -> None:
    window.editor.set_text(TEXT)
    window.replace_action.trigger()
    bar = window.find_bar
    qtbot.keyClicks(bar.find_edit, "cat")
    bar.replace_edit.setText("dog")
    bar.replace_edit.setFocus()
    qtbot.keyClick(bar.replace_edit, Qt.Key.Key_Return)  # Enter in "Replace with": replace
    assert window.editor.toPlainText() == "The dog sat. the cat ran. Concatenate."
    assert selection(window) == (17, 20)


def test_the_status_bar_counts_words_and_characters(qtbot: QtBot, window: MainWindow) -> None:
    label = window.count_label
    assert label.isVisible() and label.text() == "0 words, 0 characters"
    window.editor.setFocus()
    qtbot.keyClicks(window.editor, "Hello big world")
    qtbot.waitUntil(lambda: label.text() == "3 words, 15 characters", timeout=2000)
    qtbot.keyClick(window.editor, Qt.Key.Key_Return)
    qtbot.keyClicks(window.editor, "again")
    qtbot.waitUntil(lambda: label.text() == "4 words, 21 characters", timeout=2000)
    select(window, 6, 9)
    qtbot.waitUntil(lambda: label.text() == "Selected: 1 word, 3 characters", timeout=2000)
    select(window, 6, 21)  # across the line break: one character
    qtbot.waitUntil(lambda: label.text() == "Selected: 3 words, 15 characters", timeout=2000)


def test_zoom_changes_the_text_size(qtbot: QtBot, window: MainWindow) -> None:
    normal = window.editor.font().pointSize()
    assert normal == DEFAULTS["font_size"]
    window.editor.setFocus()
    qtbot.keyClick(window.editor, Qt.Key.Key_Equal, CTRL)
    qtbot.keyClick(window.editor, Qt.Key.Key_Plus, CTRL)
    assert window.editor.font().pointSize() == normal + 2
    qtbot.keyClick(window.editor, Qt.Key.Key_Minus, CTRL)
    assert window.editor.font().pointSize() == normal + 1
    qtbot.keyClick(window.editor, Qt.Key.Key_0, CTRL)
    assert window.editor.font().pointSize() == normal


def test_the_sampling_panel_speaks_plain_words_and_keeps_the_technical_names(
        window: MainWindow) -> None:
    plain = {"temperature": ("Adventurousness", "Temperature"),
             "top_k": ("Keep the k likeliest", "Top-k"),
             "top_p": ("Likeliest share", "Top-p"),
             "min_p": ("Drop the unlikely", "Min-p"),
             "repetition_penalty": ("Avoid repeating", "Repetition penalty"),
             "dry_multiplier": ("Break loops", "DRY"),
             "xtc_probability": ("Skip the obvious", "XTC"),
             "typical_p": ("Typical words only", "Typical-p")}
    for name, (label, technical) in plain.items():
        row = window.panel.rows[name]
        assert row.label.text() == label
        assert row.box.accessibleName() == label
        tooltip = row.slider.toolTip()
        assert SAMPLER_HELP[name] in tooltip and technical in tooltip, tooltip
    assert window.panel.mirostat_box.accessibleName() == "Keep surprise steady"
    assert "Mirostat" in window.panel.mirostat_box.toolTip()


def test_generate_without_a_model_says_what_to_do(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window(engine=None, wait_for_engine=False)
    qtbot.waitUntil(window.notice.isVisible, timeout=3000)
    window.editor.set_text("Once upon a time")
    window.editor.setFocus()
    qtbot.keyClick(window.editor, Qt.Key.Key_Return, CTRL)
    message = window.statusBar().currentMessage()
    assert message.startswith("No model to write with yet")
    assert "Download…" in message and "Add from Folder…" in message
    assert window.editor.toPlainText() == "Once upon a time"


def test_find_next_with_nothing_to_find_opens_the_bar(qtbot: QtBot, window: MainWindow) -> None:
    window.editor.set_text(TEXT)
    window.editor.setFocus()
    qtbot.keyClick(window.editor, Qt.Key.Key_F3)
    assert window.find_bar.isVisible() and window.find_bar.find_edit.hasFocus()
