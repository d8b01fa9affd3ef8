"""The side panel: presets, the distribution view, and a control for every sampler setting.

Each number is a slider with a number box beside it and a tooltip in plain words. The panel
only holds values: `params()` reads them into a SamplingParams (the last valid one while an
entry is being corrected), `set_params` shows one. Preset commands are QActions, so the
window's Sampling menu and the panel's own menu button are the same commands.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.engine.errors import GhostpenError
from app.engine.sampling_params import SAMPLER_STEPS, SamplingParams
from app.ui.distribution_view import DistributionView
from app.ui.panel_widgets import NumberRow, OrderList, Section
from app.ui.presets import PresetStore
from app.ui.sampler_fields import (
    BANNED_TOOLTIP,
    BREAKERS_TOOLTIP,
    FIELDS,
    LOGIT_BIAS_TOOLTIP,
    MIROSTAT_LABEL,
    MIROSTAT_TOOLTIP,
    ORDER_TOOLTIP,
    SECTIONS,
    SEED_TOOLTIP,
    STEP_LABELS,
    STOP_TOOLTIP,
)
from app.ui.sampler_text import escape, read_bias, read_json_strings, read_lines

SEED_MAX = 2**31 - 1


class SamplingPanel(QWidget):
    params_changed = Signal()
    presets_changed = Signal()  # the person's own presets changed: time to save settings
    message = Signal(str)  # one line for the status bar

    def __init__(self, presets: PresetStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sampling-panel")
        self.setAccessibleName("Sampling settings")
        self.presets = presets
        self._loading = False
        self._last_valid = SamplingParams()
        self._make_actions()

        self.preset_box = QComboBox(self)
        self.preset_box.setAccessibleName("Preset")
        self.preset_box.setToolTip("Named sets of sampler values. Built in: Precise, Balanced, "
                                   "Creative; save your own from the menu beside it.")
        self.preset_box.setAccessibleDescription(self.preset_box.toolTip())
        self.modified_label = QLabel("", self)
        self.modified_label.setAccessibleName("Preset state")
        preset_menu = QMenu(self)
        preset_menu.addActions([self.save_preset_action, self.rename_preset_action,
                                self.delete_preset_action, self.revert_preset_action])
        preset_menu.addSeparator()
        preset_menu.addActions([self.import_presets_action, self.export_preset_action])
        menu_button = QToolButton(self)
        menu_button.setText("⋯")
        menu_button.setMenu(preset_menu)
        menu_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu_button.setAccessibleName("Preset commands")
        menu_button.setToolTip("Save, rename, delete, import or export presets")
        preset_row = QHBoxLayout()
        preset_label = QLabel("&Preset", self)
        preset_label.setBuddy(self.preset_box)
        preset_row.addWidget(preset_label)
        preset_row.addWidget(self.preset_box, 1)
        preset_row.addWidget(self.modified_label)
        preset_row.addWidget(menu_button)

        self.distribution = DistributionView(self)
        self.distribution_title = QLabel("Next token at the cursor", self)
        self.distribution_title.setStyleSheet("font-weight: 600;")
        self.distribution_box = QWidget(self)
        distribution_layout = QVBoxLayout(self.distribution_box)
        distribution_layout.setContentsMargins(0, 4, 0, 4)
        distribution_layout.addWidget(self.distribution_title)
        distribution_layout.addWidget(self.distribution)

        controls = QWidget(self)
        controls_layout = QVBoxLayout(controls)
        controls_layout.setContentsMargins(0, 0, 6, 0)
        sections = {name: Section(name, name == "Basics", controls) for name in SECTIONS}
        self.rows: dict[str, NumberRow] = {}
        for field in FIELDS:
            grid = sections[field.section].grid
            row = NumberRow(field, grid, grid.rowCount(), sections[field.section].body)
            row.changed.connect(self._on_value_changed)
            self.rows[field.name] = row
        self._add_seed(sections["Basics"].grid)
        self._add_mirostat(sections["Typical and Mirostat"].grid)
        self._add_breakers(sections["DRY"].grid)
        for section in sections.values():
            controls_layout.addWidget(section)
        controls_layout.addWidget(self._make_order_section(controls))
        controls_layout.addWidget(self._make_text_section(controls))
        controls_layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.error_label = QLabel("", self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b;")
        self.error_label.setAccessibleName("Sampling settings problem")
        self.error_label.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        layout.addLayout(preset_row)
        layout.addWidget(self.distribution_box)
        layout.addWidget(self.error_label)
        layout.addWidget(scroll, 1)

        self._fill_preset_box("Balanced")
        self.preset_box.currentTextChanged.connect(self._on_preset_chosen)
        self.set_params(self.presets.get("Balanced"))

    # --- construction -------------------------------------------------------------------------

    def _make_actions(self) -> None:
        def action(text: str, shortcut: str, slot: object, tip: str) -> QAction:
            a = QAction(text, self)
            a.setShortcut(QKeySequence(shortcut))
            a.setStatusTip(tip)
            a.setToolTip(tip)
            a.triggered.connect(slot)
            return a

        self.save_preset_action = action("&Save Preset…", "Ctrl+Alt+S", self.ask_save_preset,
                                         "Save the current sampler values as a named preset")
        self.rename_preset_action = action("&Rename Preset…", "Ctrl+Alt+N",
                                           self.ask_rename_preset, "Rename the current preset")
        self.delete_preset_action = action("&Delete Preset", "Ctrl+Alt+D",
                                           self.ask_delete_preset, "Delete the current preset")
        self.revert_preset_action = action("Re&vert to Preset", "Ctrl+Alt+V",
                                           self.revert_to_preset,
                                           "Undo your changes to the current preset's values")
        self.import_presets_action = action("&Import Presets…", "Ctrl+Alt+I",
                                            self.ask_import_presets,
                                            "Add presets from a JSON file")
        self.export_preset_action = action("&Export Preset…", "Ctrl+Alt+E",
                                           self.ask_export_preset,
                                           "Write the current preset to a JSON file")
        self.lock_seed_action = QAction("&Lock Seed", self)
        self.lock_seed_action.setCheckable(True)
        self.lock_seed_action.setShortcut(QKeySequence("Ctrl+L"))
        self.lock_seed_action.setStatusTip("Keep the seed: the same settings write the same text")

    def _add_seed(self, grid: QGridLayout) -> None:
        row = grid.rowCount()
        label = QLabel("Seed", self)
        self.seed_box = QSpinBox(self)
        self.seed_box.setRange(0, SEED_MAX)
        self.seed_box.setValue(random.randrange(SEED_MAX))
        self.seed_box.setKeyboardTracking(False)
        self.seed_box.setAccessibleName("Seed")
        self.seed_lock = QCheckBox("Lock", self)
        self.seed_lock.setAccessibleName("Lock seed")
        for widget in (label, self.seed_box, self.seed_lock):
            widget.setToolTip(SEED_TOOLTIP)
        self.seed_box.setAccessibleDescription(SEED_TOOLTIP)
        self.seed_lock.setAccessibleDescription(SEED_TOOLTIP)
        label.setBuddy(self.seed_box)
        grid.addWidget(label, row, 0)
        grid.addWidget(self.seed_box, row, 1)
        grid.addWidget(self.seed_lock, row, 2)
        self.seed_lock.toggled.connect(self.lock_seed_action.setChecked)
        self.lock_seed_action.toggled.connect(self.seed_lock.setChecked)
        self.seed_lock.toggled.connect(self._on_value_changed)
        self.seed_box.valueChanged.connect(self._on_seed_edited)

    def _add_mirostat(self, grid: QGridLayout) -> None:
        self.mirostat_box = QComboBox(self)
        self.mirostat_box.addItems(["Off", "Version 2"])
        self._add_labelled(grid, MIROSTAT_LABEL, self.mirostat_box, MIROSTAT_LABEL,
                           MIROSTAT_TOOLTIP)
        self.mirostat_box.currentIndexChanged.connect(self._on_value_changed)

    def _add_labelled(self, grid: QGridLayout, text: str, widget: QWidget, name: str,
                      tooltip: str) -> None:
        """A new grid row: a label (the widget's buddy) and the widget, both explained."""
        row = grid.rowCount()
        label = QLabel(text, self)
        widget.setAccessibleName(name)
        widget.setAccessibleDescription(tooltip)
        label.setToolTip(tooltip)
        widget.setToolTip(tooltip)
        label.setBuddy(widget)
        grid.addWidget(label, row, 0)
        grid.addWidget(widget, row, 1, 1, 2)

    def _add_breakers(self, grid: QGridLayout) -> None:
        self.breakers_edit = QLineEdit(self)
        self._add_labelled(grid, "Breakers", self.breakers_edit, "DRY sequence breakers",
                           BREAKERS_TOOLTIP)
        self.breakers_edit.editingFinished.connect(self._on_value_changed)

    def _make_order_section(self, parent: QWidget) -> Section:
        section = Section("Sampler order", False, parent)
        self.order_list = OrderList(section.body)
        self.order_list.move_requested.connect(self.move_selected_step)
        self.order_list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.order_list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.order_list.setAccessibleName("Sampler order")
        self.order_list.setAccessibleDescription(ORDER_TOOLTIP)
        self.order_list.setToolTip(ORDER_TOOLTIP)
        self.order_list.setMaximumHeight(9 * 20 + 6)
        up = QToolButton(section.body)
        up.setArrowType(Qt.ArrowType.UpArrow)
        up.setAccessibleName("Move sampler up")
        up.setToolTip("Move the selected sampler earlier (Alt+Up in the list)")
        down = QToolButton(section.body)
        down.setArrowType(Qt.ArrowType.DownArrow)
        down.setAccessibleName("Move sampler down")
        down.setToolTip("Move the selected sampler later (Alt+Down in the list)")
        up.clicked.connect(lambda: self.move_selected_step(-1))
        down.clicked.connect(lambda: self.move_selected_step(1))
        buttons = QVBoxLayout()
        buttons.addWidget(up)
        buttons.addWidget(down)
        buttons.addStretch(1)
        section.grid.addWidget(self.order_list, 0, 0, 1, 2)
        section.grid.addLayout(buttons, 0, 2)
        self.order_list.model().rowsMoved.connect(self._on_value_changed)
        self.order_list.itemChanged.connect(self._on_value_changed)
        return section

    def _make_text_section(self, parent: QWidget) -> Section:
        section = Section("Stop and ban", False, parent)

        def text_box(label: str, tip: str, name: str) -> QPlainTextEdit:
            row = section.grid.rowCount()
            title = QLabel(label, section.body)
            edit = QPlainTextEdit(section.body)
            edit.setTabChangesFocus(True)
            edit.setMaximumHeight(64)
            edit.setAccessibleName(name)
            edit.setAccessibleDescription(tip)
            edit.setToolTip(tip)
            title.setToolTip(tip)
            title.setBuddy(edit)
            section.grid.addWidget(title, row, 0, Qt.AlignmentFlag.AlignTop)
            section.grid.addWidget(edit, row, 1, 1, 2)
            edit.textChanged.connect(self._on_value_changed)
            return edit

        self.stop_edit = text_box("Stop at", STOP_TOOLTIP, "Stop strings")
        self.banned_edit = text_box("Never write", BANNED_TOOLTIP, "Banned words")
        row = section.grid.rowCount()
        title = QLabel("Logit bias", section.body)
        self.bias_edit = QLineEdit(section.body)
        self.bias_edit.setAccessibleName("Logit bias")
        self.bias_edit.setAccessibleDescription(LOGIT_BIAS_TOOLTIP)
        self.bias_edit.setToolTip(LOGIT_BIAS_TOOLTIP)
        self.bias_edit.setPlaceholderText("198: -5, 50256: -100")
        title.setToolTip(LOGIT_BIAS_TOOLTIP)
        title.setBuddy(self.bias_edit)
        section.grid.addWidget(title, row, 0)
        section.grid.addWidget(self.bias_edit, row, 1, 1, 2)
        self.bias_edit.editingFinished.connect(self._on_value_changed)
        return section

    # --- values -------------------------------------------------------------------------------

    def params(self) -> SamplingParams:
        """The values shown, as SamplingParams; while one is invalid, the last valid set."""
        try:
            params = self._read()
        except GhostpenError as error:
            self.error_label.setText(str(error))
            self.error_label.show()
            return self._last_valid
        self.error_label.hide()
        self._last_valid = params
        return params

    def params_for_run(self) -> SamplingParams:
        """The values for one Generate: unless the seed is locked, a fresh seed, shown here."""
        params = self.params()
        if self.seed_lock.isChecked():
            return params
        seed = random.randrange(SEED_MAX)
        self.seed_box.blockSignals(True)
        self.seed_box.setValue(seed)
        self.seed_box.blockSignals(False)
        return params.replace(seed=seed)

    def _read(self) -> SamplingParams:
        values: dict[str, object] = {name: row.value() for name, row in self.rows.items()}
        values["mirostat"] = 2 if self.mirostat_box.currentIndex() == 1 else 0
        values["seed"] = self.seed_box.value() if self.seed_lock.isChecked() else None
        values["sampler_order"] = tuple(
            item.data(Qt.ItemDataRole.UserRole)
            for item in (self.order_list.item(i) for i in range(self.order_list.count()))
            if item.checkState() == Qt.CheckState.Checked
        )
        values["stop_strings"] = read_lines(self.stop_edit.toPlainText())
        values["banned_strings"] = read_lines(self.banned_edit.toPlainText())
        values["dry_sequence_breakers"] = read_json_strings(self.breakers_edit.text())
        values["logit_bias"] = read_bias(self.bias_edit.text())
        return SamplingParams(**values)  # type: ignore[arg-type]

    def set_params(self, params: SamplingParams) -> None:
        self._loading = True
        try:
            for name, row in self.rows.items():
                row.set_value(getattr(params, name))
            self.mirostat_box.setCurrentIndex(1 if params.mirostat else 0)
            if params.seed is not None:
                self.seed_box.setValue(min(params.seed, SEED_MAX))
            self.seed_lock.setChecked(params.seed is not None)
            self._show_order(params.sampler_order)
            self.stop_edit.setPlainText("\n".join(escape(s) for s in params.stop_strings))
            self.banned_edit.setPlainText("\n".join(escape(s) for s in params.banned_strings))
            self.breakers_edit.setText(json.dumps(list(params.dry_sequence_breakers)))
            self.bias_edit.setText(", ".join(f"{k}: {v:g}" for k, v in params.logit_bias.items()))
        finally:
            self._loading = False
        self._on_value_changed()

    def _show_order(self, order: tuple[str, ...]) -> None:
        self.order_list.blockSignals(True)
        self.order_list.clear()
        for step in (*order, *(s for s in SAMPLER_STEPS if s not in order)):
            item = QListWidgetItem(STEP_LABELS.get(step, step))
            item.setData(Qt.ItemDataRole.UserRole, step)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable
                          | Qt.ItemFlag.ItemIsDragEnabled)
            item.setCheckState(Qt.CheckState.Checked if step in order
                               else Qt.CheckState.Unchecked)
            self.order_list.addItem(item)
        self.order_list.blockSignals(False)

    def move_selected_step(self, offset: int) -> None:
        row = self.order_list.currentRow()
        target = row + offset
        if row < 0 or not 0 <= target < self.order_list.count():
            return
        item = self.order_list.takeItem(row)
        self.order_list.insertItem(target, item)
        self.order_list.setCurrentRow(target)
        self._on_value_changed()

    def _on_seed_edited(self) -> None:
        if not self._loading and self.seed_lock.isChecked():
            self._on_value_changed()

    def _on_value_changed(self) -> None:
        if self._loading:
            return
        current = self.params()
        name = self.preset_box.currentText()
        modified = name in self.presets and not _same_values(current, self.presets.get(name))
        self.modified_label.setText("modified" if modified else "")
        self.modified_label.setToolTip("The values differ from the preset; Revert to Preset "
                                       "(Ctrl+Alt+V) brings them back" if modified else "")
        self.params_changed.emit()

    # --- presets ------------------------------------------------------------------------------

    def current_preset(self) -> str:
        return self.preset_box.currentText()

    def select_preset(self, name: str, apply: bool = True) -> None:
        """Show `name` as the current preset; with `apply`, also load its values."""
        if name not in self.presets:
            return
        self.preset_box.blockSignals(True)
        self.preset_box.setCurrentText(name)
        self.preset_box.blockSignals(False)
        self._update_preset_actions()
        if apply:
            self.set_params(self.presets.get(name))
        else:
            self._on_value_changed()

    def revert_to_preset(self) -> None:
        self.select_preset(self.current_preset())

    def save_preset(self, name: str) -> None:
        self.presets.save(name, self.params())
        name = " ".join(name.split())
        self._fill_preset_box(name)
        self._on_value_changed()
        self.presets_changed.emit()
        self.message.emit(f"Preset “{name}” saved.")

    def rename_preset(self, old: str, new: str) -> None:
        self.presets.rename(old, new)
        new = " ".join(new.split())
        self._fill_preset_box(new)
        self.presets_changed.emit()
        self.message.emit(f"Preset “{old}” renamed to “{new}”.")

    def delete_preset(self, name: str) -> None:
        self.presets.delete(name)
        self._fill_preset_box("Balanced")
        self.set_params(self.presets.get("Balanced"))
        self.presets_changed.emit()
        self.message.emit(f"Preset “{name}” deleted.")

    def import_presets(self, path: Path) -> list[str]:
        names = self.presets.import_file(path)
        if names:
            self._fill_preset_box(names[0])
            self.set_params(self.presets.get(names[0]))
        self.presets_changed.emit()
        self.message.emit(f"Imported {len(names)} preset(s) from {Path(path).name}.")
        return names

    def export_preset(self, name: str, path: Path) -> None:
        self.presets.export_file([name], path)
        self.message.emit(f"Preset “{name}” exported to {Path(path).name}.")

    def _fill_preset_box(self, current: str) -> None:
        self.preset_box.blockSignals(True)
        self.preset_box.clear()
        self.preset_box.addItems(self.presets.names())
        self.preset_box.setCurrentText(current)
        self.preset_box.blockSignals(False)
        self._update_preset_actions()

    def _update_preset_actions(self) -> None:
        builtin = self.presets.is_builtin(self.current_preset())
        self.rename_preset_action.setEnabled(not builtin)
        self.delete_preset_action.setEnabled(not builtin)

    def _on_preset_chosen(self, name: str) -> None:
        self._update_preset_actions()
        if name in self.presets:
            self.set_params(self.presets.get(name))

    # --- the commands, with their dialogs -----------------------------------------------------

    def ask_save_preset(self) -> None:
        current = self.current_preset()
        suggestion = "" if self.presets.is_builtin(current) else current
        name, ok = QInputDialog.getText(self, "Save Preset", "Preset name:", text=suggestion)
        if ok:
            self._try(lambda: self.save_preset(name))

    def ask_rename_preset(self) -> None:
        old = self.current_preset()
        if self.presets.is_builtin(old):
            return
        new, ok = QInputDialog.getText(self, "Rename Preset", f"New name for “{old}”:", text=old)
        if ok:
            self._try(lambda: self.rename_preset(old, new))

    def ask_delete_preset(self) -> None:
        name = self.current_preset()
        if self.presets.is_builtin(name):
            return
        answer = QMessageBox.question(self, "Delete Preset", f"Delete the preset “{name}”?")
        if answer == QMessageBox.StandardButton.Yes:
            self._try(lambda: self.delete_preset(name))

    def ask_import_presets(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import Presets", "",
                                              "Preset files (*.json);;All files (*)")
        if path:
            self._try(lambda: self.import_presets(Path(path)))

    def ask_export_preset(self) -> None:
        name = self.current_preset()
        path, _ = QFileDialog.getSaveFileName(self, "Export Preset", f"{name}.json",
                                              "Preset files (*.json)")
        if path:
            self._try(lambda: self.export_preset(name, Path(path)))

    def _try(self, command: object) -> None:
        try:
            command()  # type: ignore[operator]
        except GhostpenError as error:
            self.message.emit(str(error))


def _same_values(a: SamplingParams, b: SamplingParams) -> bool:
    return a.replace(seed=None) == b.replace(seed=None)
