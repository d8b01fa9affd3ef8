"""The Takes pane: every take of the document as a tree, the selected one in full, and the
buttons that put one back, compare two, or let the model continue one."""

from __future__ import annotations

import html
import time

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.takes import Take
from app.ui.take_compare import TakeCompareDialog
from app.ui.take_keeper import TakeKeeper

ID_ROLE = Qt.ItemDataRole.UserRole
EMPTY_TEXT = ("No takes yet. Every generation and regeneration is kept here: put one back, "
              "compare two, or continue from any of them.")


def when(take: Take, now: float | None = None) -> str:
    """The time of a take as a list shows it: the clock today, the date before."""
    made = time.localtime(take.created_at)
    today = time.localtime(now if now is not None else time.time())
    if made[:3] == today[:3]:
        return time.strftime("%H:%M:%S", made)
    return time.strftime("%Y-%m-%d %H:%M", made)


class TakesPane(QWidget):
    def __init__(self, keeper: TakeKeeper, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("takes-pane")
        self.keeper = keeper
        self.tree = QTreeWidget(self)
        self.tree.setAccessibleName("Takes")
        self.tree.setHeaderLabels(["Take", "Made"])
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.setAllColumnsShowFocus(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.empty_label = QLabel(EMPTY_TEXT, self)
        self.empty_label.setWordWrap(True)
        self.empty_label.setStyleSheet("color: palette(placeholder-text); padding: 8px;")
        self.view = QTextBrowser(self)
        self.view.setAccessibleName("The selected take")
        self.view.setOpenLinks(False)
        self.details = QLabel(self)
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        self.details.setStyleSheet("color: palette(placeholder-text);")

        self.use_button = self._button("Use This Take",
                                       "Put this take in place of the last generation "
                                       "(one undo step)", self.use_selected)
        self.compare_button = self._button("Compare",
                                           "Show two selected takes side by side (one selected: "
                                           "beside the take in the document)",
                                           self.compare_selected)
        self.continue_button = self._button("Continue From Here",
                                            "Put this take in place and let the model write on "
                                            "after it", self.continue_selected)
        buttons = QHBoxLayout()
        for button in (self.use_button, self.compare_button, self.continue_button):
            buttons.addWidget(button)
        buttons.addStretch(1)

        top = QWidget(self)
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.empty_label)
        top_layout.addWidget(self.tree, 1)
        bottom = QWidget(self)
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.view, 1)
        bottom_layout.addWidget(self.details)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([360, 240])  # the list first: it is what a writer scans
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)

        self.tree.itemSelectionChanged.connect(self._show_selected)
        self.tree.itemActivated.connect(lambda *_: self.use_selected())  # Enter, double-click
        self._shown_current: str | None = None
        keeper.changed.connect(self.refresh)
        self.refresh()

    def _button(self, text: str, tip: str, slot: object) -> QPushButton:
        button = QPushButton(text, self)
        button.setToolTip(tip)
        button.setStatusTip(tip)
        button.clicked.connect(slot)
        return button

    # --- the list -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Show the keeper's tree again. The selection stays, unless another take went into
        the document: then that one is selected, as it is what the writer is looking at."""
        current = self.keeper.current
        selected = self.selected_ids()
        if current != self._shown_current or not selected:
            selected = [current] if current else []
        self._shown_current = current
        tree = self.keeper.tree
        self.tree.blockSignals(True)
        self.tree.clear()
        items: dict[str, QTreeWidgetItem] = {}
        for take in tree.all():  # oldest first, so a parent is always made before its children
            parent = items.get(take.parent) if take.parent else None
            item = QTreeWidgetItem(parent if parent is not None else self.tree)
            item.setText(0, take.preview())
            item.setText(1, when(take))
            item.setData(0, ID_ROLE, take.id)
            item.setToolTip(0, take.text[:400])
            if take.id == self.keeper.current:
                font = QFont(item.font(0))
                font.setBold(True)
                item.setFont(0, font)
                item.setText(0, f"● {take.preview()}")
                item.setToolTip(0, "In the document now:\n" + take.text[:400])
            items[take.id] = item
        self.tree.expandAll()
        self._select_items([items[take_id] for take_id in selected if take_id in items])
        self.tree.blockSignals(False)
        empty = len(tree) == 0
        self.empty_label.setVisible(empty)
        self.tree.setVisible(not empty)
        self._show_selected()

    def items(self) -> list[QTreeWidgetItem]:
        """Every row, depth first, as the tree shows them."""
        found: list[QTreeWidgetItem] = []

        def walk(item: QTreeWidgetItem) -> None:
            found.append(item)
            for i in range(item.childCount()):
                walk(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i))
        return found

    def select(self, *take_ids: str) -> None:
        self._select_items([item for item in self.items() if item.data(0, ID_ROLE) in take_ids])

    def _select_items(self, items: list[QTreeWidgetItem]) -> None:
        # NoUpdate: otherwise Qt reads the keyboard's modifiers, and a Ctrl still held from
        # Ctrl+Enter would toggle the new take's row off instead of selecting it.
        self.tree.clearSelection()
        for item in items:
            item.setSelected(True)
            self.tree.setCurrentItem(item, 0, QItemSelectionModel.SelectionFlag.NoUpdate)

    def selected_ids(self) -> list[str]:
        ordered = [item.data(0, ID_ROLE) for item in self.items() if item.isSelected()]
        return [take_id for take_id in ordered if take_id in self.keeper.tree]

    def _show_selected(self) -> None:
        ids = self.selected_ids()
        one = len(ids) == 1
        self.use_button.setEnabled(one)
        self.continue_button.setEnabled(one)
        self.compare_button.setEnabled(len(ids) == 2 or (
            one and self.keeper.current is not None and ids[0] != self.keeper.current))
        if not ids:
            self.view.clear()
            self.details.clear()
            return
        take = self.keeper.take(ids[-1])
        tail = take.prompt_tail[-120:]
        palette = self.view.palette()
        text, base = palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base)
        grey = QColor((text.red() + base.red()) // 2, (text.green() + base.green()) // 2,
                      (text.blue() + base.blue()) // 2).name()  # the text before: context only
        self.view.setHtml(
            f'<p style="white-space: pre-wrap;"><span style="color: {grey};">'
            f'{"…" if take.prompt_length > len(tail) else ""}{html.escape(tail)}</span>'
            f"<b>{html.escape(take.text)}</b></p>")
        words = len(take.text.split())
        seed = f" · seed {take.seed}" if take.seed is not None else ""
        self.details.setText(f"{words} word{'' if words == 1 else 's'} · {take.model} · "
                             f"{take.params}{seed} · {when(take)}")

    # --- the buttons --------------------------------------------------------------------------

    def use_selected(self) -> None:
        ids = self.selected_ids()
        if len(ids) == 1:
            self.keeper.use(ids[0])

    def continue_selected(self) -> None:
        ids = self.selected_ids()
        if len(ids) == 1:
            self.keeper.continue_from(ids[0])

    def compare_selected(self) -> TakeCompareDialog | None:
        """Open the comparison of the two selected takes, or of the selected one and the take
        in the document; the dialog, shown and not modal, so writing can go on."""
        ids = self.selected_ids()
        current = self.keeper.current
        if len(ids) == 1 and current is not None and ids[0] != current:
            ids = [current, ids[0]]
        if len(ids) != 2:
            return None
        left, right = (self.keeper.take(i) for i in ids)
        left_title = ("In the document" if left.id == current else f"Take of {when(left)}")
        right_title = ("In the document" if right.id == current else f"Take of {when(right)}")
        dialog = TakeCompareDialog(left, right, left_title, right_title, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog
