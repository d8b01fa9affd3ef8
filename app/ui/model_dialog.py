"""Models ▸ Manage Models…: the installed models, and Download, Add from folder, Remove, Use.

Wiring (the window's side):
    dialog = ModelDialog(window, current=settings["last_model"], providers=available_providers())
    dialog.model_chosen.connect(window.switch_model)   # str: a folder name under models_dir()
    dialog.models_changed.connect(...)                 # the installed list changed
    dialog.open()
Downloads and conversions run on a worker thread (app.ui.model_tasks); closing the dialog
while one runs cancels it and closes when it has stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import hub_download, model_store
from app.engine.errors import GhostpenError
from app.hub_download import GPT2_FAMILY, HubModel
from app.model_store import InstalledModel
from app.paths import models_dir
from app.ui.model_tasks import ModelJobs, ProgressPanel

# "Quality vs fp32": what the converter's quality gate measured (app.model_store.format_quality)
COLUMNS = ("Name", "Parameters", "Precision", "Quality vs fp32", "Size", "Kind")
RIGHT_ALIGNED = (1, 4)  # the numbers: parameters, size
PRECISION_CHOICES = ("int8", "fp16", "fp32", "int4")
PRECISION_HINTS = {
    "int8": "int8: smallest and fastest on a CPU",
    "fp16": "fp16: best on a GPU (CUDA, DirectML)",
    "fp32": "fp32: full precision, twice the size of fp16",
    "int4": "int4: smallest, a little less accurate",
}


def error_label(parent: QWidget) -> QLabel:
    label = QLabel(parent)
    label.setObjectName("model-error")
    label.setAccessibleName("Error")
    label.setWordWrap(True)
    label.setStyleSheet("color: #c62828;")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


class DownloadChooser(QDialog):
    """Which GPT-2 to download, and the precision to convert it to."""

    def __init__(self, parent: QWidget | None, precision: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Download a Model")
        self.models = QListWidget(self)
        self.models.setAccessibleName("Models to download")
        self.models.setAccessibleDescription("The GPT-2 family on the Hugging Face Hub")
        for entry in GPT2_FAMILY:
            item = QListWidgetItem(f"{entry.label} — about "
                                   f"{model_store.format_bytes(entry.download_bytes)}")
            item.setData(Qt.ItemDataRole.UserRole, entry.repo_id)
            item.setToolTip(f"{entry.repo_id} on the Hugging Face Hub")
            self.models.addItem(item)
        self.models.setCurrentRow(next(i for i, m in enumerate(GPT2_FAMILY) if m.key == "gpt2"))
        self.models.itemDoubleClicked.connect(lambda _item: self.accept())
        self.precision = QComboBox(self)
        self.precision.setAccessibleName("Precision")
        self.precision.setAccessibleDescription("What the model is converted to after the "
                                                "download")
        for choice in PRECISION_CHOICES:
            self.precision.addItem(PRECISION_HINTS[choice], choice)
        self.precision.setCurrentIndex(max(0, self.precision.findData(precision)))
        form = QFormLayout()
        form.addRow("&Precision:", self.precision)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.download_button = buttons.addButton("&Download",
                                                 QDialogButtonBox.ButtonRole.AcceptRole)
        self.download_button.setAccessibleName("Download")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Downloaded from the Hugging Face Hub, then converted for this "
                                "computer. Nothing else is sent or received.", self))
        layout.addWidget(self.models)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def chosen(self) -> tuple[HubModel, str]:
        repo_id = self.models.currentItem().data(Qt.ItemDataRole.UserRole)
        entry = hub_download.catalogue_entry(repo_id)
        assert entry is not None
        return entry, str(self.precision.currentData())


class ModelDialog(QDialog):
    """The installed models in a table, and the ways to change them."""

    model_chosen = Signal(str)  # Use: the folder name of the model to switch to
    models_changed = Signal()  # a model was added or removed
    model_installed = Signal(str)  # a download or an added folder finished
    model_removed = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, current: str = "",
                 providers: Sequence[str] | None = None, root: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("model-dialog")
        self.setAccessibleName("Models")
        self.resize(720, 420)
        self.current = current
        self._root = root
        self._close_when_idle = False
        self._models: list[InstalledModel] = []
        self.chooser: DownloadChooser | None = None

        where = QLabel(f"Models are kept in {self.root()}", self)
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        where.setAccessibleName("Models folder")
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setAccessibleName("Installed models")
        self.table.setAccessibleDescription("Name, parameters, precision, how closely it "
                                            "follows full precision (fp32), size on disk and "
                                            "kind of every installed model")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _item: self.use_selected())
        self.empty = QLabel("No model is installed yet: download one or add a folder.", self)
        self.empty.setAccessibleName("No models")
        self.status = QLabel(self)
        self.status.setAccessibleName("Status")
        self.status.setWordWrap(True)  # a quality gate's notice is a long line
        self.error = error_label(self)
        self.progress = ProgressPanel(self)
        self.jobs = ModelJobs(self.progress, self, providers=providers, root=root)
        self.jobs.installed.connect(self._on_installed)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.cancelled.connect(self._on_cancelled)
        self.jobs.busy_changed.connect(self._on_busy_changed)

        self.download_button = self._button("&Download…", "Download a GPT-2 model from the "
                                            "Hugging Face Hub and convert it", self.ask_download)
        self.add_button = self._button("&Add from Folder…", "Add a Hugging Face checkpoint "
                                       "or a GPT-2 ONNX export holding its weights (both "
                                       "converted), or another ONNX model folder (copied)",
                                       self.ask_add_folder)
        self.remove_button = self._button("&Remove", "Delete the selected model's files",
                                          self.remove_selected)
        self.use_button = self._button("&Use", "Write with the selected model", self.use_selected)
        self.close_button = self._button("&Close", "Close this window", self.close)
        self.use_button.setDefault(True)
        buttons = QHBoxLayout()
        for button in (self.download_button, self.add_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.addWidget(where)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.refresh()

    def _button(self, text: str, description: str, slot: object) -> QPushButton:
        button = QPushButton(text, self)
        button.setAutoDefault(False)
        button.setAccessibleName(text.replace("&", "").rstrip("…"))
        button.setAccessibleDescription(description)
        button.setToolTip(description)
        button.clicked.connect(slot)
        return button

    # --- the list ------------------------------------------------------------------------

    def root(self) -> Path:
        return self._root if self._root is not None else models_dir()

    def models(self) -> list[InstalledModel]:
        return list(self._models)

    def refresh(self, select: str | None = None) -> None:
        select = select if select is not None else self.selected_name()
        self._models = model_store.list_models(self._root)
        self.table.setRowCount(len(self._models))
        for row, model in enumerate(self._models):
            if model.problem:
                kind = "Damaged"
            elif model.foreign:
                kind = "ONNX export (slower)"
            else:
                kind = "Ghostpen"
            if model.name == self.current:
                kind += " · in use"
            cells = (model.name, model_store.format_params(model.n_params),
                     model.precision or "—", model_store.format_quality(model),
                     model_store.format_bytes(model.size_bytes), kind)
            origin = f"From {model.source}" if model.source else ""
            tip = model.problem or "\n".join(filter(None, (
                str(model.path), origin, model_store.quality_details(model))))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, model.name)
                item.setToolTip(tip)
                if column in RIGHT_ALIGNED:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                if model.name == self.current:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                if model.problem:
                    item.setForeground(Qt.GlobalColor.gray)
                self.table.setItem(row, column, item)
        self.empty.setVisible(not self._models)
        names = [m.name for m in self._models]
        target = select if select in names else (self.current if self.current in names else None)
        if target is not None:
            self.table.selectRow(names.index(target))
        elif names:
            self.table.selectRow(0)
        self._update_buttons()

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return str(item.data(Qt.ItemDataRole.UserRole)) if item else None

    def selected_model(self) -> InstalledModel | None:
        name = self.selected_name()
        return next((m for m in self._models if m.name == name), None)

    def set_current(self, name: str) -> None:
        """Mark the model the window now writes with."""
        self.current = name
        self.refresh()

    def _update_buttons(self) -> None:
        model = self.selected_model()
        busy = self.jobs.busy
        self.download_button.setEnabled(not busy)
        self.add_button.setEnabled(not busy)
        self.remove_button.setEnabled(model is not None and not busy)
        self.use_button.setEnabled(model is not None and model.usable)

    def _show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))

    # --- actions -------------------------------------------------------------------------

    @Slot()
    def ask_download(self) -> None:
        """Download…: choose a GPT-2 and a precision (a window-modal chooser, not blocking)."""
        if self.chooser is not None:  # one left from a Cancel
            self.chooser.deleteLater()
        self.chooser = DownloadChooser(self, self.jobs.precision())
        self.chooser.accepted.connect(self._on_chooser_accepted)
        self.chooser.open()

    def _on_chooser_accepted(self) -> None:
        if self.chooser is None:
            return
        entry, precision = self.chooser.chosen()
        self.chooser.deleteLater()
        self.chooser = None
        self.start_download(entry.repo_id, precision)

    def start_download(self, repo_id: str, precision: str | None = None) -> bool:
        """Download and convert `repo_id` in the background; False while another job runs."""
        self._show_error("")
        self.status.clear()
        return self.jobs.download(repo_id, precision)

    @Slot()
    def ask_add_folder(self) -> None:
        folder = self.jobs.ask_for_folder(self)
        if folder is not None:
            self.start_add_folder(folder)

    def start_add_folder(self, folder: Path, precision: str | None = None) -> bool:
        self._show_error("")
        self.status.clear()
        return self.jobs.add_folder(folder, precision)

    @Slot()
    def remove_selected(self) -> None:
        model = self.selected_model()
        if model is None or self.jobs.busy:
            return
        note = " It is in use and stays loaded until you choose another." \
            if model.name == self.current else ""
        answer = QMessageBox.question(
            self, "Remove Model",
            f"Remove {model.name} ({model_store.format_bytes(model.size_bytes)})? Its files are "
            f"deleted.{note}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            model_store.remove(model.name, self._root)
        except GhostpenError as error:
            self._show_error(str(error))
            return
        self._show_error("")
        self.status.setText(f"Removed {model.name}.")
        self.refresh()
        self.model_removed.emit(model.name)
        self.models_changed.emit()

    @Slot()
    def use_selected(self) -> None:
        model = self.selected_model()
        if model is None or not model.usable:
            return
        self.set_current(model.name)
        self.model_chosen.emit(model.name)
        self.accept()

    # --- job results (GUI thread) ----------------------------------------------------------

    def _on_installed(self, model: InstalledModel) -> None:
        self.status.setText(model_store.installed_line(model))
        self.refresh(select=model.name)
        self.model_installed.emit(model.name)
        self.models_changed.emit()

    def _on_failed(self, message: str) -> None:
        self._show_error(message)
        self.refresh()

    def _on_cancelled(self) -> None:
        self.status.setText("Cancelled. A download continues where it stopped next time.")
        self.refresh()

    def _on_busy_changed(self, busy: bool) -> None:
        self._update_buttons()
        if not busy and self._close_when_idle:
            self._close_when_idle = False
            self.done(QDialog.DialogCode.Rejected)

    # --- closing -------------------------------------------------------------------------

    def reject(self) -> None:
        """Close/Esc while a job runs: cancel it and close once it has stopped."""
        if self.jobs.busy:
            self._close_when_idle = True
            self.jobs.cancel()
            self.status.setText("Stopping…")
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.jobs.busy:
            event.ignore()
            self.reject()
            return
        super().closeEvent(event)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """For the window's own shutdown: cancel and wait for a running job."""
        return self.jobs.shutdown(timeout_ms)
