"""The writing surface: a plain-text editor that knows which text the model wrote.

Generated tokens are inserted through `begin_generation` / `append_token` / `end_generation`;
all the tokens of one run form one undo step (the first opens an edit block, the rest join
it). Where each token sits is tracked as character offsets (`spans.py`) and shown with
ExtraSelections, which are not part of the document: nothing of the marking is saved or undone.
Ghost text (issue 4) is meant to be painted over the viewport in `paintEvent`, outside the
document for the same reason.
"""

from __future__ import annotations

import bisect

from PySide6.QtCore import QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QMouseEvent,
    QPalette,
    QResizeEvent,
    QTextCharFormat,
    QTextCursor,
    QTextOption,
)
from PySide6.QtWidgets import QFrame, QPlainTextEdit, QTextEdit, QWidget

from app.engine.events import Alternative, TokenEvent
from app.ui.spans import TokenSpan, shift_range, shift_token
from app.ui.theme import generated_background, probability_colour
from app.ui.token_popup import TokenPopup

COLUMN_CHARS = 78  # a comfortable line length; wider windows get side margins instead
HOVER_DELAY_MS = 250
HIDE_DELAY_MS = 400


def utf16_len(text: str) -> int:
    """Length as QTextDocument counts it (UTF-16 code units), not as Python does."""
    return len(text.encode("utf-16-le")) // 2


