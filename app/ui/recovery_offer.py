"""The strip above the editor that offers back text a session left when it ended without
closing (a crash, a power cut, a killed process).

A strip rather than a dialog: the writer can look at the window, read or type, and decide when
ready. Nothing happens to the current text or to the autosave until they choose: Restore puts
the text in this window, unsaved; Open Beside puts it in a second window and leaves this one
as it is; Discard deletes it after asking. Several autosaves are offered one after another,
newest first. Ignored, the autosave stays on disk and is offered again at the next start.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.document_session import DocumentSession
from app.ui.documents import Recovery


class RecoveryOffer(QFrame):
    open_beside = Signal(object)  # a Recovery to open in a window of its own

    def __init__(self, session: DocumentSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._waiting: list[Recovery] = []
        self.setObjectName("recovery-offer")
        self.setAccessibleName("Unsaved text to recover")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#recovery-offer { border-radius: 6px; }")
        self.setBackgroundRole(QPalette.ColorRole.AlternateBase)
        self.setAutoFillBackground(True)
        self.title = QLabel(self)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setStyleSheet("font-weight: 600; font-size: 115%;")
        self.body = QLabel(self)
        self.body.setTextFormat(Qt.TextFormat.PlainText)
        self.body.setWordWrap(True)
        self.restore_button = self._button(
            "Restore", "Put this text in the window as an unsaved document", self._restore)
        self.beside_button = self._button(
            "Open Beside", "Open this text in a second window; this window's text stays",
            self._open_beside)
        self.discard_button = self._button(
            "Discard…", "Delete this text for good (asks first)", self._discard)
        buttons = QHBoxLayout()
        for button in (self.restore_button, self.beside_button, self.discard_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.addWidget(self.title)
        layout.addWidget(self.body)
        layout.addLayout(buttons)
        self.hide()

    def _button(self, text: str, tip: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(text, self)
        button.setToolTip(tip)
        button.setAutoDefault(False)
        button.clicked.connect(slot)
        return button

    def offer(self, recoveries: list[Recovery]) -> None:
        """Show the first of `recoveries` (newest first, as Autosave.recoverable gives them)."""
        self._waiting = list(recoveries)
        self._show_first()

    def current(self) -> Recovery | None:
        return self._waiting[0] if self._waiting else None

    def _show_first(self) -> None:
        recovery = self.current()
        if recovery is None:
            self.hide()
            return
        self.title.setText(f"Unsaved text from {recovery.name}")
        self.title.setToolTip(str(recovery.document_path or ""))
        more = len(self._waiting) - 1
        after = f" {more} more after this one." if more else ""
        self.body.setText(f"Ghostpen closed without saving it: {recovery.amount()}, autosaved "
                          f"{recovery.when()}. Restore it here, open it beside this window, "
                          f"or discard it.{after}")
        self.setAccessibleDescription(f"{self.title.text()}. {self.body.text()}")
        self.show()

    def _next(self) -> None:
        self._waiting.pop(0)
        self._show_first()

    def _restore(self) -> None:
        recovery = self.current()
        if recovery is not None and self.session.restore(recovery):
            self._next()

    def _open_beside(self) -> None:
        recovery = self.current()
        if recovery is not None:
            self._next()
            self.open_beside.emit(recovery)

    def _discard(self) -> None:
        recovery = self.current()
        if recovery is None:
            return
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self, "Discard Unsaved Text",
            f"Delete the {recovery.amount()} of unsaved text from {recovery.name}, autosaved "
            f"{recovery.when()}? It cannot be brought back.",
            buttons.Discard | buttons.Cancel, buttons.Cancel)
        if answer == buttons.Discard:
            self.session.discard_recovery(recovery)
            self._next()
