"""What people expect of any editor: find and replace, a word count, zoom, plain words in the
sampling panel, and a Generate that says what to do when there is no model."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QTextCursor, QTextDocument
from pytestqt.qtbot import QtBot

from app.engine.sampling_params import SAMPLER_HELP
from app.ui.find_bar import MATCH_BACKGROUND, find_all
from app.ui.main_window import MainWindow
from app.ui.settings import DEFAULTS

from .conftest import generate_and_wait, set_max_tokens

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


def find_marks(window: MainWindow) -> list[tuple[int, int]]:
    """Where the editor shows the find bar's soft colour."""
    return [(s.cursor.selectionStart(), s.cursor.selectionEnd())
            for s in window.editor.extraSelections()
            if s.format.background().color() == MATCH_BACKGROUND]


def other_marks(window: MainWindow) -> list[tuple[int, int, str]]:
    """Every other mark in the editor (token colours, the surprise lens), with its colour."""
    return [(s.cursor.selectionStart(), s.cursor.selectionEnd(),
             s.format.background().color().name(QColor.NameFormat.HexArgb))
            for s in window.editor.extraSelections()
            if s.format.background().color() != MATCH_BACKGROUND]


def test_find_colours_every_match_as_typed_and_closing_takes_the_colour_away(
        qtbot: QtBot, window: MainWindow) -> None:
    window.editor.set_text(TEXT)
    document = window.editor.document()
    window.editor.setFocus()
    bar = window.find_bar
    qtbot.keyClick(window.editor, Qt.Key.Key_F, CTRL)
    qtbot.keyClicks(bar.find_edit, "ca")
    assert find_marks(window) == [(4, 6), (17, 19), (29, 31)]
    qtbot.keyClicks(bar.find_edit, "t ")
    assert find_marks(window) == [(4, 8), (17, 21)]
    qtbot.keyClick(bar.find_edit, Qt.Key.Key_Backspace)
    assert find_marks(window) == [(4, 7), (17, 20), (29, 32)]
    assert selection(window) == (4, 7)  # the current match: selected, drawn over its colour
    qtbot.keyClick(bar.find_edit, Qt.Key.Key_Return)
    assert selection(window) == (17, 20)
    assert find_marks(window) == [(4, 7), (17, 20), (29, 32)]  # the others keep theirs
    bar.words_box.setChecked(True)
    assert find_marks(window) == [(4, 7), (17, 20)]
    bar.case_box.setChecked(True)
    bar.find_edit.setText("The")
    assert find_marks(window) == [(0, 3)]
    bar.find_edit.setText("dog")
    assert find_marks(window) == [] and bar.count_label.text() == "No matches"
    bar.find_edit.setText("cat")
    # Colouring is not editing: nothing to undo, nothing to save.
    assert not document.isUndoAvailable() and not document.isModified()
    bar.find_edit.setFocus()
    qtbot.keyClick(bar.find_edit, Qt.Key.Key_Escape)
    assert find_marks(window) == [] and window.editor.extraSelections() == []
    assert window.editor.toPlainText() == TEXT


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_current_match_is_drawn_stronger_than_the_others(
        qtbot: QtBot, window: MainWindow, theme: str) -> None:
    window.set_theme(theme, save=False)
    window.editor.set_text(TEXT)
    window.find_action.trigger()
    qtbot.keyClicks(window.find_bar.find_edit, "cat")
    editor = window.editor

    def colour_over(position: int) -> QColor:
        """The colour just inside the top of the line, 2 pixels into the character."""
        cursor = QTextCursor(editor.document())
        cursor.setPosition(position)
        rect = editor.cursorRect(cursor)
        return editor.viewport().grab().toImage().pixelColor(QPoint(rect.x() + 2, rect.top() + 1))

    def distance(a: QColor, b: QColor) -> float:
        return math.dist((a.red(), a.green(), a.blue()), (b.red(), b.green(), b.blue()))

    base = editor.palette().color(editor.viewport().backgroundRole())
    current, other, plain = colour_over(4), colour_over(17), colour_over(13)
    assert plain == base
    assert other != base and current not in (base, other)
    # The selection colour, over the soft one: further from the paper than the others.
    assert distance(current, base) > distance(other, base) + 40, (current, other, base)


def test_find_colours_what_is_in_view_of_a_long_document_as_it_scrolls(
        qtbot: QtBot, window: MainWindow) -> None:
    editor = window.editor
    editor.set_text("".join(f"Paragraph {n}: the cat sat on the mat.\n" for n in range(400)))
    window.find_action.trigger()
    qtbot.keyClicks(window.find_bar.find_edit, "cat")
    assert window.find_bar.count_label.text() == "400 matches"
    matches = find_all(editor.document().toRawText(), "cat")

    def in_view() -> list[tuple[int, int]]:
        """The matches a person can see in the editor now."""
        seen = []
        for start, end in matches:
            cursor = QTextCursor(editor.document())
            cursor.setPosition(start)
            if editor.viewport().rect().contains(editor.cursorRect(cursor).center()):
                seen.append((start, end))
        return seen

    for value in (0, editor.verticalScrollBar().maximum() // 2,
                  editor.verticalScrollBar().maximum()):
        editor.verticalScrollBar().setValue(value)
        seen = in_view()
        assert seen and set(seen) <= set(find_marks(window)), value
    window.resize(window.width(), window.height() + 200)  # a taller window shows more
    qtbot.waitUntil(lambda: len(in_view()) > len(seen), timeout=2000)
    assert set(in_view()) <= set(find_marks(window))


