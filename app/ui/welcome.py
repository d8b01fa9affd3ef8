"""The first run, with no model installed: exactly two offers, Download GPT-2 (124M) and
Add from folder…, with the Models dialog's machinery (a background job, a progress bar with
Cancel, errors in one line). When a model is installed, `model_chosen(name)` says which.

WelcomeWidget can sit inside the main window (its empty state); WelcomeDialog wraps it:
    welcome = WelcomeDialog(window, providers=available_providers())
    welcome.model_chosen.connect(window.switch_model)
    welcome.open()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app import hub_download, model_store
from app.model_store import InstalledModel
from app.paths import models_dir
from app.ui.model_dialog import error_label
from app.ui.model_tasks import ModelJobs, ProgressPanel
from app.ui.show_folder import folder_link, show_folder

WELCOME_MODEL = "gpt2"  # GPT-2 small, 124M


class WelcomeWidget(QWidget):
    model_chosen = Signal(str)  # the installed model's folder name

    def __init__(self, parent: QWidget | None = None, *, providers: Sequence[str] | None = None,
                 root: Path | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Welcome")
        entry = hub_download.catalogue_entry(WELCOME_MODEL)
        assert entry is not None
        self.entry = entry
        heading = QLabel("<h2>Welcome to Ghostpen</h2>", self)
        heading.setAccessibleName("Welcome to Ghostpen")
        intro = QLabel("Ghostpen writes with a GPT-2 model that runs on this computer. "
                       "Get one to begin:", self)
        intro.setWordWrap(True)
        self.progress = ProgressPanel(self)
        self.jobs = ModelJobs(self.progress, self, providers=providers, root=root)
        size = model_store.format_bytes(entry.download_bytes)
        self.download_button = QPushButton(f"Download {entry.label}", self)
        self.download_button.setAccessibleName(f"Download {entry.label}")
        self.download_button.setAccessibleDescription(
            f"About {size} from the Hugging Face Hub, converted to {self.jobs.precision()} for "
            "this computer")
        self.download_button.setToolTip(self.download_button.accessibleDescription())
        self.download_button.clicked.connect(self.start_download)
        self.add_button = QPushButton("Add from Folder…", self)
        self.add_button.setAccessibleName("Add from Folder")
        self.add_button.setAccessibleDescription(
            "Use a model you already have: a Hugging Face GPT-2 checkpoint folder (converted) "
            "or an ONNX model folder (copied)")
        self.add_button.setToolTip(self.add_button.accessibleDescription())
        self.add_button.clicked.connect(self.ask_add_folder)
        # For whoever converted a model themselves: where it goes (the notice the window
        # showed for this before sat above these offers and repeated them).
        folder = root or models_dir()
        self.folder_hint = QLabel(
            "Or put a model folder you converted yourself (with <i>model.onnx</i> inside, as "
            f"<code>python -m models.export</code> makes it) in {folder_link(folder)} and press "
            "<b>F5</b>.",
            self)
        self.folder_hint.setWordWrap(True)
        self.folder_hint.linkActivated.connect(lambda _: show_folder(folder))
        self.folder_hint.setAccessibleName("Where models are kept")
        self.error = error_label(self)
        self.status = QLabel(self)
        self.status.setWordWrap(True)  # the quality gate's notice is a long line
        self.status.setAccessibleName("Status")
        self.jobs.installed.connect(self._on_installed)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.cancelled.connect(lambda: self.status.setText(
            "Cancelled. The download continues where it stopped next time."))
        self.jobs.busy_changed.connect(self._on_busy_changed)

        layout = QVBoxLayout(self)
        offers = QHBoxLayout()
        offers.addWidget(self.download_button)
        offers.addWidget(self.add_button)
        offers.addStretch(1)  # buttons as wide as their words, not the window
        layout.addWidget(heading)
        layout.addWidget(intro)
        layout.addLayout(offers)
        layout.addWidget(self.folder_hint)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.error)
        layout.addStretch(1)

    @Slot()
    def start_download(self) -> bool:
        self._clear()
        return self.jobs.download(self.entry.repo_id)

    @Slot()
    def ask_add_folder(self) -> None:
        folder = self.jobs.ask_for_folder(self)
        if folder is not None:
            self.start_add_folder(folder)

    def start_add_folder(self, folder: Path) -> bool:
        self._clear()
        return self.jobs.add_folder(folder)

    def _clear(self) -> None:
        self.error.hide()
        self.status.clear()

    def _on_installed(self, model: InstalledModel) -> None:
        self.status.setText(model_store.installed_line(model))
        self.model_chosen.emit(model.name)

    def _on_failed(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()

    def _on_busy_changed(self, busy: bool) -> None:
        self.download_button.setEnabled(not busy)
        self.add_button.setEnabled(not busy)


class WelcomeDialog(QDialog):
    """The welcome as its own window; accepted once a model is installed."""

    model_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, providers: Sequence[str] | None = None,
                 root: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to Ghostpen")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.welcome = WelcomeWidget(self, providers=providers, root=root)
        self.welcome.model_chosen.connect(self._on_chosen)
        self.welcome.jobs.busy_changed.connect(self._on_busy_changed)
        self._close_when_idle = False
        layout = QVBoxLayout(self)
        layout.addWidget(self.welcome)
        self.resize(460, 280)

    def _on_chosen(self, name: str) -> None:
        self.model_chosen.emit(name)
        self.accept()

    def _on_busy_changed(self, busy: bool) -> None:
        if not busy and self._close_when_idle:
            self._close_when_idle = False
            self.done(QDialog.DialogCode.Rejected)

    def reject(self) -> None:
        if self.welcome.jobs.busy:  # stop the job first, then close
            self._close_when_idle = True
            self.welcome.jobs.cancel()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.welcome.jobs.busy:
            event.ignore()
            self.reject()
            return
        super().closeEvent(event)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        return self.welcome.jobs.shutdown(timeout_ms)
