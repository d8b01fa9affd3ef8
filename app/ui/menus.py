"""Where each of the window's commands sits: the menu bar, its lists that change (recent
files, presets, themes, devices) and the toolbar. The commands themselves are the window's,
handed over as MenuCommands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QToolBar

from app.ui.engines import DEVICE_LABELS, DEVICES
from app.ui.theme import THEMES

# Chords (Ctrl+K, then a letter) keep these out of the way of writing and of each other.
THEME_KEYS = {"system": "Ctrl+K, S", "light": "Ctrl+K, L", "dark": "Ctrl+K, D"}
DEVICE_KEYS = {"auto": "Ctrl+K, A", "cpu": "Ctrl+K, C", "cuda": "Ctrl+K, U",
               "directml": "Ctrl+K, M"}


@dataclass(frozen=True)
class MenuCommands:
    """Everything the menus and the toolbar show, in menu order: the actions, and what the
    lists filled on opening ask for (the recent files, the presets)."""

    # File
    new_action: QAction
    open_action: QAction
    save_action: QAction
    save_as_action: QAction
    quit_action: QAction
    recent_files: Callable[[], list[str]]
    open_recent: Callable[[Path], object]
    clear_recent_action: QAction
    # Edit
    undo_action: QAction
    redo_action: QAction
    cut_action: QAction
    copy_action: QAction
    paste_action: QAction
    select_all_action: QAction
    # Generate, and its Suggestions submenu
    generate_action: QAction
    stop_action: QAction
    regenerate_action: QAction
    token_view_action: QAction
    alternatives_action: QAction
    suggestions_action: QAction
    accept_suggestion_action: QAction
    accept_word_action: QAction
    next_suggestion_action: QAction
    previous_suggestion_action: QAction
    suggestion_settings_action: QAction
    # Sampling
    preset_names: Callable[[], list[str]]
    current_preset: Callable[[], str]
    select_preset: Callable[[str], object]
    save_preset_action: QAction
    rename_preset_action: QAction
    delete_preset_action: QAction
    revert_preset_action: QAction
    import_presets_action: QAction
    export_preset_action: QAction
    lock_seed_action: QAction
    # View
    panel_action: QAction
    distribution_action: QAction
    font_action: QAction
    zoom_in_action: QAction
    zoom_out_action: QAction
    zoom_reset_action: QAction
    full_screen_action: QAction
    # Models
    models_action: QAction
    reload_model_action: QAction
    open_models_folder_action: QAction
    # Help
    shortcuts_action: QAction
    about_action: QAction
    # View, after the panels (last here: it has a default)
    takes_action: QAction | None = None
    # Write: actions on the selection (loaded from files, so asked for when the menu is made)
    writing_commands: Callable[[], list[QAction]] = list
    writing_pane_action: QAction | None = None
    open_actions_folder_action: QAction | None = None
    reload_actions_action: QAction | None = None
    # View, after the panels: the surprise lens
    lens_action: QAction | None = None
    # Edit, after the clipboard: find, replace, find next and previous
    find_actions: tuple[QAction, ...] = ()


class WindowMenus:
    """The menu bar and the toolbar of `window`, holding `commands`."""

    def __init__(self, window: QMainWindow, commands: MenuCommands) -> None:
        self._window = window
        self._commands = c = commands
        bar = window.menuBar()

        file_menu = bar.addMenu("&File")
        file_menu.addActions([c.new_action, c.open_action])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self.fill_recent)
        file_menu.addActions([c.save_action, c.save_as_action])
        file_menu.addSeparator()
        file_menu.addAction(c.quit_action)

        edit_menu = bar.addMenu("&Edit")
        edit_menu.addActions([c.undo_action, c.redo_action])
        edit_menu.addSeparator()
        edit_menu.addActions([c.cut_action, c.copy_action, c.paste_action, c.select_all_action])
        if c.find_actions:
            edit_menu.addSeparator()
            edit_menu.addActions(list(c.find_actions))

        generate_menu = bar.addMenu("&Generate")
        generate_menu.addActions([c.generate_action, c.stop_action, c.regenerate_action])
        generate_menu.addSeparator()
        generate_menu.addActions([c.token_view_action, c.alternatives_action])
        generate_menu.addSeparator()
        self.suggestions_menu = generate_menu.addMenu("S&uggestions")
        self.suggestions_menu.addAction(c.suggestions_action)
        self.suggestions_menu.addSeparator()
        self.suggestions_menu.addActions([c.accept_suggestion_action, c.accept_word_action,
                                          c.next_suggestion_action,
                                          c.previous_suggestion_action])
        self.suggestions_menu.addSeparator()
        self.suggestions_menu.addAction(c.suggestion_settings_action)

        self.write_menu = bar.addMenu("&Write")
        self.fill_write()

        sampling_menu = bar.addMenu("&Sampling")
        self.presets_menu = sampling_menu.addMenu("&Presets")
        self.presets_menu.aboutToShow.connect(self.fill_presets)
        sampling_menu.addActions([c.save_preset_action, c.rename_preset_action,
                                  c.delete_preset_action, c.revert_preset_action])
        sampling_menu.addSeparator()
        sampling_menu.addActions([c.import_presets_action, c.export_preset_action])
        sampling_menu.addSeparator()
        sampling_menu.addAction(c.lock_seed_action)

        view_menu = bar.addMenu("&View")
        view_menu.addActions([c.panel_action, c.distribution_action])
        if c.takes_action is not None:
            view_menu.addAction(c.takes_action)
        if c.lens_action is not None:
            view_menu.addAction(c.lens_action)
        view_menu.addSeparator()
        self.theme_group = self._choices(view_menu.addMenu("T&heme"), {
            theme: (f"&{theme.capitalize()}", f"Use the {theme} theme") for theme in THEMES},
            THEME_KEYS)
        view_menu.addActions([c.font_action, c.zoom_in_action, c.zoom_out_action,
                              c.zoom_reset_action])
        view_menu.addSeparator()
        view_menu.addAction(c.full_screen_action)

        models_menu = bar.addMenu("&Models")
        models_menu.addActions([c.models_action, c.reload_model_action,
                                c.open_models_folder_action])
        self.device_group = self._choices(models_menu.addMenu("&Device"), {
            device: (label, f"Run the model on: {label.replace('&', '')}")
            for device, label in ((d, DEVICE_LABELS[d]) for d in DEVICES)}, DEVICE_KEYS)

        help_menu = bar.addMenu("&Help")
        help_menu.addActions([c.shortcuts_action, c.about_action])

        toolbar = QToolBar("Main", window)
        toolbar.setObjectName("main-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setMovable(False)
        toolbar.addActions([c.new_action, c.open_action, c.save_action])
        toolbar.addSeparator()
        toolbar.addActions([c.generate_action, c.stop_action, c.regenerate_action])
        toolbar.addSeparator()
        toolbar.addActions([c.token_view_action, c.panel_action])
        window.addToolBar(toolbar)
        self.toolbar = toolbar

    def _choices(self, menu: QMenu, items: dict[str, tuple[str, str]],
                 keys: dict[str, str]) -> QActionGroup:
        """One exclusive, checkable entry per value; the chosen value is the action's data."""
        group = QActionGroup(menu)
        for value, (text, tip) in items.items():
            action = menu.addAction(text)
            action.setShortcut(QKeySequence(keys[value]))
            self._window.addAction(action)  # the shortcut works with the menu closed
            action.setCheckable(True)
            action.setData(value)
            action.setStatusTip(tip)
            group.addAction(action)
        return group

    def fill_recent(self) -> None:
        c = self._commands
        self.recent_menu.clear()
        recent = c.recent_files()
        for number, entry in enumerate(recent, start=1):
            action = self.recent_menu.addAction(f"&{number % 10} {Path(entry).name}")
            action.setStatusTip(entry)
            action.triggered.connect(lambda _=False, p=entry: c.open_recent(Path(p)))
        if not recent:
            self.recent_menu.addAction("No recent files").setEnabled(False)
        self.recent_menu.addSeparator()
        self.recent_menu.addAction(c.clear_recent_action)

    def fill_write(self) -> None:
        """The writing actions, then the pane and the action files (they can be reloaded)."""
        c = self._commands
        self.write_menu.clear()
        self.write_menu.addActions(c.writing_commands())
        more = [a for a in (c.writing_pane_action, c.open_actions_folder_action,
                            c.reload_actions_action) if a is not None]
        if more:
            self.write_menu.addSeparator()
            self.write_menu.addActions(more)

    def fill_presets(self) -> None:
        c = self._commands
        self.presets_menu.clear()
        current = c.current_preset()
        for name in c.preset_names():
            action = self.presets_menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(name == current)
            action.triggered.connect(lambda _=False, n=name: c.select_preset(n))

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

        for top in self._window.menuBar().actions():
            menu = top.menu()
            if isinstance(menu, QMenu):
                walk(menu, top.text().replace("&", ""))
        return rows
