"""Two takes side by side, the words where they differ washed in colour."""

from __future__ import annotations

import difflib
import re

from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QPlainTextEdit,
    QWidget,
)

from app.takes import Take
from app.ui.theme import is_dark

# A word carries the spaces after it, so that a run of changed words is marked as one.
_WORDS = re.compile(r"\w+\s*|[^\w\s]\s*|\s+")


def differing_spans(left: str, right: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Character ranges of `left` and of `right` that the other text does not have, compared
    word by word (punctuation marks are words of their own)."""
    a, b = _WORDS.findall(left), _WORDS.findall(right)
    a_starts, b_starts = _starts(a), _starts(b)
    left_spans: list[tuple[int, int]] = []
    right_spans: list[tuple[int, int]] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if i2 > i1:
            left_spans.append((a_starts[i1], a_starts[i2]))
        if j2 > j1:
            right_spans.append((b_starts[j1], b_starts[j2]))
    return left_spans, right_spans


def _starts(words: list[str]) -> list[int]:
    starts = [0]
    for word in words:
        starts.append(starts[-1] + len(word))
    return starts


class TakeCompareDialog(QDialog):
    def __init__(self, left: Take, right: Take, left_title: str, right_title: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("take-compare")
        self.setWindowTitle("Compare Takes")
        self.resize(900, 420)
        layout = QGridLayout(self)
        left_spans, right_spans = differing_spans(left.text, right.text)
        self.views: list[QPlainTextEdit] = []
        for column, (take, title, spans) in enumerate(((left, left_title, left_spans),
                                                        (right, right_title, right_spans))):
            label = QLabel(title, self)
            label.setStyleSheet("font-weight: 600;")
            view = QPlainTextEdit(self)
            view.setReadOnly(True)
            view.setAccessibleName(f"Take {title}")
            view.setPlainText(take.text)
            label.setBuddy(view)
            self._mark(view, spans)
            layout.addWidget(label, 0, column)
            layout.addWidget(view, 1, column)
            self.views.append(view)
        self.note = QLabel("Words only one take has are highlighted." if left_spans or right_spans
                           else "The two takes are the same.", self)
        layout.addWidget(self.note, 2, 0, 1, 2)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons, 3, 0, 1, 2)

    def _mark(self, view: QPlainTextEdit, spans: list[tuple[int, int]]) -> None:
        # Offsets are Python characters; the texts of takes are mostly outside the astral
        # planes, and a highlight a character off there is harmless.
        colour = QColor("#6b5a1e") if is_dark(view.palette()) else QColor("#fde68a")
        fmt = QTextCharFormat()
        fmt.setBackground(colour)
        cursor = QTextCursor(view.document())
        for start, end in spans:
            if not view.document().toPlainText()[start:end].strip():
                continue  # a difference in spacing alone is not worth a mark
            cursor.setPosition(start)
            cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            cursor.mergeCharFormat(fmt)

    def highlighted(self, side: int) -> list[str]:
        """The highlighted words of one side (0 left, 1 right): what a person sees marked."""
        document = self.views[side].document()
        found: list[str] = []
        block = document.begin()
        while block.isValid():
            iterator = block.begin()
            while not iterator.atEnd():
                fragment = iterator.fragment()
                if fragment.charFormat().background().style() != 0:
                    found.append(fragment.text())
                iterator += 1
            block = block.next()
        return found
