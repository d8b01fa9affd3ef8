"""The find and replace bar under the editor (Ctrl+F, Ctrl+H): next and previous match, match
case, whole words, replace one and replace all (one undo step). Esc closes it."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent, QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QWidget,
)

Flag = QTextDocument.FindFlag


class FindBar(QWidget):
    """Searches `editor`'s document; hidden until `open_find` or `open_replace`."""

    def __init__(self, editor: QPlainTextEdit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("find-bar")
        self._editor = editor
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
        self.case_box.toggled.connect(self._update_count)
        self.words_box.toggled.connect(self._update_count)
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
        self._update_count()

    def _show_replace(self, on: bool) -> None:
        for widget in (self.replace_edit, self.replace_button, self.replace_all_button):
            widget.setVisible(on)

    def close_bar(self) -> None:
        self.hide()
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
        self._update_count()
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

    def count(self) -> int:
        text = self.find_edit.text()
        if not text:
            return 0
        document = self._editor.document()
        matches = 0
        found = document.find(text, 0, self.flags())
        while not found.isNull():
            matches += 1
            found = document.find(text, found, self.flags())
        return matches

    def _update_count(self) -> None:
        if not self.find_edit.text():
            self.count_label.setText("")
            return
        matches = self.count()
        self.count_label.setText({0: "No matches", 1: "1 match"}.get(matches,
                                                                     f"{matches} matches"))

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
        self._update_count()
        self.count_label.setText(f"{replaced} replaced")
        return replaced
