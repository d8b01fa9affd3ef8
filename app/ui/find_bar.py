"""The find and replace bar under the editor (Ctrl+F, Ctrl+H): next and previous match, match
case, whole words, replace one and replace all (one undo step). Esc closes it.

While the bar is open every match in view is marked in a soft colour, over the editor's other
marks (token colours, the surprise lens); the current match is the editor's selection, drawn
in the stronger selection colour on top. The marks are ExtraSelections: no undo step, nothing
saved. They follow the query as it is typed, the text as it changes and the view as it
scrolls, and go when the bar closes. Only what is in view is marked because Qt's cost of
setting and painting ExtraSelections grows with their number: "the" in 20,000 words is ~1,700
matches, and handing Qt that many and taking them back cost ~50 ms a keystroke (measured
2026-12-02, 2-core AMD EPYC, offscreen), where those in view cost ~1 ms. For the same
reason the matches are counted by a regular expression over the whole text at once rather than
one QTextDocument.find at a time; `find_all` follows QTextDocument.find's rules, so the count
and the marks agree with Next.
"""

from __future__ import annotations

import bisect
import re

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QColor, QKeyEvent, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextEdit,
    QToolButton,
    QWidget,
)

from app.ui.editor import Editor

Flag = QTextDocument.FindFlag
REFIND_AFTER_EDIT_MS = 200  # after the text changes, find the matches again once typing pauses
_BLOCK_BREAKS = ("\u2029", "\u2028", "\n", "\r")  # no match crosses one in QTextDocument.find
_LETTER_OR_NUMBER = r"[^\W_]"  # QChar.isLetterOrNumber: what a whole word must not touch
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def find_all(text: str, query: str, case_sensitive: bool = False,
             whole_words: bool = False) -> list[tuple[int, int]]:
    """Every match of `query` in `text` (a document's raw text), as [start, end) positions in
    the document (UTF-16 units, as Qt counts), in order, not overlapping: the matches
    QTextDocument.find gives one by one with the same flags."""
    if not query or any(brk in query for brk in _BLOCK_BREAKS):
        return []
    pattern = re.escape(query)
    if whole_words:
        pattern = f"(?<!{_LETTER_OR_NUMBER}){pattern}(?!{_LETTER_OR_NUMBER})"
    expression = re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)
    spans = [match.span() for match in expression.finditer(text)]
    if len(text.encode("utf-16-le")) == 2 * len(text):
        return spans
    # A character beyond the BMP is one Python character and two UTF-16 units.
    astral = [match.start() for match in _ASTRAL.finditer(text)]
    return [(start + bisect.bisect_left(astral, start), end + bisect.bisect_left(astral, end))
            for start, end in spans]


# The soft amber behind every match, light or dark theme: apart from the blue of the selection
# (the current match) and of the generated-text wash, and see-through so that token colours
# still show under it.
MATCH_BACKGROUND = QColor(255, 196, 0, 120)


