"""The status bar's word and character count: of the selection when there is one, else of the
whole document."""

from __future__ import annotations

import re

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QWidget

# Counting a novel on every keystroke would lag typing; a short pause lets a burst through.
COUNT_DELAY_MS = 150
_WORD = re.compile(r"\S+")
_PARAGRAPH_SEPARATOR = "\u2029"  # how QTextCursor.selectedText() writes a line break


def count_text(text: str) -> tuple[int, int]:
    """(words, characters): a word is a run of non-space characters; a line break is one
    character, as in the saved file."""
    text = text.replace(_PARAGRAPH_SEPARATOR, "\n")
    return len(_WORD.findall(text)), len(text)


def count_line(words: int, characters: int, selection: bool) -> str:
    word_s = "word" if words == 1 else "words"
    character_s = "character" if characters == 1 else "characters"
    line = f"{words:,} {word_s}, {characters:,} {character_s}"
    return f"Selected: {line}" if selection else line


class TextCountLabel(QLabel):
    """Shows `editor`'s word and character count, kept up to date."""

    def __init__(self, editor: QPlainTextEdit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._editor = editor
        self.setAccessibleName("Word count")
        self.setToolTip("Words and characters in the document, or in the selection")
        self.setContentsMargins(6, 0, 6, 0)
        self._timer = QTimer(self, singleShot=True, interval=COUNT_DELAY_MS)
        self._timer.timeout.connect(self.update_count)
        editor.textChanged.connect(self._timer.start)
        editor.selectionChanged.connect(self._timer.start)
        self.update_count()

    def update_count(self) -> None:
        cursor = self._editor.textCursor()
        selection = cursor.hasSelection()
        text = cursor.selectedText() if selection else self._editor.toPlainText()
        self.setText(count_line(*count_text(text), selection))
