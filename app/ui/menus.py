"""Where each of the window's commands sits: the menu bar, its lists that change (recent
files, presets, themes, devices) and the toolbar. The commands themselves are the window's."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar

from app.ui.engines import DEVICE_LABELS, DEVICES
from app.ui.theme import THEMES

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow


# Chords (Ctrl+K, then a letter) keep these out of the way of writing and of each other.
THEME_KEYS = {"system": "Ctrl+K, S", "light": "Ctrl+K, L", "dark": "Ctrl+K, D"}
DEVICE_KEYS = {"auto": "Ctrl+K, A", "cpu": "Ctrl+K, C", "cuda": "Ctrl+K, U",
               "directml": "Ctrl+K, M"}


class WindowMenus:
    def __init__(self, window: MainWindow) -> None:
        self.window = w = window
        bar = w.menuBar()

        file_menu = bar.addMenu("&File")
        file_menu.addActions([w.new_action, w.open_action])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self.fill_recent)
        file_menu.addActions([w.save_action, w.save_as_action])
        file_menu.addSeparator()
        file_menu.addAction(w.quit_action)

        edit_menu = bar.addMenu("&Edit")
        edit_menu.addActions([w.undo_action, w.redo_action])
        edit_menu.addSeparator()
        edit_menu.addActions([w.cut_action, w.copy_action, w.paste_action, w.select_all_action])

        generate_menu = bar.addMenu("&Generate")
        generate_menu.addActions([w.generate_action, w.stop_action, w.regenerate_action])
        generate_menu.addSeparator()
        generate_menu.addActions([w.token_view_action, w.alternatives_action])
        generate_menu.addSeparator()
        self.suggestions_menu = generate_menu.addMenu("S&uggestions")
        suggest = w.autocomplete
        self.suggestions_menu.addAction(suggest.toggle_action)
        self.suggestions_menu.addSeparator()
        self.suggestions_menu.addActions([suggest.accept_action, suggest.accept_word_action,
                                          suggest.next_action, suggest.previous_action])
        self.suggestions_menu.addSeparator()
        self.suggestions_menu.addAction(suggest.settings_action)

        p = w.panel
        sampling_menu = bar.addMenu("&Sampling")
        self.presets_menu = sampling_menu.addMenu("&Presets")
        self.presets_menu.aboutToShow.connect(self.fill_presets)
        sampling_menu.addActions([p.save_preset_action, p.rename_preset_action,
                                  p.delete_preset_action, p.revert_preset_action])
        sampling_menu.addSeparator()
        sampling_menu.addActions([p.import_presets_action, p.export_preset_action])
        sampling_menu.addSeparator()
        sampling_menu.addAction(p.lock_seed_action)

        view_menu = bar.addMenu("&View")
        view_menu.addActions([w.panel_action, w.distribution_action])
        view_menu.addSeparator()
        self.theme_group = self._choices(view_menu.addMenu("T&heme"), {
            theme: (f"&{theme.capitalize()}", f"Use the {theme} theme") for theme in THEMES},
            THEME_KEYS)
        view_menu.addActions([w.font_action, w.zoom_in_action, w.zoom_out_action,
                              w.zoom_reset_action])
        view_menu.addSeparator()
        view_menu.addAction(w.full_screen_action)

        models_menu = bar.addMenu("&Models")
        models_menu.addActions([w.models_action, w.reload_model_action,
                                w.open_models_folder_action])
        self.device_group = self._choices(models_menu.addMenu("&Device"), {
            device: (label, f"Run the model on: {label.replace('&', '')}")
            for device, label in ((d, DEVICE_LABELS[d]) for d in DEVICES)}, DEVICE_KEYS)

        help_menu = bar.addMenu("&Help")
        help_menu.addActions([w.shortcuts_action, w.about_action])

        toolbar = QToolBar("Main", w)
        toolbar.setObjectName("main-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setMovable(False)
        toolbar.addActions([w.new_action, w.open_action, w.save_action])
        toolbar.addSeparator()
        toolbar.addActions([w.generate_action, w.stop_action, w.regenerate_action])
        toolbar.addSeparator()
        toolbar.addActions([w.token_view_action, w.panel_action])
        w.addToolBar(toolbar)
        self.toolbar = toolbar

    def _choices(self, menu: QMenu, items: dict[str, tuple[str, str]],
                 keys: dict[str, str]) -> QActionGroup:
        """One exclusive, checkable entry per value; the chosen value is the action's data."""
        group = QActionGroup(menu)
        for value, (text, tip) in items.items():
            action = menu.addAction(text)
            action.setShortcut(QKeySequence(keys[value]))
            self.window.addAction(action)  # the shortcut works with the menu closed
            action.setCheckable(True)
            action.setData(value)
            action.setStatusTip(tip)
            group.addAction(action)
        return group

    def fill_recent(self) -> None:
        w = self.window
        self.recent_menu.clear()
        recent = w.settings.get("recent_files")
        for number, entry in enumerate(recent, start=1):
            action = self.recent_menu.addAction(f"&{number % 10} {Path(entry).name}")
            action.setStatusTip(entry)
            action.triggered.connect(lambda _=False, p=entry: w.document.open(Path(p)))
        if not recent:
            self.recent_menu.addAction("No recent files").setEnabled(False)
        self.recent_menu.addSeparator()
        self.recent_menu.addAction(w.clear_recent_action)

    def fill_presets(self) -> None:
        panel = self.window.panel
        self.presets_menu.clear()
        current = panel.current_preset()
        for name in panel.presets.names():
            action = self.presets_menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(name == current)
            action.triggered.connect(lambda _=False, n=name: panel.select_preset(n))

    def commands(self) -> list[tuple[str, QAction]]:
        """Every command in the menus, with its top menu's name: for the shortcuts list."""
        rows: list[tuple[str, QAction]] = []

        def walk(menu: QMenu, title: str) -> None:
            for action in menu.actions():
                submenu = action.menu()
                if isinstance(submenu, QMenu):
                    walk(submenu, title)
                elif not action.isSeparator() and action.text():
                    rows.append((title, action))

        for top in self.window.menuBar().actions():
            menu = top.menu()
            if isinstance(menu, QMenu):
                walk(menu, top.text().replace("&", ""))
        return rows
