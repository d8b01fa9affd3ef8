"""The sampling panel's building blocks: a slider with its number box, and a folding section."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QListWidget,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.sampler_fields import NumberField


class NumberRow(QObject):
    """A label, a slider and a number box for one field, kept in step with each other."""

    changed = Signal()

    def __init__(self, field: NumberField, grid: QGridLayout, row: int, parent: QWidget) -> None:
        super().__init__(parent)
        self.field = field
        self._scale = 10**field.decimals
        self.label = QLabel(field.label, parent)
        self.slider = QSlider(Qt.Orientation.Horizontal, parent)
        self.slider.setRange(round(field.minimum * self._scale),
                             round(field.slider_max * self._scale))
        self.box: QSpinBox | QDoubleSpinBox
        if field.integer:
            self.box = QSpinBox(parent)
            self.box.setRange(int(field.minimum), int(field.box_max))
        else:
            self.box = QDoubleSpinBox(parent)
            self.box.setDecimals(field.decimals)
            self.box.setSingleStep(1 / self._scale)
            self.box.setRange(field.minimum, field.box_max)
        self.box.setKeyboardTracking(False)
        self.box.setMinimumWidth(72)
        self.label.setBuddy(self.box)
        for widget in (self.label, self.slider, self.box):
            widget.setToolTip(field.tooltip)
        self.slider.setAccessibleName(f"{field.label} slider")
        self.box.setAccessibleName(field.label)
        self.slider.setAccessibleDescription(field.tooltip)
        self.box.setAccessibleDescription(field.tooltip)
        self.box.setObjectName(f"box-{field.name}")
        self.slider.setObjectName(f"slider-{field.name}")
        grid.addWidget(self.label, row, 0)
        grid.addWidget(self.slider, row, 1)
        grid.addWidget(self.box, row, 2)
        self.slider.valueChanged.connect(self._from_slider)
        self.box.valueChanged.connect(self._from_box)

    def value(self) -> float | int:
        return int(self.box.value()) if self.field.integer else round(self.box.value(),
                                                                       self.field.decimals)

    def set_value(self, value: float) -> None:
        self.box.blockSignals(True)
        self.slider.blockSignals(True)
        if isinstance(self.box, QSpinBox):
            self.box.setValue(int(value))
        else:
            self.box.setValue(value)
        self.slider.setValue(round(value * self._scale))
        self.box.blockSignals(False)
        self.slider.blockSignals(False)

    def _from_slider(self, position: int) -> None:
        self.box.blockSignals(True)
        self.box.setValue(position / self._scale if not self.field.integer else position)
        self.box.blockSignals(False)
        self.changed.emit()

    def _from_box(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * self._scale))
        self.slider.blockSignals(False)
        self.changed.emit()


class Section(QWidget):
    """A titled group that folds away, so the panel shows the basics first."""

    def __init__(self, title: str, expanded: bool, parent: QWidget) -> None:
        super().__init__(parent)
        self.toggle = QToolButton(self)
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setChecked(expanded)
        self.toggle.setAutoRaise(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setAccessibleName(f"{title} section")
        self.toggle.setAccessibleDescription(f"Show or hide the {title} settings")
        self.toggle.setStyleSheet("QToolButton { font-weight: 600; border: none; }")
        self.body = QWidget(self)
        self.grid = QGridLayout(self.body)
        self.grid.setContentsMargins(8, 0, 0, 6)
        self.grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.toggle)
        layout.addWidget(self.body)
        self.toggle.toggled.connect(self._show)
        self._show(expanded)

    def _show(self, expanded: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.setVisible(expanded)




class OrderList(QListWidget):
    """The sampler order: drag to reorder, or Alt+Up / Alt+Down while the list has focus."""

    move_requested = Signal(int)  # -1 up, +1 down

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.modifiers() == Qt.KeyboardModifier.AltModifier and event.key() in (
                Qt.Key.Key_Up, Qt.Key.Key_Down):
            self.move_requested.emit(-1 if event.key() == Qt.Key.Key_Up else 1)
            return
        super().keyPressEvent(event)
