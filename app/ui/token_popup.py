"""The small window over a generated token: its top alternatives, each a button that swaps it in.

Opened by hovering a token in the token view (a tooltip-like window that never takes focus
and goes when the pointer leaves) or from the keyboard (Ctrl+Shift+A; then a focus-taking popup
that stays until Esc, a choice, or a click elsewhere). Each row replaces the token; its ⟳ button
also regenerates the rest of that generation from there. Keys: Up/Down move between rows,
Right/Left between a row and its ⟳, Enter or Space chooses, Ctrl+R chooses the row's token and
regenerates, Tab visits every button.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPoint, QRect, Qt, Signal
from PySide6.QtGui import QColor, QEnterEvent, QKeyEvent, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.engine.events import Alternative, TokenEvent
from app.ui.spans import TokenSpan
from app.ui.token_text import percent, visible_token

MAX_ROWS = 10


class _AlternativeButton(QPushButton):
    """A flat row whose background shows the alternative's probability as a bar."""

    def __init__(self, alternative: Alternative, chosen: bool, parent: QWidget) -> None:
        label = f"{visible_token(alternative.text)}    {percent(alternative.p)}"
        super().__init__(("✓ " if chosen else "   ") + label, parent)
        self.alternative = alternative
        self.setFlat(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setStyleSheet("text-align: left; padding: 2px 8px;")
        spoken = alternative.text.strip() or visible_token(alternative.text)
        self.setAccessibleName(f"{spoken}, {percent(alternative.p)}")
        self.setAccessibleDescription("Replace the token with this one")
        self.setToolTip(f"Use {visible_token(alternative.text)!r} instead")

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        bar = QColor(self.palette().color(QPalette.ColorRole.Highlight))
        bar.setAlpha(55)
        width = int(self.width() * min(1.0, max(0.0, self.alternative.p)))
        painter.fillRect(QRect(0, 2, width, self.height() - 4), bar)
        painter.end()
        super().paintEvent(event)


class TokenPopup(QFrame):
    chosen = Signal(object, object, bool)  # TokenSpan, Alternative, regenerate after
    pointer_inside = Signal(bool)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent, Qt.WindowType.ToolTip)
        self.setObjectName("token-popup")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Token alternatives")
        self.setAccessibleDescription(
            "The most likely tokens at this place; choose one to replace the generated token"
        )
        self.span: TokenSpan | None = None
        self.from_keyboard = False  # a keyboard popup ignores where the pointer is
        self._title = QLabel(self)
        self._title.setTextFormat(Qt.TextFormat.PlainText)
        self._grid = QGridLayout()
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(2)
        self._grid.setVerticalSpacing(0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addWidget(self._title)
        layout.addLayout(self._grid)
        self.buttons: list[_AlternativeButton] = []
        self.regenerate_buttons: list[QToolButton] = []

    def show_for(self, span: TokenSpan, at: QPoint, keyboard: bool = False) -> None:
        self.span = span
        self.from_keyboard = keyboard
        event = span.event
        self._title.setText(f"“{visible_token(event.text)}”  had {percent(event.p)}")
        self._fill(event)
        flags = Qt.WindowType.Popup if keyboard else Qt.WindowType.ToolTip
        if self.windowFlags() & Qt.WindowType.WindowType_Mask != flags:
            self.setWindowFlags(flags)
        self.adjustSize()
        self.move(at)
        self.show()
        if keyboard and self.buttons:
            self.buttons[0].setFocus()

    def _fill(self, event: TokenEvent) -> None:
        while self._grid.count():
            item = self._grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self.buttons = []
        self.regenerate_buttons = []
        alternatives = event.alternatives[:MAX_ROWS]
        if not alternatives:
            self._grid.addWidget(QLabel("No alternatives were recorded for this token.", self))
            return
        for row, alternative in enumerate(alternatives):
            button = _AlternativeButton(alternative, alternative.token_id == event.token_id, self)
            button.clicked.connect(lambda _=False, a=alternative: self._choose(a, False))
            again = QToolButton(self)
            again.setText("⟳")
            again.setAutoRaise(True)
            again.setToolTip("Use this token and regenerate the rest from here (Ctrl+R)")
            again.setAccessibleName(f"Use {alternative.text.strip() or 'this'} and regenerate")
            again.clicked.connect(lambda _=False, a=alternative: self._choose(a, True))
            button.installEventFilter(self)
            again.installEventFilter(self)
            self._grid.addWidget(button, row, 0)
            self._grid.addWidget(again, row, 1)
            self.buttons.append(button)
            self.regenerate_buttons.append(again)

    def _choose(self, alternative: Alternative, regenerate: bool) -> None:
        span = self.span
        self.hide()
        if span is not None:
            self.chosen.emit(span, alternative, regenerate)

    def _focused_row(self) -> int | None:
        """The row whose button or ⟳ has the focus."""
        focused = self.focusWidget()
        for row, (button, again) in enumerate(zip(self.buttons, self.regenerate_buttons,
                                                  strict=True)):
            if focused is button or focused is again:
                return row
        return None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # A button moves the focus to the next button of any kind on an arrow key before its
        # parent sees the key, so the keys of the rows are taken here, ahead of the buttons.
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            return self._row_key(event)
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.hide()
            return
        super().keyPressEvent(event)

    def _row_key(self, event: QKeyEvent) -> bool:
        """Act on a key pressed on a row or its ⟳; whether it was one of the rows' keys."""
        key = event.key()
        row = self._focused_row()
        if row is None:
            return False
        if key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
            step = 1 if key == Qt.Key.Key_Down else -1
            self.buttons[(row + step) % len(self.buttons)].setFocus(
                Qt.FocusReason.TabFocusReason)
        elif key == Qt.Key.Key_Right:
            self.regenerate_buttons[row].setFocus(Qt.FocusReason.TabFocusReason)
        elif key == Qt.Key.Key_Left:
            self.buttons[row].setFocus(Qt.FocusReason.TabFocusReason)
        elif key == Qt.Key.Key_R and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._choose(self.buttons[row].alternative, True)
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            on_again = self.focusWidget() is self.regenerate_buttons[row]
            self._choose(self.buttons[row].alternative, on_again)
        else:
            return False
        return True

    def enterEvent(self, event: QEnterEvent) -> None:
        self.pointer_inside.emit(True)
        super().enterEvent(event)

    def leaveEvent(self, event: object) -> None:
        self.pointer_inside.emit(False)
        super().leaveEvent(event)  # type: ignore[arg-type]