class FindBar(QWidget):
    """Searches `editor`'s document; hidden until `open_find` or `open_replace`."""

    def __init__(self, editor: Editor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("find-bar")
        self._editor = editor
        self._found: list[tuple[int, int]] = []  # every match, as find_all gives them
        self._found_stale = False  # the text changed since they were found
        # The matches the editor shows marked; None when an edit moved the marks since.
        self._marked: list[tuple[int, int]] | None = []
        self._refind = QTimer(self, singleShot=True, interval=REFIND_AFTER_EDIT_MS)
        self._refind.timeout.connect(self._update_matches)
        self.find_edit = QLineEdit(self)
        self.find_edit.setPlaceholderText("Find")
        self.find_edit.setAccessibleName("Find")
        self.find_edit.setClearButtonEnabled(True)
        self.replace_edit = QLineEdit(self)
        self.replace_edit.setPlaceholderText("Replace with")
        self.replace_edit.setAccessibleName("Replace with")
        self.previous_button = QPushButton("Previous", self)
        self.previous_button.setToolTip("The match before the cursor (Shift+Enter, Shift+F3)")
        self.next_button = QPushButton("Next", self)
        self.next_button.setToolTip("The match after the cursor (Enter, F3)")
        self.case_box = QCheckBox("Match case", self)
        self.words_box = QCheckBox("Whole words", self)
        self.replace_button = QPushButton("Replace", self)
        self.replace_button.setToolTip("Replace this match and go to the next")
        self.replace_all_button = QPushButton("Replace All", self)
        self.replace_all_button.setToolTip("Replace every match; Ctrl+Z undoes it in one step")
        self.count_label = QLabel("", self)
        self.count_label.setAccessibleName("Matches")
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Close (Esc)")
        self.close_button.setAccessibleName("Close find")

        grid = QGridLayout(self)
        grid.setContentsMargins(6, 4, 6, 4)
        grid.addWidget(self.find_edit, 0, 0)
        grid.addWidget(self.previous_button, 0, 1)
        grid.addWidget(self.next_button, 0, 2)
        grid.addWidget(self.case_box, 0, 3)
        grid.addWidget(self.words_box, 0, 4)
        grid.addWidget(self.count_label, 0, 5)
        grid.addWidget(self.close_button, 0, 6)
        grid.addWidget(self.replace_edit, 1, 0)
        grid.addWidget(self.replace_button, 1, 1)
        grid.addWidget(self.replace_all_button, 1, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(5, 1)

        self.previous_button.clicked.connect(self.find_previous)
        self.next_button.clicked.connect(self.find_next)
        self.replace_button.clicked.connect(self.replace)
        self.replace_all_button.clicked.connect(self.replace_all)
        self.close_button.clicked.connect(self.close_bar)
        self.find_edit.textEdited.connect(self._search_as_typed)
        self.find_edit.textChanged.connect(self._update_matches)
        self.case_box.toggled.connect(self._update_matches)
        self.words_box.toggled.connect(self._update_matches)
        editor.document().contentsChange.connect(self._on_text_changed)
        scroll_bar = editor.verticalScrollBar()
        scroll_bar.valueChanged.connect(self._mark_in_view)
        # The range changes with whatever shows more or less of the text: resizing, zoom,
        # re-wrapping, new lines.
        scroll_bar.rangeChanged.connect(self._mark_in_view)
        for edit in (self.find_edit, self.replace_edit):
            edit.installEventFilter(self)
        self._show_replace(False)
        self.hide()

    # --- opening and closing --------------------------------------------------------------------

    def open_find(self) -> None:
        self._open(replace=False)

    def open_replace(self) -> None:
        self._open(replace=True)

    def _open(self, replace: bool) -> None:
        selected = self._editor.textCursor().selectedText()
        if selected and "\u2029" not in selected:  # one line selected: look for that
            self.find_edit.setText(selected)
        self._show_replace(replace)
        self.show()
        self.find_edit.setFocus()
        self.find_edit.selectAll()
        self._update_matches()

    def _show_replace(self, on: bool) -> None:
        for widget in (self.replace_edit, self.replace_button, self.replace_all_button):
            widget.setVisible(on)

    def close_bar(self) -> None:
        self.hide()
        self._update_matches()  # closed: the marks go
        self._editor.setFocus()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if isinstance(event, QKeyEvent):
            escape = event.key() == Qt.Key.Key_Escape
            if event.type() == QEvent.Type.ShortcutOverride and escape:
                event.accept()  # Esc closes the bar, before any window shortcut has it
                return True
            if event.type() == QEvent.Type.KeyPress:
                if escape:
                    self.close_bar()
                    return True
                if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                    backward = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
                    if watched is self.replace_edit and not backward:
                        self.replace()
                    elif backward:
                        self.find_previous()
                    else:
                        self.find_next()
                    return True
        return super().eventFilter(watched, event)

    # --- finding --------------------------------------------------------------------------------

    def flags(self) -> QTextDocument.FindFlag:
        flags = Flag(0)
        if self.case_box.isChecked():
            flags |= Flag.FindCaseSensitively
        if self.words_box.isChecked():
            flags |= Flag.FindWholeWords
        return flags

    def find_next(self) -> bool:
        return self._find_or_ask(backward=False)

    def find_previous(self) -> bool:
        return self._find_or_ask(backward=True)

    def _find_or_ask(self, backward: bool) -> bool:
        """F3 with nothing to look for yet opens the bar to type it."""
        if not self.find_edit.text() and not self.isVisible():
            self.open_find()
            return False
        return self._find(backward)

    def _find(self, backward: bool, start: QTextCursor | None = None) -> bool:
        """Select the next (or previous) match from `start` (the editor's cursor), going round
        the end of the document once. False, and a word in the bar, when there is none."""
        text = self.find_edit.text()
        if not text:
            return False
        document = self._editor.document()
        flags = self.flags() | (Flag.FindBackward if backward else Flag(0))
        cursor = start if start is not None else self._editor.textCursor()
        found = document.find(text, cursor, flags)
        if found.isNull():  # round the end (or the start) of the document
            edge = QTextCursor(document)
            if backward:
                edge.movePosition(QTextCursor.MoveOperation.End)
            found = document.find(text, edge, flags)
        if found.isNull():
            return False
        self._editor.setTextCursor(found)
        self._editor.ensureCursorVisible()
        return True

    def _search_as_typed(self) -> None:
        """Typing in the box finds from where the current match starts, so it grows in place."""
        cursor = self._editor.textCursor()
        cursor.setPosition(cursor.selectionStart())
        if not self._find(backward=False, start=cursor):
            self._editor.setTextCursor(cursor)

    def matches(self) -> list[tuple[int, int]]:
        """Every match in the document, as [start, end) positions, in order."""
        return find_all(self._editor.document().toRawText(), self.find_edit.text(),
                        self.case_box.isChecked(), self.words_box.isChecked())

    def count(self) -> int:
        return len(self.matches())

    def _update_matches(self) -> None:
        """Find and count the matches, and mark those in view; an empty query or a closed bar
        marks none."""
        self._refind.stop()
        if self.isHidden() or not self.find_edit.text():
            self._found = []
            self.count_label.setText("")
        else:
            self._found = self.matches()
            matches = len(self._found)
            self.count_label.setText({0: "No matches", 1: "1 match"}.get(matches,
                                                                         f"{matches} matches"))
        self._found_stale = False
        self._mark_in_view()

    def _mark_in_view(self) -> None:
        """Mark the matches between the top and the bottom of the editor's view."""
        if self._found_stale:
            self._update_matches()  # the positions are out of date: find them again first
            return
        in_view: list[tuple[int, int]] = []
        if self._found and not self.isHidden():
            top, bottom = self._editor.visible_range()
            first = bisect.bisect_right(self._found, top, key=lambda match: match[1])
            last = bisect.bisect_right(self._found, bottom, key=lambda match: match[0])
            in_view = self._found[first:last]
        if in_view == self._marked:
            return  # as shown already (scrolling within a line): spare the editor a repaint
        self._marked = in_view
        fmt = QTextCharFormat()
        fmt.setBackground(MATCH_BACKGROUND)
        document = self._editor.document()
        marks: list[QTextEdit.ExtraSelection] = []
        for start, end in in_view:
            cursor = QTextCursor(document)
            cursor.setPosition(start)
            cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            mark = QTextEdit.ExtraSelection()
            mark.cursor = cursor
            mark.format = fmt
            marks.append(mark)
        self._editor.set_find_marks(marks)

    def _on_text_changed(self, _pos: int, removed: int, added: int) -> None:
        # The marks' cursors move with the text by themselves; new or broken matches need a new
        # search, made once typing (or a generation) pauses rather than on every keystroke.
        if not removed and not added:
            return
        self._found_stale = bool(self._found)
        if self._marked:
            self._marked = None  # whatever is found next is marked anew
        if not self.isHidden() and self.find_edit.text():
            self._refind.start()

    # --- replacing ------------------------------------------------------------------------------

    def _selection_matches(self) -> bool:
        """Whether the editor's selection is a match (what Replace replaces)."""
        cursor = self._editor.textCursor()
        if not cursor.hasSelection():
            return False
        start = QTextCursor(self._editor.document())
        start.setPosition(cursor.selectionStart())
        found = self._editor.document().find(self.find_edit.text(), start, self.flags())
        return (not found.isNull() and found.selectionStart() == cursor.selectionStart()
                and found.selectionEnd() == cursor.selectionEnd())

    def replace(self) -> None:
        """Replace the selected match, then select the next one."""
        if self._editor.isReadOnly() or not self.find_edit.text():
            return
        if self._selection_matches():
            self._editor.textCursor().insertText(self.replace_edit.text())
        self.find_next()

    def replace_all(self) -> int:
        """Replace every match as one undo step; how many were replaced."""
        text = self.find_edit.text()
        if self._editor.isReadOnly() or not text:
            return 0
        document = self._editor.document()
        replacement = self.replace_edit.text()
        edit = QTextCursor(document)
        replaced = 0
        found = document.find(text, 0, self.flags())
        edit.beginEditBlock()
        while not found.isNull():
            found.insertText(replacement)  # leaves `found` after the new text: no re-match
            replaced += 1
            found = document.find(text, found, self.flags())
        edit.endEditBlock()
        self._update_matches()
        self.count_label.setText(f"{replaced} replaced")
        return replaced
