"""Long model jobs (download, convert, copy) off the GUI thread, and the bar that shows them.

A ModelTask runs one app.model_store call on its own QThread; the store reports progress
through a callback on that thread, which the task turns into (throttled) signals, which Qt
queues to the GUI thread. Cancel sets a threading.Event the store checks between chunks.
Nothing here touches a widget from the worker thread.

ModelJobs is the machinery the Models dialog and the welcome share: one job at a time,
a ProgressPanel showing it, results as signals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app import hub_download, model_store
from app.engine.errors import GhostpenError, user_message
from app.model_store import Cancelled, InstalledModel, ProgressCallback, TaskProgress

log = logging.getLogger(__name__)

Work = Callable[[ProgressCallback, threading.Event], InstalledModel]
BAR_STEPS = 1000  # QProgressBar holds an int: bytes of a 6 GB file do not fit, per mille does


class ModelTask(QThread):
    """Runs `work(progress, cancel)` once on its own thread."""

    progressed = Signal(object)  # TaskProgress
    succeeded = Signal(object)  # InstalledModel
    failed = Signal(str)  # one line
    cancelled = Signal()

    def __init__(self, title: str, work: Work, parent: QObject | None = None,
                 min_interval_s: float = 0.05) -> None:
        super().__init__(parent)
        self.setObjectName(f"model-task: {title}")
        self.title = title
        self._work = work
        self._cancel = threading.Event()
        self._min_interval_s = min_interval_s
        self._last_emit = 0.0
        self._last_key: tuple[str, str] | None = None
        # ("installed", InstalledModel) | ("failed", str) | ("cancelled", None), once run() ends
        self.outcome: tuple[str, object] = ("failed", f"{title} did not run")

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def _report(self, progress: TaskProgress) -> None:  # on the worker thread
        now = time.monotonic()
        key = (progress.stage, progress.message)
        final = progress.total > 0 and progress.done >= progress.total
        if key != self._last_key or final or now - self._last_emit >= self._min_interval_s:
            self._last_key, self._last_emit = key, now
            self.progressed.emit(progress)

    def run(self) -> None:
        try:
            model = self._work(self._report, self._cancel)
        except Cancelled:
            self.outcome = ("cancelled", None)
            self.cancelled.emit()
        except Exception as error:
            if not isinstance(error, GhostpenError):  # a bug or a library's surprise
                log.exception("%s failed", self.title)
            self.outcome = ("failed", user_message(error, f"{self.title} failed"))
            self.failed.emit(self.outcome[1])
        else:
            self.outcome = ("installed", model)
            self.succeeded.emit(model)


class ProgressPanel(QWidget):
    """A message, a bar (bytes when known, busy otherwise) and a Cancel button."""

    cancel_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = QLabel(self)
        self.message.setAccessibleName("Progress message")
        self.bar = QProgressBar(self)
        self.bar.setRange(0, BAR_STEPS)
        self.bar.setAccessibleName("Progress")
        self.bar.setAccessibleDescription("How much of the download or conversion is done")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setAccessibleName("Cancel")
        self.cancel_button.setAccessibleDescription("Stop the download or conversion; bytes "
                                                    "already downloaded are kept")
        self.cancel_button.clicked.connect(self._on_cancel)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.message)
        layout.addLayout(row)
        self.hide()

    def start(self, title: str) -> None:
        self.message.setText(title)
        self.bar.setRange(0, 0)
        self.bar.setFormat("")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.show()

    @Slot(object)
    def show_progress(self, progress: TaskProgress) -> None:
        self.message.setText(progress.message)
        fraction = progress.fraction
        if fraction is None:
            self.bar.setRange(0, 0)  # busy
            self.bar.setFormat("")
            return
        if progress.stage == "convert":  # counted in transformer blocks, not bytes
            self.bar.setFormat(f"block {progress.done} of {progress.total} (%p%)")
        else:
            self.bar.setFormat(f"{model_store.format_bytes(progress.done)} of "
                               f"{model_store.format_bytes(progress.total)} (%p%)")
        self.bar.setRange(0, BAR_STEPS)
        self.bar.setValue(round(fraction * BAR_STEPS))
        self.bar.setAccessibleDescription(self.bar.text())

    def _on_cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.cancel_clicked.emit()

    def finish(self) -> None:
        self.hide()


class ModelJobs(QObject):
    """One model job at a time for a window: starts it, shows it in `panel`, reports back.

    Results are emitted after the job's thread has ended (busy_changed(False) first), so a
    receiver may close or delete the window at once."""

    installed = Signal(object)  # InstalledModel
    failed = Signal(str)  # one line
    cancelled = Signal()
    busy_changed = Signal(bool)

    def __init__(self, panel: ProgressPanel, parent: QObject | None = None, *,
                 providers: Sequence[str] | None = None, root: Path | None = None) -> None:
        super().__init__(parent)
        self.panel = panel
        self.root = root
        self._providers = providers
        self.task: ModelTask | None = None
        panel.cancel_clicked.connect(self.cancel)

    @property
    def busy(self) -> bool:
        return self.task is not None

    def precision(self) -> str:
        return model_store.default_precision(self._providers)

    def download(self, repo_id: str, precision: str | None = None) -> bool:
        """Start downloading and converting `repo_id`; False when a job is running already."""
        chosen = precision or self.precision()
        entry = hub_download.catalogue_entry(repo_id)
        label = entry.label if entry else repo_id
        root = self.root
        return self._start(f"Downloading {label}", lambda progress, cancel: (
            hub_download.download_and_convert(repo_id, chosen, progress, cancel, root=root)))

    def add_folder(self, folder: Path, precision: str | None = None) -> bool:
        chosen = precision or self.precision()
        root = self.root
        return self._start(f"Adding {Path(folder).name}", lambda progress, cancel: (
            model_store.add_from_folder(folder, chosen, progress, cancel, root=root)))

    def ask_for_folder(self, parent: QWidget) -> Path | None:
        """A folder dialog for a checkpoint or model folder; None when the person cancels."""
        chosen = QFileDialog.getExistingDirectory(
            parent, "Add a model or checkpoint folder", str(Path.home()))
        return Path(chosen) if chosen else None

    def _start(self, title: str, work: Work) -> bool:
        if self.task is not None:
            return False
        task = ModelTask(title, work, self)
        task.progressed.connect(self.panel.show_progress)
        task.finished.connect(self._on_finished)
        self.task = task
        self.panel.start(title)
        self.busy_changed.emit(True)
        task.start()
        return True

    @Slot()
    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _on_finished(self) -> None:
        task, self.task = self.task, None
        if task is None:
            return
        task.wait()  # run() has returned; this only lets the thread wind down
        task.deleteLater()
        self.panel.finish()
        self.busy_changed.emit(False)
        kind, value = task.outcome
        if kind == "installed":
            self.installed.emit(value)
        elif kind == "cancelled":
            self.cancelled.emit()
        else:
            self.failed.emit(str(value))

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel and wait for the running job (closing the app); True when none is left."""
        if self.task is None:
            return True
        self.task.cancel()
        return self.task.wait(timeout_ms)
