"""The writing surface: a plain-text editor that knows which text the model wrote.

Generated tokens are inserted through `begin_generation` / `append_tokens` / `end_generation`;
all the tokens of one run form one undo step (the first opens an edit block, the rest join
it). Where each token sits is tracked as character offsets (`spans.py`) and shown with
ExtraSelections, which are not part of the document: nothing of the marking is saved, and Undo
and Redo bring back the marks each undo step had from a `MarkHistory` kept beside Qt's stack.
Ghost text (autocomplete.py asks for it) is painted over the viewport in `paintEvent`, outside
the document for the same reason; the keys that act on it are handled here, before Qt's own.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import cast

from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAccessible,
    QColor,
    QContextMenuEvent,
    QFocusEvent,
    QInputMethodEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QTextBlock,
    QTextCharFormat,
    QTextCursor,
    QTextOption,
)
from PySide6.QtWidgets import QFrame, QMenu, QPlainTextEdit, QTextEdit, QWidget

from app.engine.events import Alternative, TokenEvent
from app.ui.ghost_text import GhostText
from app.ui.ghost_view import GhostBadge, paint_ghost
from app.ui.spans import (
    GenerationRange,
    MarkHistory,
    Marks,
    TokenSpan,
    shift_generation,
    shift_token,
)
from app.ui.theme import generated_background, probability_colour
from app.ui.token_popup import TokenPopup

try:  # Qt 6.8+: lets a screen reader say the suggestion as it appears
    from PySide6.QtGui import QAccessibleAnnouncementEvent
except ImportError:  # pragma: no cover - older Qt: the accessible description still says it
    QAccessibleAnnouncementEvent = None  # type: ignore[assignment,misc]

COLUMN_CHARS = 78  # a comfortable line length; wider windows get side margins instead
HOVER_DELAY_MS = 250
HIDE_DELAY_MS = 400
# Token Colours marks the tokens on screen and this many characters, at least half a screen,
# either side: Qt's paint walks every mark for every paragraph it draws, and a 20,000-token
# generation marked whole made each repaint ~50 ms. Scrolling further marks the part on show.
TOKEN_MARK_MARGIN_CHARS = 1000
DESCRIPTION = (
    "The text you are writing. Ctrl+Enter lets the model continue it at the cursor. After a "
    "pause in typing, a suggestion may follow the cursor in grey: Tab accepts it, Ctrl+Right "
    "accepts its next word, Alt+] and Alt+[ show the other suggestions, Esc dismisses it."
)
_MODIFIER_KEYS = {Qt.Key.Key_Shift, Qt.Key.Key_Control, Qt.Key.Key_Alt, Qt.Key.Key_Meta,
                  Qt.Key.Key_AltGr, Qt.Key.Key_CapsLock, Qt.Key.Key_Super_L, Qt.Key.Key_Super_R}


def utf16_len(text: str) -> int:
    """Length as QTextDocument counts it (UTF-16 code units), not as Python does."""
    return len(text.encode("utf-16-le")) // 2


def _marks(selection: QTextEdit.ExtraSelection, span: TokenSpan) -> bool:
    """Whether `selection` still covers exactly `span`'s text (its cursor follows edits, and an
    undone deletion brings a span back whose old cursor had collapsed)."""
    cursor = selection.cursor
    return cursor.selectionStart() == span.start and cursor.selectionEnd() == span.end


class Editor(QPlainTextEdit):
    regenerate_requested = Signal(int, int)  # replace [start, end) with a new generation
    typed = Signal()  # the person changed the text from the keyboard; a suggestion may follow
    ghost_changed = Signal()  # ghost text appeared, changed or went
    escape_pressed = Signal()  # Esc: no suggestion now, please

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("editor")
        self.setAccessibleName("Document")
        self.setAccessibleDescription(DESCRIPTION)
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
        self._last_generation: GenerationRange | None = None
        self._gen_start = 0  # where the running generation inserts its first token
        self._gen_cursor: QTextCursor | None = None
        self._gen_block_open = False
        self._gen_count = 0
        self._token_view = False
        # The surprise lens's colours (surprise_lens.py): while there are any, they replace the
        # generated-text wash and the token colours. Its washes ([start, end) and a colour,
        # sorted) are painted here behind the text, not as ExtraSelections: Qt draws the text
        # of each ExtraSelection again over its own, and a screenful of ~270 washed words took
        # 12 ms a repaint that way against 2.3 painted here (2026-12-02); its underlines (the
        # repeats, a few) stay ExtraSelections.
        self._lens_marks: list[QTextEdit.ExtraSelection] = []
        self._lens_washes: list[tuple[int, int, QColor]] = []
        self._wash_rects: list[tuple[QRectF, QColor]] = []
        self._wash_key: tuple[object, ...] = ()
        # The find bar's marks on its matches (find_bar.py): drawn over whichever of the above
        # shows (`_shown_marks`, kept so that a new search need not make them again), so
        # neither hides the other where no match is.
        self._find_marks: list[QTextEdit.ExtraSelection] = []
        self._shown_marks: list[QTextEdit.ExtraSelection] = []
        self._token_marked = (0, 0)  # the document range [start, end) Token Colours marks
        # Token Colours' marks by id(span), made again only for a new span or one whose text
        # moved: rebuilding every mark on screen each refresh (up to ~700, ~20 µs each) took
        # 10-20 ms of the GUI thread every 30 ms while a model wrote (2026-12-02).
        self._token_marks: dict[int, tuple[TokenSpan, QTextEdit.ExtraSelection]] = {}
        self._token_marks_palette = 0  # the palette's cacheKey() they were coloured with
        self.revision = 0  # edits so far; only ever grows (an undo is an edit too)
        self._ghost: GhostText | None = None
        self._ghost_edit = False  # an edit of our own that keeps the ghost text
        self.ghost_badge = GhostBadge(self.viewport())
        self._history = MarkHistory()
        self._undo_step = 0  # the document's undo step that the marks belong to
        self._new_edit = False  # Qt added an undo command: the next change is not Undo/Redo
        self.document().undoCommandAdded.connect(self._on_undo_command_added)
        self.document().contentsChange.connect(self._on_contents_change)
        self.cursorPositionChanged.connect(self._on_cursor_moved)
        self.updateRequest.connect(self._place_badge)

        self._repaint_marks = QTimer(self, singleShot=True, interval=30)
        self._repaint_marks.timeout.connect(self.refresh_marks)
        self.verticalScrollBar().valueChanged.connect(self._follow_view)

        self.popup = TokenPopup(self)
        self.popup.chosen.connect(self._on_alternative_chosen)
        self.popup.pointer_inside.connect(self._on_pointer_in_popup)
        self._hover_span: TokenSpan | None = None
        self._hover_timer = QTimer(self, singleShot=True, interval=HOVER_DELAY_MS)
        self._hover_timer.timeout.connect(self._show_hovered)
        self._hide_timer = QTimer(self, singleShot=True, interval=HIDE_DELAY_MS)
        self._hide_timer.timeout.connect(self._hide_hover_popup)
        self.extra_menu: QMenu | None = None  # the window's menu of actions on the selection

    # --- text ---------------------------------------------------------------------------------

    def set_text(self, text: str) -> None:
        """Replace the whole document (open, new, recover): no marks, no undo history."""
        self.popup.hide()
        self.clear_ghost()
        self._spans.clear()
        self._last_generation = None
        self._history.clear()
        self._undo_step = 0  # setPlainText empties the undo stack
        self.setPlainText(text)
        self._history.clear()
        self.refresh_marks()

    def text_before(self, pos: int) -> str:
        cursor = QTextCursor(self.document())
        cursor.setPosition(pos, QTextCursor.MoveMode.KeepAnchor)
        return cursor.selectedText().replace("\u2029", "\n").replace("\u2028", "\n")

    def insertion_point(self) -> int:
        return self.textCursor().selectionEnd()

    def replace_range(self, start: int, end: int, text: str) -> None:
        """Replace [start, end) with `text` (an empty range: insert it), as one undo step;
        the cursor ends after it."""
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        cursor.beginEditBlock()
        cursor.insertText(text)
        cursor.endEditBlock()
        self._close_undo_step(cursor)
        self.setTextCursor(cursor)
        self.ensureCursorVisible()

    def context_menu(self, pos: QPoint) -> QMenu:
        """Qt's own editing menu, then `extra_menu`'s commands as a submenu."""
        menu = self.createStandardContextMenu(pos)
        extra = self.extra_menu
        if extra is not None and extra.actions():
            menu.addSeparator()
            submenu = menu.addMenu(extra.title())
            submenu.addActions(extra.actions())
        return menu

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        menu = self.context_menu(event.pos())
        menu.exec(event.globalPos())
        menu.deleteLater()

    # --- generation ---------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self._gen_cursor is not None

    def last_generation(self) -> GenerationRange | None:
        return self._last_generation

    def begin_generation(self, at: int, replace_end: int | None = None) -> None:
        """Start inserting tokens at `at`, first removing [at, replace_end) in the same step."""
        self.popup.hide()
        self.clear_ghost()
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
        self._gen_start = at  # the last generation changes with the first token, not before
        self.setTextCursor(QTextCursor(cursor))
        self.setReadOnly(True)  # the person's keystrokes must not land inside the undo step

    def append_tokens(self, events: Sequence[TokenEvent]) -> None:
        """Write `events`' text at the generation's end, in the run's undo step. Several at a
        time cost one layout and one cursor move for all of them (see GenerationController)."""
        cursor = self._gen_cursor
        # "" = part of a UTF-8 character; its text comes with the next token
        written = [event for event in events if event.text]
        if cursor is None or not written:
            return
        if self._gen_block_open:
            cursor.joinPreviousEditBlock()
        else:
            cursor.beginEditBlock()
            self._gen_block_open = True
        spans = []
        for event in written:
            start = cursor.position()
            cursor.insertText(event.text)
            spans.append(TokenSpan(start, cursor.position(), event, self._gen_count))
        # After the block ends: the document reports the block's change then, and
        # _on_contents_change would move spans it already holds by the whole insertion.
        cursor.endEditBlock()
        for span in spans:
            bisect.insort(self._spans, span, key=lambda s: s.start)
        self._last_generation = GenerationRange(self._gen_start, cursor.position(),
                                                self._gen_start)
        self.setTextCursor(QTextCursor(cursor))
        self.ensureCursorVisible()
        self._schedule_marks()

    def end_generation(self) -> None:
        cursor = self._gen_cursor
        if cursor is None:
            return
        if self._gen_block_open:
            self._close_undo_step(cursor)
        self._gen_cursor = None
        self._gen_block_open = False
        self.setReadOnly(False)
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

    def _schedule_marks(self) -> None:
        # A throttle, not a debounce: tokens stream in faster than the 30 ms interval, and
        # restarting the timer on each one would leave the colours unpainted until the end.
        if not self._repaint_marks.isActive():
            self._repaint_marks.start()

    def set_lens_marks(self, washes: list[tuple[int, int, QColor]],
                       marks: list[QTextEdit.ExtraSelection]) -> None:
        """Show the surprise lens's washes ([start, end) document positions in a colour, sorted
        by start) and marks instead of the generation marks; [] and [] end that."""
        self._lens_washes = washes
        self._wash_key = ()  # painted anew
        self._lens_marks = marks
        self.refresh_marks()
        self.viewport().update()

    def lens_washes(self) -> list[tuple[int, int, QColor]]:
        return list(self._lens_washes)

    def _lens_on(self) -> bool:
        return bool(self._lens_washes or self._lens_marks)

    def set_find_marks(self, marks: list[QTextEdit.ExtraSelection]) -> None:
        """Mark the find bar's matches on top of the other marks; [] ends that."""
        self._find_marks = marks
        self.setExtraSelections(self._shown_marks + marks)

    def refresh_marks(self) -> None:
        """Paint the generated-text wash, or in the token view each token's probability (or
        the surprise lens's marks while it shows), then the find bar's matches."""
        self._repaint_marks.stop()
        if self._lens_on():
            self._shown_marks = self._lens_marks
            self.setExtraSelections(self._lens_marks + self._find_marks)
            return
        palette = self.palette()
        selections: list[QTextEdit.ExtraSelection] = []
        if self._token_view:
            first, last = self.visible_range()
            margin = max(TOKEN_MARK_MARGIN_CHARS, (last - first) // 2)
            self._token_marked = (max(0, first - margin), last + margin)
            if palette.cacheKey() != self._token_marks_palette:
                self._token_marks, self._token_marks_palette = {}, palette.cacheKey()
            marks: dict[int, tuple[TokenSpan, QTextEdit.ExtraSelection]] = {}
            lo = bisect.bisect_right(self._spans, self._token_marked[0], key=lambda s: s.end)
            for span in self._spans[lo:]:
                if span.start >= self._token_marked[1]:
                    break
                made = self._token_marks.get(id(span))
                if made is None or made[0] is not span or not _marks(made[1], span):
                    made = (span, self._selection(span.start, span.end,
                                                  probability_colour(span.event.p, palette)))
                marks[id(span)] = made
                selections.append(made[1])
            self._token_marks = marks  # only what is marked now is kept
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
        self._shown_marks = selections
        self.setExtraSelections(selections + self._find_marks)

    def visible_range(self) -> tuple[int, int]:
        """The document positions [start, end) of the text on screen."""
        viewport = self.viewport()
        corner = QPoint(viewport.width() - 1, viewport.height() - 1)
        return (self.cursorForPosition(QPoint(0, 0)).position(),
                self.cursorForPosition(corner).position())

    def _follow_view(self) -> None:
        """Token Colours: mark the part on screen once a scroll or a resize brought unmarked
        tokens in."""
        if not self._token_view or self._lens_on():
            return
        first, last = self.visible_range()
        if first < self._token_marked[0] or last > self._token_marked[1]:
            self.refresh_marks()

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
        self._hide_timer.stop()
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

    def _on_undo_command_added(self) -> None:
        self._new_edit = True

    def _on_contents_change(self, pos: int, removed: int, added: int) -> None:
        restored = self._follow_undo_step(removed, added)
        if removed == 0 and added == 0:
            return
        self.revision += 1
        if self._lens_washes:  # as an ExtraSelection's cursors would: the edited ones go
            shift, edited_end = added - removed, pos + removed
            self._lens_washes = [(a + shift, b + shift, c) if a >= edited_end else (a, b, c)
                                 for a, b, c in self._lens_washes
                                 if b <= pos or a >= edited_end]
        if not self._ghost_edit:
            self.clear_ghost()
        if restored is not None:
            self._spans = list(restored.spans)
            self._last_generation = restored.last_generation
        else:
            self._spans = [moved for s in self._spans
                           if (moved := shift_token(s, pos, removed, added)) is not None]
            if self._last_generation is not None and self._gen_cursor is None:
                self._last_generation = shift_generation(self._last_generation, pos, removed,
                                                         added)
        if self.popup.isVisible() and self.popup.span not in self._spans:
            self.popup.hide()
        self._schedule_marks()

    def _follow_undo_step(self, removed: int, added: int) -> Marks | None:
        """Keep the marks of the undo step this change leaves; the marks of the step it comes
        to when that is Undo or Redo (None: follow the edit by moving the marks instead)."""
        new_edit, self._new_edit = self._new_edit, False
        document = self.document()
        step = document.availableUndoSteps()
        if step == self._undo_step:
            return None
        length_before = document.characterCount() - added + removed
        self._history.save(self._undo_step,
                           Marks(tuple(self._spans), self._last_generation, length_before))
        self._undo_step = step
        if new_edit:
            self._history.forget_from(step)  # Qt dropped its redo steps too
            return None
        if self._gen_cursor is not None:
            return None
        return self._history.at(step, document.characterCount())

    # The hover popup follows the pointer; one opened from the keyboard does not, so none of the
    # pointer's comings and goings may hide or replace it.

    def _keyboard_popup_open(self) -> bool:
        return self.popup.isVisible() and self.popup.from_keyboard

    def _hide_hover_popup(self) -> None:
        if not self.popup.from_keyboard:
            self.popup.hide()

    def _hide_hover_popup_soon(self) -> None:
        if self.popup.isVisible() and not self.popup.from_keyboard:
            self._hide_timer.start()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        if not self._token_view or self.generating or self._keyboard_popup_open():
            return
        span = self.token_at_point(event.position().toPoint())
        if span is None:
            self._hover_timer.stop()
            self._hover_span = None
            self._hide_hover_popup_soon()
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
        self._hide_hover_popup_soon()
        super().leaveEvent(event)  # type: ignore[arg-type]

    def _show_hovered(self) -> None:
        if self._keyboard_popup_open():
            return
        if self._hover_span is not None and self._hover_span in self._spans:
            self._hide_timer.stop()
            self.show_alternatives(self._hover_span)

    def _on_pointer_in_popup(self, inside: bool) -> None:
        if inside:
            self._hide_timer.stop()
        else:
            self._hide_hover_popup_soon()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update_margins()
        self._place_badge()
        self._follow_view()

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

    # --- ghost text ---------------------------------------------------------------------------

    @property
    def ghost(self) -> GhostText | None:
        return self._ghost

    def show_ghost(self, ghost: GhostText) -> bool:
        """Show suggestions after the cursor, if they were made for where it is and what is
        there now; returns whether they are shown."""
        cursor = self.textCursor()
        if (ghost.revision != self.revision or ghost.position != cursor.position()
                or cursor.hasSelection() or self.generating or self.isReadOnly()):
            return False
        self._set_ghost(ghost)
        return True

    def clear_ghost(self) -> None:
        if self._ghost is None:
            return
        self._ghost = None
        self.ghost_badge.hide()
        self.setAccessibleDescription(DESCRIPTION)
        self.viewport().update()
        self.ghost_changed.emit()

    def dismiss_ghost(self) -> None:
        """Esc: the suggestion goes, and none that is on its way may appear."""
        self.clear_ghost()
        self.escape_pressed.emit()

    def accept_ghost(self) -> None:
        """Tab: the whole suggestion becomes text, as one undo step."""
        ghost = self._ghost
        if ghost is None:
            return
        self.clear_ghost()
        self._insert_suggestion(ghost.text)
        self.typed.emit()

    def accept_ghost_word(self) -> None:
        """Ctrl+Right: the suggestion's next word becomes text; the rest stays grey."""
        ghost = self._ghost
        if ghost is None:
            return
        word = ghost.next_word()
        self._ghost_edit = True
        try:
            self._insert_suggestion(word)
        finally:
            self._ghost_edit = False
        self._continue_ghost(ghost, word)

    def cycle_ghost(self, step: int) -> None:
        """Alt+] / Alt+[: show the next / previous suggestion."""
        if self._ghost is not None and len(self._ghost.alternatives) > 1:
            self._set_ghost(self._ghost.cycled(step))

    def _set_ghost(self, ghost: GhostText) -> None:
        self._ghost = ghost
        self.viewport().update()
        self.ghost_badge.show_for(self, ghost)
        count = len(ghost.alternatives)
        which = f" {ghost.index + 1} of {count}" if count > 1 else ""
        spoken = f"Suggestion{which}: {ghost.text.strip()}"
        self.setAccessibleDescription(f"{DESCRIPTION} {spoken}")
        if QAccessibleAnnouncementEvent is not None and QAccessible.isActive():
            QAccessible.updateAccessibility(QAccessibleAnnouncementEvent(self, spoken))
        self.ghost_changed.emit()

    def _insert_suggestion(self, text: str) -> None:
        cursor = self.textCursor()
        cursor.beginEditBlock()
        cursor.insertText(text)
        cursor.endEditBlock()
        self._close_undo_step(cursor)
        self.setTextCursor(cursor)
        self.ensureCursorVisible()

    def _continue_ghost(self, ghost: GhostText, entered: str) -> None:
        """`entered` was just written at the ghost's start: keep what is left, or ask anew."""
        cursor = self.textCursor()
        rest = None
        if not cursor.hasSelection() and cursor.position() == ghost.position + utf16_len(entered):
            rest = ghost.after_typing(entered, cursor.position(), self.revision)
        if rest is None:
            self.clear_ghost()
            self.typed.emit()
        else:
            self._set_ghost(rest)

    def _ghost_command(self, event: QKeyEvent) -> Callable[[], None] | None:
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        none, ctrl, alt = (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ControlModifier,
                           Qt.KeyboardModifier.AltModifier)
        commands: dict[tuple[int, Qt.KeyboardModifier], Callable[[], None]] = {
            (Qt.Key.Key_Tab, none): self.accept_ghost,
            (Qt.Key.Key_Right, ctrl): self.accept_ghost_word,
            (Qt.Key.Key_BracketRight, alt): lambda: self.cycle_ghost(1),
            (Qt.Key.Key_BracketLeft, alt): lambda: self.cycle_ghost(-1),
            (Qt.Key.Key_Escape, none): self.dismiss_ghost,
        }
        return commands.get((key, mods))

    def event(self, event: QEvent) -> bool:
        # Ghost keys go to keyPressEvent even where a shortcut (Esc = Stop) or Qt's own editing
        # (Tab, Ctrl+Right) would take them first.
        if (event.type() == QEvent.Type.ShortcutOverride and self._ghost is not None
                and isinstance(event, QKeyEvent) and self._ghost_command(event) is not None):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        ghost = self._ghost
        if ghost is not None:
            command = self._ghost_command(event)
            if command is not None:
                command()
                event.accept()
                return
            if event.key() in _MODIFIER_KEYS:  # Ctrl on its way to Ctrl+Right
                super().keyPressEvent(event)
                return
            typed = _typed_text(event)
            if typed and any(a.startswith(typed) for a in ghost.alternatives):
                self._ghost_edit = True
                try:
                    super().keyPressEvent(event)
                finally:
                    self._ghost_edit = False
                self._continue_ghost(ghost, typed)
                return
            self.clear_ghost()
        elif event.key() == Qt.Key.Key_Escape:
            self.escape_pressed.emit()
        revision = self.revision
        super().keyPressEvent(event)
        if self.revision != revision:
            self.typed.emit()

    def inputMethodEvent(self, event: QInputMethodEvent) -> None:
        self.clear_ghost()
        revision = self.revision
        super().inputMethodEvent(event)
        if self.revision != revision:
            self.typed.emit()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.clear_ghost()
        super().mousePressEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        # Going to a menu keeps it (Generate ▸ Suggestions ▸ Accept); going elsewhere does not.
        if event.reason() not in (Qt.FocusReason.PopupFocusReason,
                                  Qt.FocusReason.MenuBarFocusReason,
                                  Qt.FocusReason.ActiveWindowFocusReason):
            self.clear_ghost()
        super().focusOutEvent(event)

    def _on_cursor_moved(self) -> None:
        ghost = self._ghost
        if ghost is None or self._ghost_edit:
            return
        cursor = self.textCursor()
        if cursor.position() != ghost.position or cursor.hasSelection():
            self.clear_ghost()

    def paintEvent(self, event: QPaintEvent) -> None:
        if self._lens_washes:
            painter = QPainter(self.viewport())
            exposed = QRectF(event.rect())
            for rect, colour in self._lens_wash_rects():
                if rect.intersects(exposed):
                    painter.fillRect(rect, colour)
            painter.end()
        super().paintEvent(event)
        if self._ghost is not None:
            painter = QPainter(self.viewport())
            paint_ghost(self, self._ghost, painter)
            painter.end()

    def _lens_wash_rects(self) -> list[tuple[QRectF, QColor]]:
        """The lens's washes on screen as viewport rectangles, a line of text each; made again
        only when the washes, the text, the scroll position or the width changed."""
        offset = self.contentOffset()
        block = self.firstVisibleBlock()
        # New washes reset the key (set_lens_marks); an edit moves them and counts a revision.
        key = (self.revision, block.blockNumber(), offset.x(), offset.y(),
               self.viewport().width(), self.font().toString())
        if key == self._wash_key:
            return self._wash_rects
        rects: list[tuple[QRectF, QColor]] = []
        height = self.viewport().height()
        while block.isValid():
            geometry = self.blockBoundingGeometry(block).translated(offset)
            if geometry.top() > height:
                break
            if block.isVisible():
                self._block_wash_rects(block, geometry.topLeft(), rects)
            block = block.next()
        self._wash_rects, self._wash_key = rects, key
        return rects

    def _block_wash_rects(self, block: QTextBlock, origin: QPointF,
                          rects: list[tuple[QRectF, QColor]]) -> None:
        """The rectangles of the washes within `block` (its layout drawn at `origin`)."""
        layout = block.layout()
        base = block.position()
        end = base + block.length() - 1
        at = layout.position() + origin
        index = max(0, bisect.bisect_right(self._lens_washes, base, key=lambda w: w[0]) - 1)
        for start, stop, colour in self._lens_washes[index:]:
            if start >= end:
                break
            left, right = max(start, base) - base, min(stop, end) - base
            while left < right:  # a line at a time: a wash may wrap
                line = layout.lineForTextPosition(left)
                if not line.isValid():
                    break
                line_end = min(right, line.textStart() + line.textLength())
                # PySide gives (x, position) for the C++ out-parameter; its stubs say object
                x1 = cast(tuple[float, int], line.cursorToX(left))[0]
                x2 = cast(tuple[float, int], line.cursorToX(line_end))[0]
                rects.append((QRectF(at.x() + x1, at.y() + line.y(), x2 - x1, line.height()),
                              colour))
                if line_end <= left:
                    break
                left = line_end

    def _place_badge(self, *_: object) -> None:
        if self._ghost is not None and self.ghost_badge.isVisible():
            self.ghost_badge.place(self, self._ghost)


def _typed_text(event: QKeyEvent) -> str:
    """The text a key press writes, as a suggestion would spell it; "" for commands."""
    mods = event.modifiers() & ~(Qt.KeyboardModifier.KeypadModifier
                                 | Qt.KeyboardModifier.ShiftModifier)
    if mods != Qt.KeyboardModifier.NoModifier:
        return ""
    if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
        return "\n" if not event.modifiers() & Qt.KeyboardModifier.ShiftModifier else ""
    text = event.text()
    return text if text.isprintable() else ""
