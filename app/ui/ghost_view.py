"""How ghost text looks: laid out from the caret like the text it would become, painted grey over
the editor's viewport, with a small "2/3" badge after it when there are alternatives.

Nothing here touches the document. Suggestions are only asked for at the end of a line (see
autocomplete.py), so the first line has nothing after it to cover; lines that wrap below are
painted on the page colour, as they may cover the paragraphs that follow until dismissed.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPalette, QTextCursor, QTextLayout, QTextOption
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QWidget

from app.ui.ghost_text import GhostText

BADGE_GAP = 6  # pixels between the ghost text and its badge


def ghost_colour(palette: QPalette) -> QColor:
    return palette.color(QPalette.ColorRole.PlaceholderText)


def layout_ghost(editor: QPlainTextEdit, ghost: GhostText) -> QTextLayout:
    """The ghost's lines in viewport coordinates: the first from the caret, the rest from the
    left edge of the text, wrapped at the same width as the document."""
    cursor = QTextCursor(editor.document())
    cursor.setPosition(min(ghost.position, editor.document().characterCount() - 1))
    caret = editor.cursorRect(cursor)
    margin = editor.document().documentMargin()
    left = editor.contentOffset().x() + margin
    right = editor.viewport().width() - margin
    layout = QTextLayout(ghost.text.replace("\n", "\u2028"), editor.font(), editor.viewport())
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    layout.setTextOption(option)
    layout.beginLayout()
    x, y = float(caret.left()), float(caret.top())
    while True:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(max(1.0, right - x))
        line.setPosition(QPointF(x, y))
        x, y = left, y + line.height()
    layout.endLayout()
    return layout


def paint_ghost(editor: QPlainTextEdit, ghost: GhostText, painter: QPainter) -> None:
    layout = layout_ghost(editor, ghost)
    palette = editor.palette()
    margin = editor.document().documentMargin()
    left = editor.contentOffset().x() + margin
    width = editor.viewport().width() - margin - left
    for i in range(1, layout.lineCount()):
        line = layout.lineAt(i)
        painter.fillRect(QRectF(left, line.y(), width, line.height()),
                         palette.color(QPalette.ColorRole.Base))
    painter.setPen(ghost_colour(palette))
    layout.draw(painter, QPointF(0, 0))


class GhostBadge(QLabel):
    """"2/3" after the ghost text: which suggestion is shown, and that Alt+] shows the next."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("ghost-badge")
        self.setAccessibleName("Suggestion number")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()

    def show_for(self, editor: QPlainTextEdit, ghost: GhostText | None) -> None:
        if ghost is None or len(ghost.alternatives) < 2:
            self.hide()
            return
        font = editor.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.75))
        self.setFont(font)
        c = ghost_colour(editor.palette())  # often see-through: keep its alpha
        colour = f"rgba({c.red()}, {c.green()}, {c.blue()}, {c.alpha()})"
        self.setStyleSheet(f"QLabel#ghost-badge {{ color: {colour}; border: 1px solid {colour};"
                           " border-radius: 3px; padding: 0 3px; }")
        self.setText(ghost.indicator)
        index, count = ghost.index + 1, len(ghost.alternatives)
        self.setToolTip(f"Suggestion {index} of {count}: Alt+] next, Alt+[ previous, "
                        "Tab accepts")
        self.setAccessibleDescription(self.toolTip())
        self.adjustSize()
        self.place(editor, ghost)
        self.show()

    def place(self, editor: QPlainTextEdit, ghost: GhostText) -> None:
        layout = layout_ghost(editor, ghost)
        line = layout.lineAt(layout.lineCount() - 1)
        right = editor.viewport().width() - editor.document().documentMargin()
        x = line.x() + line.naturalTextWidth() + BADGE_GAP
        y = line.y() + (line.height() - self.height()) / 2
        if x + self.width() > right:  # no room after the text: at the right, one line down
            x, y = right - self.width(), y + line.height()
        self.move(int(x), int(y))
