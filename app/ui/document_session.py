"""The document in the editor: its file, New/Open/Save/Save As, the unsaved-changes question,
the question before a save replaces what another program wrote to the file, and the autosave
that recovers text after a crash. Dialogs open over `window`."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from app.engine.errors import GhostpenError
from app.paths import recovery_dir
from app.ui.documents import (
    FILE_FILTER,
    PLAIN,
    Autosave,
    Recovery,
    TextFormat,
    read_document,
    write_text_atomic,
)
from app.ui.editor import Editor
from app.ui.file_stamp import FileStamp
from app.ui.settings import Settings


class DocumentSession(QObject):
    path_changed = Signal()  # the file name to show changed
    message = Signal(str)  # one line for the status bar
    replacing = Signal()  # the text is about to be replaced wholesale: stop writing into it
    restored = Signal(object)  # the Recovery whose text is now the document
    discarded = Signal(object)  # a Recovery the person chose to delete

    def __init__(self, editor: Editor, settings: Settings, window: QWidget) -> None:
        super().__init__(window)
        self.editor = editor
        self.settings = settings
        self.window = window
        self.path: Path | None = None
        # The file as this window last read or wrote it (None: unknown, as after a recovery);
        # and the change on disk already reported, so that it is said once.
        self._stamp: FileStamp | None = None
        self._reported: FileStamp | None = None
        self._format: TextFormat = PLAIN  # the line endings and mark the file was opened with
        self.autosave = Autosave(recovery_dir())
        self._dirty = False  # changed since the last autosave
        editor.document().contentsChanged.connect(self._mark_dirty)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.autosave_now)
        self._timer.start(max(100, int(float(settings.get("autosave_interval_s")) * 1000)))
        window.installEventFilter(self)  # coming back to the window: was the file changed?

    @property
    def name(self) -> str:
        return self.path.name if self.path else "Untitled"

    def is_modified(self) -> bool:
        return self.editor.document().isModified()

    # --- commands -----------------------------------------------------------------------------

    def new(self) -> bool:
        if not self.maybe_save():
            return False
        self._load("", None)
        return True

    def open(self, path: Path | None = None) -> bool:
        if not self.maybe_save():
            return False
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self.window, "Open", self._start_dir(),
                                                    FILE_FILTER)
            if not chosen:
                return False
            path = Path(chosen)
        try:
            text, text_format, stamp = read_document(path)
        except GhostpenError as error:
            self.message.emit(str(error))
            QMessageBox.warning(self.window, "Open", str(error))
            return False
        self._load(text, path)
        self._stamp, self._format = stamp, text_format
        self._remember(path)
        self.message.emit(f"Opened {path.name}.")
        return True

    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        if not self._may_replace(self.path):
            return False
        return self._write(self.path)

    def save_as(self) -> bool:
        suggested = str(self.path or Path(self._start_dir()) / "Untitled.txt")
        chosen, chosen_filter = QFileDialog.getSaveFileName(self.window, "Save As", suggested,
                                                            FILE_FILTER)
        if not chosen:
            return False
        path = Path(chosen)
        if not path.suffix:
            path = path.with_suffix(".md" if chosen_filter == "Markdown (*.md)" else ".txt")
        # The file dialog asked before replacing another file; the document's own file may
        # have been changed meanwhile all the same.
        if path == self.path and not self._may_replace(path):
            return False
        return self._write(path)

    def maybe_save(self) -> bool:
        """Ask before unsaved changes are lost; False means the person cancelled."""
        if not self.is_modified():
            return True
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self.window, "Unsaved Changes", f"Save the changes to {self.name}?",
            buttons.Save | buttons.Discard | buttons.Cancel, buttons.Save)
        if answer == buttons.Save:
            return self.save()
        return answer == buttons.Discard

    def close(self, keep_unsaved: bool = False) -> None:
        """End the session. By default nothing is left to recover (the person saved or chose
        to discard); with `keep_unsaved`, unsaved text stays in the autosave for next time."""
        self._timer.stop()
        if keep_unsaved and self.is_modified():
            self._dirty = True
            self.autosave_now()
            self.autosave.lock.unlock()
        else:
            self.autosave.close()

    # --- autosave and recovery ----------------------------------------------------------------

    def autosave_now(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if not self.is_modified():
            self.autosave.clear()
            return
        try:
            self.autosave.save(self.editor.toPlainText(), self.path)
        except GhostpenError as error:
            self.message.emit(f"Autosave failed: {error}")

    def recoverable(self) -> list[Recovery]:
        """Text that sessions which ended without closing left behind, newest first."""
        return self.autosave.recoverable()

    def restore(self, recovery: Recovery) -> bool:
        """Make `recovery`'s text this window's document, unsaved and named as it was. The
        current text is asked about first, as Open would; False when the person cancels. The
        old autosave goes only once the text is safe in this session's own."""
        if not self.maybe_save():
            return False
        self.replacing.emit()
        self.editor.set_text(recovery.text)
        self.path = recovery.document_path
        self._stamp = None  # what the file held when the text was autosaved is not known
        self._format = TextFormat.of_file(self.path) if self.path else PLAIN
        self.editor.document().setModified(True)
        self._dirty = False
        self.path_changed.emit()
        try:
            self.autosave.save(recovery.text, self.path)
        except GhostpenError as error:
            self._dirty = True  # the timer tries again; the old autosave stays meanwhile
            self.message.emit(f"Restored {recovery.describe()}. Autosave failed: {error}")
            self.restored.emit(recovery)
            return True
        self.autosave.discard(recovery)
        self.restored.emit(recovery)
        self.message.emit(f"Restored {recovery.describe()}. Save it to keep it.")
        return True

    def discard_recovery(self, recovery: Recovery) -> None:
        """Delete `recovery` for good: the person chose to."""
        self.autosave.discard(recovery)
        self.discarded.emit(recovery)
        self.message.emit(f"Discarded the unsaved text of {recovery.name}.")

    # --- the file changed by another program ----------------------------------------------------

    def _may_replace(self, path: Path) -> bool:
        """Ask before a save replaces text another program wrote to the file since this window
        read or wrote it; True when nothing changed or the person chose to replace it."""
        if self._stamp is None or self._stamp.changed_since(path) is None:
            return True
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.warning(
            self.window, "Changed on Disk",
            f"{path.name} was changed by another program since you opened or last saved it. "
            f"Saving replaces those changes with your text. Cancel keeps both: then Save As "
            f"saves yours under another name.", buttons.Save | buttons.Cancel, buttons.Cancel)
        return answer == buttons.Save

    def check_disk(self) -> None:
        """Say once, in the status bar, that another program changed the document's file."""
        if self.path is None or self._stamp is None:
            return
        now = self._stamp.changed_since(self.path)
        if now is None or now == self._reported:
            return
        self._reported = now
        if self.is_modified():
            self.message.emit(f"{self.path.name} was changed by another program; Save will ask "
                              f"before replacing those changes.")
        else:
            self.message.emit(f"{self.path.name} was changed by another program; open it again "
                              f"to see the new text.")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window and event.type() == QEvent.Type.WindowActivate:
            self.check_disk()
        return False

    # --- helpers ------------------------------------------------------------------------------

    def _write(self, path: Path) -> bool:
        try:
            write_text_atomic(path, self.editor.toPlainText(), text_format=self._format)
        except GhostpenError as error:
            self.message.emit(str(error))
            QMessageBox.warning(self.window, "Save", str(error))
            return False
        self.path = path
        self._stamp = FileStamp.of(path)
        self.editor.document().setModified(False)
        self.autosave.clear()
        self._dirty = False
        self._remember(path)
        self.path_changed.emit()
        self.message.emit(f"Saved {path.name}.")
        return True

    def _load(self, text: str, path: Path | None) -> None:
        self.replacing.emit()
        self.editor.set_text(text)
        self.path = path
        self._stamp, self._format = None, PLAIN  # open() says what it read
        self.editor.document().setModified(False)
        self.autosave.clear()
        self._dirty = False
        self.path_changed.emit()

    def _mark_dirty(self) -> None:
        self._dirty = True

    def _remember(self, path: Path) -> None:
        self.settings.add_recent_file(path)
        self.settings.set("last_dir", str(path.parent))

    def _start_dir(self) -> str:
        return self.settings.get("last_dir") or str(Path.home())