def test_find_colours_follow_the_text_as_it_changes(qtbot: QtBot, window: MainWindow) -> None:
    window.editor.set_text(TEXT)
    window.find_action.trigger()
    bar = window.find_bar
    qtbot.keyClicks(bar.find_edit, "cat")
    window.editor.setFocus()
    window.editor.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(window.editor, " A cat.")
    qtbot.waitUntil(lambda: find_marks(window) == [(4, 7), (17, 20), (29, 32), (41, 44)],
                    timeout=2000)
    assert bar.count_label.text() == "4 matches"
    select(window, 4, 5)
    qtbot.keyClicks(window.editor, "b")  # "bat": no longer a match
    qtbot.waitUntil(lambda: find_marks(window) == [(17, 20), (29, 32), (41, 44)], timeout=2000)
    assert bar.count_label.text() == "3 matches"


def test_find_colours_lie_over_token_colours_without_wiping_them(
        qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 6)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    qtbot.keyClick(window.editor, Qt.Key.Key_T, CTRL)
    tokens = other_marks(window)
    assert len(tokens) == 6
    written = window.editor.toPlainText()[5:]
    window.find_action.trigger()
    qtbot.keyClicks(window.find_bar.find_edit, written[:3])  # over the first three tokens
    assert (5, 8) in find_marks(window)
    assert other_marks(window) == tokens  # every token keeps its colour
    window.find_bar.close_bar()
    assert other_marks(window) == tokens and find_marks(window) == []


def test_find_colours_and_the_surprise_lens_show_together(qtbot: QtBot,
                                                          window: MainWindow) -> None:
    window.editor.set_text(TEXT)
    window.find_action.trigger()
    qtbot.keyClicks(window.find_bar.find_edit, "cat")
    window.lens.action.trigger()  # the lens comes on with the bar open
    qtbot.waitUntil(lambda: len(other_marks(window)) > 0, timeout=5000)
    qtbot.waitUntil(lambda: find_marks(window) == [(4, 7), (17, 20), (29, 32)], timeout=2000)
    lens = other_marks(window)
    window.find_bar.close_bar()
    assert other_marks(window) == lens and find_marks(window) == []
    window.find_action.trigger()  # and the bar opens with the lens on
    assert find_marks(window) == [(4, 7), (17, 20), (29, 32)]
    assert other_marks(window) == lens


def test_find_all_agrees_with_qt_find() -> None:
    """The count and the colours come from find_all, Next from QTextDocument.find."""
    text = ("The cat, cat_x catty 2cat cat2 CAT Ünïcode ünïcode 🙂 cat 🙂🙂cat\n"
            "ſtraße STRASSE cat\u2028cat é é")
    document = QTextDocument()
    document.setPlainText(text)
    flag = QTextDocument.FindFlag
    for query in ("cat", "Cat", "ünï", "🙂cat", "straße", " ", "é", "t, c"):
        for flags in (flag(0), flag.FindCaseSensitively, flag.FindWholeWords,
                      flag.FindCaseSensitively | flag.FindWholeWords):
            expected = []
            found = document.find(query, 0, flags)
            while not found.isNull():
                expected.append((found.selectionStart(), found.selectionEnd()))
                found = document.find(query, found, flags)
            assert find_all(document.toRawText(), query,
                            case_sensitive=bool(flags & flag.FindCaseSensitively),
                            whole_words=bool(flags & flag.FindWholeWords)) == expected, \
                (query, flags)


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
    qtbot.waitUntil(lambda: window.welcome is not None and window.welcome.isVisible(),
                    timeout=3000)
    window.editor.set_text("Once upon a time")
    window.editor.setFocus()
    qtbot.keyClick(window.editor, Qt.Key.Key_Return, CTRL)
    message = window.statusBar().currentMessage()
    assert message.startswith("No model to write with yet")
    assert "Download GPT-2" in message and "Add from Folder" in message  # the welcome's offers
    assert window.editor.toPlainText() == "Once upon a time"


def test_find_next_with_nothing_to_find_opens_the_bar(qtbot: QtBot, window: MainWindow) -> None:
    window.editor.set_text(TEXT)
    window.editor.setFocus()
    qtbot.keyClick(window.editor, Qt.Key.Key_F3)
    assert window.find_bar.isVisible() and window.find_bar.find_edit.hasFocus()