class Editor(QPlainTextEdit):
    regenerate_requested = Signal(int, int)  # replace [start, end) with a new generation

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("editor")
        self.setAccessibleName("Document")
        self.setAccessibleDescription(
            "The text you are writing. Ctrl+Enter lets the model continue it at the cursor."
        )
        self.setPlaceholderText("Start writing. Ctrl+Enter lets the model continue at the cursor.")
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundRole(QPalette.ColorRole.Base)
        self.setAutoFillBackground(True)
        self.setTabChangesFocus(False)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # it wraps
        self.viewport().setMouseTracking(True)

        self._spans: list[TokenSpan] = []  # sorted by start
        self._last_generation: tuple[int, int] | None = None
        self._gen_cursor: QTextCursor | None = None
        self._gen_block_open = False
        self._gen_count = 0
        self._token_view = False
        self.document().contentsChange.connect(self._on_contents_change)

        self._repaint_marks = QTimer(self, singleShot=True, interval=30)
        self._repaint_marks.timeout.connect(self.refresh_marks)

        self.popup = TokenPopup(self)
        self.popup.chosen.connect(self._on_alternative_chosen)
        self.popup.pointer_inside.connect(self._on_pointer_in_popup)
        self._hover_span: TokenSpan | None = None
        self._hover_timer = QTimer(self, singleShot=True, interval=HOVER_DELAY_MS)
        self._hover_timer.timeout.connect(self._show_hovered)
        self._hide_timer = QTimer(self, singleShot=True, interval=HIDE_DELAY_MS)
        self._hide_timer.timeout.connect(self.popup.hide)

    # --- text ---------------------------------------------------------------------------------

    def set_text(self, text: str) -> None:
        """Replace the whole document (open, new, recover): no marks, no undo history."""
        self.popup.hide()
        self._spans.clear()
        self._last_generation = None
        self.setPlainText(text)
        self.refresh_marks()

    def text_before(self, pos: int) -> str:
        cursor = QTextCursor(self.document())
        cursor.setPosition(pos, QTextCursor.MoveMode.KeepAnchor)
        return cursor.selectedText().replace("\u2029", "\n").replace("\u2028", "\n")

    def insertion_point(self) -> int:
        return self.textCursor().selectionEnd()

    # --- generation ---------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self._gen_cursor is not None

    def last_generation(self) -> tuple[int, int] | None:
        return self._last_generation

    def begin_generation(self, at: int, replace_end: int | None = None) -> None:
        """Start inserting tokens at `at`, first removing [at, replace_end) in the same step."""
        self.popup.hide()
        self._gen_count += 1
        cursor = QTextCursor(self.document())
        cursor.setPosition(at)
        self._gen_block_open = False
        if replace_end is not None and replace_end > at:
            cursor.setPosition(replace_end, QTextCursor.MoveMode.KeepAnchor)
            cursor.beginEditBlock()
            cursor.removeSelectedText()
            cursor.endEditBlock()
            self._gen_block_open = True
        self._gen_cursor = cursor
        self._last_generation = (at, at)
        self.setTextCursor(QTextCursor(cursor))
        self.setReadOnly(True)  # the person's keystrokes must not land inside the undo step

    def append_token(self, event: TokenEvent) -> None:
        cursor = self._gen_cursor
        if cursor is None or not event.text:
            return  # "" = part of a UTF-8 character; its text comes with the next token
        start = cursor.position()
        if self._gen_block_open:
            cursor.joinPreviousEditBlock()
        else:
            cursor.beginEditBlock()
            self._gen_block_open = True
        cursor.insertText(event.text)
        cursor.endEditBlock()
        end = cursor.position()
        bisect.insort(self._spans, TokenSpan(start, end, event, self._gen_count),
                      key=lambda s: s.start)
        first = self._last_generation[0] if self._last_generation else start
        self._last_generation = (first, end)
        self.setTextCursor(QTextCursor(cursor))
        self.ensureCursorVisible()
        self._repaint_marks.start()

    def end_generation(self) -> None:
        cursor = self._gen_cursor
        if cursor is None:
            return
        if self._gen_block_open:
            self._close_undo_step(cursor)
        self._gen_cursor = None
        self._gen_block_open = False
        self.setReadOnly(False)
        if self._last_generation and self._last_generation[0] == self._last_generation[1]:
            self._last_generation = None
        self.refresh_marks()

    def _close_undo_step(self, cursor: QTextCursor) -> None:
        """Qt merges typing that follows an edit block into it; a net-zero edit prevents that."""
        cursor.joinPreviousEditBlock()
        cursor.insertText("\u200b")
        cursor.deletePreviousChar()
        cursor.endEditBlock()

    # --- tokens -------------------------------------------------------------------------------

    def tokens(self) -> list[TokenSpan]:
        return list(self._spans)

    def token_at(self, index: int) -> TokenSpan | None:
        """The generated token covering character `index`, if any."""
        i = bisect.bisect_right(self._spans, index, key=lambda s: s.start) - 1
        if i >= 0 and self._spans[i].start <= index < self._spans[i].end:
            return self._spans[i]
        return None

    def token_at_point(self, point: QPoint) -> TokenSpan | None:
        """The token under a viewport point; None over blank space past a line's end."""
        cursor = self.cursorForPosition(point)
        pos = cursor.position()
        rect = self.cursorRect(cursor)
        index = pos - 1 if point.x() < rect.x() and pos > 0 else pos
        probe = QTextCursor(self.document())
        probe.setPosition(index)
        left = self.cursorRect(probe)
        if not left.top() <= point.y() <= left.bottom() + 1 or point.x() < left.x() - 1:
            return None
        if index + 1 <= self.document().characterCount() - 1:
            probe.setPosition(index + 1)
            right = self.cursorRect(probe)
            if right.top() == left.top() and point.x() > right.x() + 1:
                return None
        return self.token_at(index)

    def set_token_view(self, on: bool) -> None:
        self._token_view = on
        if not on:
            self.popup.hide()
        self.refresh_marks()

    def token_view(self) -> bool:
        return self._token_view

    def refresh_marks(self) -> None:
        """Paint the generated-text wash, or in the token view each token's probability."""
        self._repaint_marks.stop()
        palette = self.palette()
        selections: list[QTextEdit.ExtraSelection] = []
        if self._token_view:
            for span in self._spans:
                selections.append(self._selection(span.start, span.end,
                                                  probability_colour(span.event.p, palette)))
        else:
            wash = generated_background(palette)
            run: list[int] | None = None
            for span in self._spans:
                if run is not None and run[1] == span.start:
                    run[1] = span.end
                    continue
                if run is not None:
                    selections.append(self._selection(run[0], run[1], wash))
                run = [span.start, span.end]
            if run is not None:
                selections.append(self._selection(run[0], run[1], wash))
        self.setExtraSelections(selections)

    def _selection(self, start: int, end: int, colour: QColor) -> QTextEdit.ExtraSelection:
        selection = QTextEdit.ExtraSelection()
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        selection.cursor = cursor
        fmt = QTextCharFormat()
        fmt.setBackground(colour)
        selection.format = fmt
        return selection

    def replace_token(self, span: TokenSpan, alternative: Alternative) -> TokenSpan:
        """Swap a generated token for one of its alternatives (one undo step); the new span."""
        cursor = QTextCursor(self.document())
        cursor.setPosition(span.start)
        cursor.setPosition(span.end, QTextCursor.MoveMode.KeepAnchor)
        cursor.beginEditBlock()
        cursor.insertText(alternative.text)
        cursor.endEditBlock()
        self._close_undo_step(cursor)
        event = TokenEvent(alternative.token_id, alternative.text, alternative.p,
                           span.event.alternatives)
        new = TokenSpan(span.start, span.start + utf16_len(alternative.text), event,
                        span.generation)
        if new.end > new.start:
            bisect.insort(self._spans, new, key=lambda s: s.start)
        after = QTextCursor(self.document())
        after.setPosition(new.end)
        self.setTextCursor(after)
        self.refresh_marks()
        return new

    def rest_of_generation(self, span: TokenSpan) -> int:
        """Where the run of tokens that follows `span` in its generation ends."""
        end = span.end
        for other in self._spans:
            if other.generation == span.generation and other.start == end:
                end = other.end
        return end

    def show_alternatives(self, span: TokenSpan, keyboard: bool = False) -> None:
        cursor = QTextCursor(self.document())
        cursor.setPosition(span.start)
        below = self.cursorRect(cursor).bottomLeft() + QPoint(0, 4)
        self.popup.show_for(span, self.viewport().mapToGlobal(below), keyboard)

    def show_alternatives_at_cursor(self) -> bool:
        pos = self.textCursor().position()
        span = self.token_at(pos - 1) or self.token_at(pos)  # the token just behind the caret
        if span is None:
            return False
        self.show_alternatives(span, keyboard=True)
        return True

    def _on_alternative_chosen(self, span: TokenSpan, alternative: Alternative,
                               regenerate: bool) -> None:
        if self.generating or span not in self._spans:
            return
        end_of_run = self.rest_of_generation(span)
        new = self.replace_token(span, alternative)
        if regenerate:
            self.regenerate_requested.emit(new.end, end_of_run + new.end - span.end)

    # --- edits and the pointer ----------------------------------------------------------------

    def _on_contents_change(self, pos: int, removed: int, added: int) -> None:
        if removed == 0 and added == 0:
            return
        self._spans = [s for s in self._spans if shift_token(s, pos, removed, added)]
        if self._last_generation is not None and self._gen_cursor is None:
            self._last_generation = shift_range(self._last_generation, pos, removed, added)
        if self.popup.isVisible() and self.popup.span not in self._spans:
            self.popup.hide()
        self._repaint_marks.start()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        if not self._token_view or self.generating:
            return
        span = self.token_at_point(event.position().toPoint())
        if span is None:
            self._hover_timer.stop()
            self._hover_span = None
            if self.popup.isVisible():
                self._hide_timer.start()
            return
        if self.popup.isVisible() and self.popup.span is span:
            self._hide_timer.stop()
            return
        if span is not self._hover_span:
            self._hover_span = span
            self._hover_timer.start()

    def leaveEvent(self, event: object) -> None:
        self._hover_timer.stop()
        self._hover_span = None
        if self.popup.isVisible():
            self._hide_timer.start()
        super().leaveEvent(event)  # type: ignore[arg-type]

    def _show_hovered(self) -> None:
        if self._hover_span is not None and self._hover_span in self._spans:
            self._hide_timer.stop()
            self.show_alternatives(self._hover_span)

    def _on_pointer_in_popup(self, inside: bool) -> None:
        if inside:
            self._hide_timer.stop()
        else:
            self._hide_timer.start()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update_margins()

    def changeEvent(self, event: object) -> None:
        super().changeEvent(event)  # type: ignore[arg-type]
        self._update_margins()

    def _update_margins(self) -> None:
        """Keep lines about COLUMN_CHARS long by centring the text in wide windows."""
        column = self.fontMetrics().horizontalAdvance("n") * COLUMN_CHARS
        side = max(16, (self.width() - column) // 2)
        margins = self.viewportMargins()
        if margins.left() != side or margins.top() != 16:
            self.setViewportMargins(side, 16, side, 16)
            # QPlainTextEdit re-wraps only when it sees the viewport's width change, which it
            # can miss for a change made here; hand it that news directly.
            QPlainTextEdit.resizeEvent(self, QResizeEvent(self.viewport().size(), QSize()))
