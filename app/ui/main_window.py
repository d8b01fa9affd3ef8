"""The writing window: editor, sampling panel, status bar, menus; documents and settings.

The window owns one EngineWorker and gets engines only through its `engine_factory`
(device -> TextEngine), called on the worker thread. Everything here runs on the GUI thread.
"""

from __future__ import annotations

import gc
import html
from collections.abc import Callable

from PySide6.QtCore import QByteArray, QPoint, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFontDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.engine.errors import GhostpenError
from app.engine.events import EngineInfo, GenerationStats
from app.engine.providers import DEVICE_PROVIDERS, available_providers
from app.engine.sampling_params import SamplingParams
from app.paths import models_dir
from app.ui.actions_pane import ActionsPane
from app.ui.autocomplete import AutocompleteController
from app.ui.distribution_feed import DistributionFeed
from app.ui.document_session import DocumentSession
from app.ui.documents import Recovery
from app.ui.editor import Editor
from app.ui.engines import (
    DEVICES,
    EngineFactory,
    default_engine_factory,
    short_provider,
)
from app.ui.find_bar import FindBar
from app.ui.generation import GenerationController
from app.ui.menus import MenuCommands, WindowMenus
from app.ui.model_dialog import ModelDialog
from app.ui.notice import Notice
from app.ui.presets import PresetStore
from app.ui.recovery_offer import RecoveryOffer
from app.ui.sampling_panel import SamplingPanel
from app.ui.serve_toggle import ServeToggle
from app.ui.settings import DEFAULTS, Settings
from app.ui.shortcuts_dialog import ShortcutsDialog
from app.ui.show_folder import folder_link, show_folder
from app.ui.surprise_lens import SurpriseLens
from app.ui.take_keeper import TakeKeeper
from app.ui.takes_pane import TakesPane
from app.ui.text_count import TextCountLabel
from app.ui.theme import THEMES, apply_theme, writing_font
from app.ui.welcome import WelcomeWidget
from app.ui.worker import EngineWorker
from app.writing_actions import user_actions_dir

PREVIEW_DELAY_MS = 100
STATUS_MS = 8000
LOADING_TEXT = "Loading model…"
NO_MODEL_MESSAGE = ("No model to write with yet: download one or add one from a folder "
                    "(Models ▸ Manage Models…, Ctrl+M).")
NO_MODEL_WELCOME_MESSAGE = ("No model to write with yet: choose Download GPT-2 or Add from "
                            "Folder above.")


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None,
                 engine_factory: EngineFactory | None = None, offer_recovery: bool = True) -> None:
        super().__init__()
        self.setObjectName("main-window")
        self.settings = settings or Settings()
        self._engine_factory = engine_factory or default_engine_factory(
            lambda: self.settings.get("last_model"))
        self.engine_info: EngineInfo | None = None
        self._closed = False

        self.worker = EngineWorker(self)
        self.editor = Editor(self)
        self.panel = SamplingPanel(PresetStore(self.settings.get("presets")), self)
        self.generation = GenerationController(self.worker, self.editor,
                                               self.panel.params_for_run, self)
        self.document = DocumentSession(self.editor, self.settings, self)
        self.takes = TakeKeeper(self.document, self.generation, self.editor,
                                lambda: self.engine_info.model_name if self.engine_info else "",
                                self)
        self.autocomplete = AutocompleteController(self.worker, self.editor, self.generation,
                                                   self.settings, self.panel.presets, self)
        self.distribution_feed = DistributionFeed(self.worker, self.generation, self.panel, self)
        self.lens = SurpriseLens(self.worker, self.editor, self.generation, self)

        self._make_actions()
        self.notice = Notice([self.models_action, self.open_models_folder_action,
                              self.reload_model_action], self)
        self._models_dialog: ModelDialog | None = None
        self.welcome: WelcomeWidget | None = None  # made on the first run without a model
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.notice)
        self.recovery_offer = RecoveryOffer(self.document, self)
        self.recovery_offer.open_beside.connect(self.open_beside)
        self.beside_windows: list[MainWindow] = []  # top-level windows: this keeps them alive
        layout.addWidget(self.recovery_offer)
        self._central_layout = layout
        layout.addWidget(self.editor, 1)
        self.find_bar = FindBar(self.editor, central)
        layout.addWidget(self.find_bar)
        self._make_find_actions()
        self.setCentralWidget(central)
        self.dock = QDockWidget("Sampling", self)
        self.dock.setObjectName("sampling-dock")
        self.dock.setWidget(self.panel)
        self.dock.setMinimumWidth(300)
        self.dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                              | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self._make_status_bar()
        self.statusBar().insertPermanentWidget(0, self.lens.legend)
        self.statusBar().messageChanged.connect(self.lens.legend.make_room_for)
        self.lens.message.connect(self.show_message)
        self.panel_action = self.dock.toggleViewAction()
        self.panel_action.setText("&Sampling Panel")
        self.panel_action.setShortcut(QKeySequence("F9"))
        self.panel_action.setStatusTip("Show or hide the sampling settings")
        self._make_takes_dock()
        self._make_write_dock()
        self.dock.raise_()  # the sampling panel is the tab in front, not the last one added
        self.menus = WindowMenus(self, self._menu_commands())
        self.menus.theme_group.triggered.connect(lambda a: self.set_theme(a.data()))
        self.menus.device_group.triggered.connect(lambda a: self.set_device(a.data()))
        self.editor.extra_menu = self.menus.write_menu  # the editor's context menu offers it
        self.serve_toggle = ServeToggle(self, self.worker, self.show_message)

        self._preview_timer = QTimer(self, singleShot=True, interval=PREVIEW_DELAY_MS)
        self._preview_timer.timeout.connect(self._request_preview)
        self._wire()
        self._restore_settings()
        self._update_title()
        self._update_actions()
        if offer_recovery:  # a window opened beside another leaves the offering to that one
            self.recovery_offer.offer(self.document.recoverable())
        self.load_engine()

    # --- construction -------------------------------------------------------------------------

    def _action(self, text: str, shortcut: str | QKeySequence.StandardKey | list[str],
                slot: Callable[..., object], tip: str, checkable: bool = False,
                icon: QStyle.StandardPixmap | None = None) -> QAction:
        action = QAction(text, self)
        if isinstance(shortcut, list):
            action.setShortcuts([QKeySequence(s) for s in shortcut])
        elif shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip} ({keys})" if keys else tip)
        action.setCheckable(checkable)
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        action.triggered.connect(slot)
        return action

    def _make_actions(self) -> None:
        sp = QStyle.StandardPixmap
        self.new_action = self._action("&New", QKeySequence.StandardKey.New, self.document.new,
                                       "Start a new, empty document", icon=sp.SP_FileIcon)
        self.open_action = self._action("&Open…", QKeySequence.StandardKey.Open,
                                        lambda: self.document.open(),
                                        "Open a text or Markdown file",
                                        icon=sp.SP_DialogOpenButton)
        self.save_action = self._action("&Save", QKeySequence.StandardKey.Save, self.document.save,
                                        "Save the document", icon=sp.SP_DialogSaveButton)
        self.save_as_action = self._action("Save &As…", "Ctrl+Shift+S", self.document.save_as,
                                           "Save the document under a new name")
        self.clear_recent_action = self._action("&Clear Recent Files", "Ctrl+Alt+Shift+C",
                                                self.clear_recent, "Forget the recent files")
        self.quit_action = self._action("&Quit", "Ctrl+Q", self.close, "Close Ghostpen")

        self.undo_action = self._action("&Undo", QKeySequence.StandardKey.Undo, self.editor.undo,
                                        "Undo the last change; a whole generation is one step")
        self.redo_action = self._action("&Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], self.editor.redo,
                                        "Redo what was undone")
        self.cut_action = self._action("Cu&t", QKeySequence.StandardKey.Cut, self.editor.cut,
                                       "Cut the selection")
        self.copy_action = self._action("&Copy", QKeySequence.StandardKey.Copy, self.editor.copy,
                                        "Copy the selection")
        self.paste_action = self._action("&Paste", QKeySequence.StandardKey.Paste,
                                         self.editor.paste, "Paste at the cursor")
        self.select_all_action = self._action("Select &All", QKeySequence.StandardKey.SelectAll,
                                              self.editor.selectAll, "Select the whole document")

        self.generate_action = self._action("&Generate", ["Ctrl+Return", "Ctrl+Enter"],
                                            self.generate,
                                            "Let the model continue the text at the cursor",
                                            icon=sp.SP_MediaPlay)
        self.stop_action = self._action("&Stop", "Esc", self.generation.stop,
                                        "Stop generating now", icon=sp.SP_MediaStop)
        self.regenerate_action = self._action("&Regenerate", "Ctrl+R",
                                              self.generation.regenerate,
                                              "Replace the last generation with a new one",
                                              icon=sp.SP_BrowserReload)
        self.alternatives_action = self._action("Show &Alternatives", "Ctrl+Shift+A",
                                                self.show_alternatives,
                                                "Show the alternatives for the generated token "
                                                "at the cursor")
        self.token_view_action = self._action("&Token Colours", "Ctrl+T", self.set_token_view,
                                              "Colour generated tokens by their probability; "
                                              "hover one to see its alternatives",
                                              checkable=True)

        self.distribution_action = self._action("&Distribution", "Ctrl+Shift+D",
                                                self._set_distribution_visible,
                                                "Show the next-token chances at the cursor",
                                                checkable=True)
        self.distribution_action.setChecked(True)
        self.font_action = self._action("&Font…", "Ctrl+Shift+F", self.choose_font,
                                        "Choose the editor font")
        self.zoom_in_action = self._action("&Larger Text", ["Ctrl++", "Ctrl+="],
                                           lambda: self.change_font_size(1), "Larger text")
        self.zoom_out_action = self._action("S&maller Text", "Ctrl+-",
                                            lambda: self.change_font_size(-1), "Smaller text")
        self.zoom_reset_action = self._action("&Normal Size", "Ctrl+0",
                                              lambda: self.change_font_size(0),
                                              "The default text size")
        self.full_screen_action = self._action("F&ull Screen", "F11", self._toggle_full_screen,
                                               "Fill the screen", checkable=True)

        self.models_action = self._action("&Manage Models…", "Ctrl+M", self.open_models_dialog,
                                          "Install, choose and remove models")
        self.reload_model_action = self._action("&Reload Model", "F5", self.load_engine,
                                                "Load the model again (for example after adding "
                                                "one)")
        self.open_models_folder_action = self._action("Open Models &Folder", "Ctrl+Alt+M",
                                                      self.open_models_folder,
                                                      "Show the folder where models are kept")
        self.shortcuts_action = self._action("&Keyboard Shortcuts", "F1", self.show_shortcuts,
                                             "List every command and its keys")
        self.about_action = self._action("&About Ghostpen", "Shift+F1", self.show_about,
                                         "Version and licence")

    def _make_find_actions(self) -> None:
        bar = self.find_bar
        self.find_action = self._action("&Find…", "Ctrl+F", bar.open_find,
                                        "Find text in the document")
        self.replace_action = self._action("R&eplace…", "Ctrl+H", bar.open_replace,
                                           "Find text and replace it")
        self.find_next_action = self._action("Find &Next", "F3", bar.find_next,
                                             "The next match of the text in the find bar")
        self.find_previous_action = self._action("Find Pre&vious", "Shift+F3",
                                                 bar.find_previous,
                                                 "The previous match of the text in the find bar")

    def _make_takes_dock(self) -> None:
        """The Takes pane, a tab beside the sampling panel."""
        self.takes_pane = TakesPane(self.takes, self)
        self.takes_dock = QDockWidget("Takes", self)
        self.takes_dock.setObjectName("takes-dock")
        self.takes_dock.setWidget(self.takes_pane)
        self.takes_dock.setFeatures(self.dock.features())
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.takes_dock)
        self.tabifyDockWidget(self.dock, self.takes_dock)
        self.dock.raise_()
        self.takes_action = self.takes_dock.toggleViewAction()
        self.takes_action.setText("Ta&kes")
        self.takes_action.setShortcut(QKeySequence("Ctrl+Shift+H"))
        self.takes_action.setStatusTip("Show or hide every take of this document")
        self.takes.message.connect(self.show_message)

    def _menu_commands(self) -> MenuCommands:
        suggest, panel = self.autocomplete, self.panel
        return MenuCommands(
            new_action=self.new_action, open_action=self.open_action,
            save_action=self.save_action, save_as_action=self.save_as_action,
            quit_action=self.quit_action,
            recent_files=lambda: self.settings.get("recent_files"),
            open_recent=self.document.open, clear_recent_action=self.clear_recent_action,
            undo_action=self.undo_action, redo_action=self.redo_action,
            cut_action=self.cut_action, copy_action=self.copy_action,
            paste_action=self.paste_action, select_all_action=self.select_all_action,
            generate_action=self.generate_action, stop_action=self.stop_action,
            regenerate_action=self.regenerate_action, token_view_action=self.token_view_action,
            alternatives_action=self.alternatives_action,
            suggestions_action=suggest.toggle_action,
            accept_suggestion_action=suggest.accept_action,
            accept_word_action=suggest.accept_word_action,
            next_suggestion_action=suggest.next_action,
            previous_suggestion_action=suggest.previous_action,
            suggestion_settings_action=suggest.settings_action,
            preset_names=lambda: panel.presets.names(),
            current_preset=panel.current_preset, select_preset=panel.select_preset,
            save_preset_action=panel.save_preset_action,
            rename_preset_action=panel.rename_preset_action,
            delete_preset_action=panel.delete_preset_action,
            revert_preset_action=panel.revert_preset_action,
            import_presets_action=panel.import_presets_action,
            export_preset_action=panel.export_preset_action,
            lock_seed_action=panel.lock_seed_action,
            panel_action=self.panel_action, distribution_action=self.distribution_action,
            font_action=self.font_action, zoom_in_action=self.zoom_in_action,
            zoom_out_action=self.zoom_out_action, zoom_reset_action=self.zoom_reset_action,
            full_screen_action=self.full_screen_action,
            models_action=self.models_action, reload_model_action=self.reload_model_action,
            open_models_folder_action=self.open_models_folder_action,
            shortcuts_action=self.shortcuts_action, about_action=self.about_action,
            takes_action=self.takes_action,
            writing_commands=lambda: self.actions_pane.commands,
            writing_pane_action=self.write_pane_action,
            open_actions_folder_action=self.open_actions_folder_action,
            reload_actions_action=self.reload_actions_action,
            lens_action=self.lens.action,
            find_actions=(self.find_action, self.replace_action, self.find_next_action,
                          self.find_previous_action),
        )

    def _make_status_bar(self) -> None:
        bar = self.statusBar()

        def label(name: str, tip: str) -> QLabel:
            widget = QLabel(self)
            widget.setAccessibleName(name)
            widget.setToolTip(tip)
            widget.setContentsMargins(6, 0, 6, 0)
            return widget

        self.fallback_label = label("Device warning", "")
        self.fallback_label.setStyleSheet("color: #b9770e;")
        self.fallback_label.hide()
        self.model_label = label("Model", "The model, its precision and where it runs")
        self.speed_label = label("Speed", "Tokens per second of the last generation")
        self.context_label = label("Context", "Tokens before the cursor, of what the model can "
                                              "see at once")
        self.count_label = TextCountLabel(self.editor, self)
        bar.addPermanentWidget(self.count_label)
        bar.addPermanentWidget(self.fallback_label)
        bar.addPermanentWidget(self.model_label)
        bar.addPermanentWidget(self.speed_label)
        bar.addPermanentWidget(self.context_label)
        self.model_label.setText("No model")
        self.speed_label.setText("– tok/s")
        self.context_label.setText("Context –")

    def _wire(self) -> None:
        self.worker.engine_loaded.connect(self._on_engine_loaded)
        self.worker.engine_failed.connect(self._on_engine_failed)
        self.distribution_feed.context_counted.connect(self._show_context)
        self.generation.running_changed.connect(self._on_running_changed)
        self.generation.finished.connect(self._on_generation_finished)
        self.generation.failed.connect(self._on_generation_failed)
        self.panel.params_changed.connect(self._schedule_preview)
        self.panel.presets_changed.connect(self.save_settings)
        self.panel.message.connect(self.show_message)
        self.autocomplete.message.connect(self.show_message)
        self.editor.cursorPositionChanged.connect(self._schedule_preview)
        self.editor.undoAvailable.connect(lambda _: self._update_actions())
        self.editor.redoAvailable.connect(lambda _: self._update_actions())
        self.editor.document().modificationChanged.connect(self.setWindowModified)
        self.document.path_changed.connect(self._update_title)
        self.document.message.connect(self.show_message)
        self.document.replacing.connect(self.generation.stop)
        hints = QGuiApplication.styleHints()
        hints.colorSchemeChanged.connect(self._on_system_colours_changed)

    # --- settings -----------------------------------------------------------------------------

    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.get("geometry")
        if not (geometry and self.restoreGeometry(QByteArray.fromBase64(geometry.encode()))):
            self.resize(1180, 760)
        state = s.get("window_state")
        if state:
            self.restoreState(QByteArray.fromBase64(state.encode()))
        self.set_theme(s.get("theme"), save=False)
        self._apply_font()
        try:
            params = SamplingParams.from_json(s.get("sampling"))
        except GhostpenError:
            params = SamplingParams()
        self.panel.set_params(params)
        self.panel.select_preset(s.get("preset"), apply=False)
        self.token_view_action.setChecked(s.get("token_view"))
        self.editor.set_token_view(s.get("token_view"))
        # The lens as it was left: its scores come once a model is loaded (the worker loads
        # before it scores).
        self.lens.legend.mode_button.setChecked(bool(s.get("lens_by_probability")))
        self.lens.set_enabled(bool(s.get("lens")))
        device = s.get("device") if s.get("device") in DEVICES else "auto"
        for action in self.menus.device_group.actions():
            action.setChecked(action.data() == device)
        if s.load_error:
            self.show_message(s.load_error)

    def save_settings(self) -> None:
        s = self.settings
        s.set("geometry", bytes(self.saveGeometry().toBase64().data()).decode())
        s.set("window_state", bytes(self.saveState().toBase64().data()).decode())
        s.set("sampling", self.panel.params().to_json())
        s.set("preset", self.panel.current_preset())
        s.set("presets", self.panel.presets.user_json())
        s.set("token_view", self.editor.token_view())
        s.set("lens", self.lens.enabled())
        s.set("lens_by_probability", self.lens.legend.by_probability())
        s.save()

    def set_theme(self, theme: str, save: bool = True) -> None:
        theme = theme if theme in THEMES else "system"
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, theme)
        for action in self.menus.theme_group.actions():
            action.setChecked(action.data() == theme)
        self.settings.set("theme", theme)
        self.editor.refresh_marks()
        if save:
            self.settings.save()

    def _on_system_colours_changed(self) -> None:
        if self.settings.get("theme") == "system":
            self.set_theme("system", save=False)

    def _apply_font(self) -> None:
        self.editor.setFont(writing_font(self.settings.get("font_family"),
                                         self.settings.get("font_size")))

    def choose_font(self) -> None:
        ok, font = QFontDialog.getFont(self.editor.font(), self, "Editor Font")
        if ok:
            self.settings.set("font_family", font.family())
            self.settings.set("font_size", max(6, font.pointSize()))
            self._apply_font()
            self.settings.save()

    def change_font_size(self, step: int) -> None:
        size = (DEFAULTS["font_size"] if step == 0
                else min(48, max(6, self.settings.get("font_size") + step)))
        self.settings.set("font_size", size)
        self._apply_font()

    def set_device(self, device: str) -> None:
        self.settings.set("device", device)
        self.settings.save()
        self.load_engine()

    # --- the engine ---------------------------------------------------------------------------

    def set_engine_factory(self, factory: EngineFactory) -> None:
        """Switch to engines from `factory` (the Models dialog's way to change model)."""
        self._engine_factory = factory
        self.load_engine()

    def load_engine(self) -> None:
        self.generation.stop()
        self.actions_pane.stop()
        self.engine_info = None
        factory, device = self._engine_factory, self.settings.get("device")
        self.model_label.setText(LOADING_TEXT)
        self.fallback_label.hide()
        self._update_actions()
        self.worker.load(lambda: factory(device))

    def _on_engine_loaded(self, info: EngineInfo) -> None:
        self.engine_info = info
        # Everything alive now (Qt's wrappers, onnxruntime, numpy, the tokenizer) stays for the
        # session: leave it out of the garbage collector's full passes, which hold the GIL for a
        # walk over every tracked object and so stall the window, whichever thread runs them
        # (while the surprise lens scored 27,899 tokens, 2026-12-02: passes of 50 ms). Objects
        # freed by their reference count are freed as before.
        gc.freeze()
        self.notice.hide()
        if self.welcome is not None:
            self.welcome.hide()
        self.model_label.setText(f"{info.model_name} · {info.precision} · "
                                 f"{short_provider(info.provider)}")
        self.model_label.setToolTip(
            f"Model {info.model_name}, {info.precision}, running on {info.provider}"
            + (f", {info.n_params / 1e6:.0f}M parameters" if info.n_params else "")
            + "".join(f"\n{note}" for note in info.notes))
        self.context_label.setText(f"Context – / {info.n_ctx}")
        self.panel.distribution.set_empty_text("Working out the next-token chances…")
        if info.fallback_reason:
            self.fallback_label.setText(f"⚠ {info.fallback_reason}")
            self.fallback_label.setToolTip(info.fallback_reason)
            self.fallback_label.show()
            self.show_message(info.fallback_reason)
        self._update_actions()
        self._schedule_preview()

    def _on_engine_failed(self, message: str, no_model: bool) -> None:
        self.engine_info = None
        self.model_label.setText("No model")
        if no_model:
            self._show_welcome()  # its offers, and where a converted folder goes
        else:
            self.notice.show_notice("The model could not be loaded",
                                    f"{html.escape(message)}<br>Models are kept in "
                                    f"{folder_link(models_dir())}.")
        self.panel.distribution.set_candidates([])
        self.panel.distribution.set_empty_text("No model is loaded.")
        self._update_actions()

    # --- generation ---------------------------------------------------------------------------

    def _on_running_changed(self, running: bool) -> None:
        if running:
            self.statusBar().showMessage("Generating… (Esc stops)")
        self._update_actions()
        if not running:
            self._schedule_preview()

    def generate(self) -> None:
        """Generate, or say why not: with no model the action stays pressable, so that the
        person learns what to do instead of meeting a greyed-out button."""
        if self.engine_info is None:
            if self.model_label.text() == LOADING_TEXT:
                self.show_message("The model is still loading; press Generate again in a "
                                  "moment.")
            elif self.welcome is not None and self.welcome.isVisible():
                self.show_message(NO_MODEL_WELCOME_MESSAGE)
            else:
                self.show_message(NO_MODEL_MESSAGE)
            return
        self.generation.generate()

    def _on_generation_finished(self, stats: GenerationStats) -> None:
        self.speed_label.setText(f"{stats.decode_tok_s:.1f} tok/s")
        if self.engine_info is not None:
            self._show_context(stats.prompt_tokens + stats.new_tokens)
        reasons = {"cancelled": "stopped", "eos": "the model ended the text",
                   "stop_string": "a stop string was written",
                   "max_new_tokens": "reached the maximum", "context_full": "the context is full"}
        reason = reasons.get(stats.stop_reason, stats.stop_reason or "done")
        self.show_message(f"{stats.new_tokens} tokens, {reason}.")

    def _on_generation_failed(self, message: str) -> None:
        self.show_message(f"⚠ {message}")

    def set_token_view(self, on: bool) -> None:
        self.editor.set_token_view(on)
        self.settings.set("token_view", on)

    def show_alternatives(self) -> None:
        if not self.editor.show_alternatives_at_cursor():
            self.show_message("Put the cursor on generated text to see the alternatives the "
                              "model had there.")

    def _set_distribution_visible(self, on: bool) -> None:
        self.panel.distribution_box.setVisible(on)
        if on:
            self._schedule_preview()

    def _schedule_preview(self) -> None:
        # A throttle, not a debounce: while a slider is dragged the chart still moves with it.
        if not self._preview_timer.isActive():
            self._preview_timer.start()

    def _request_preview(self) -> None:
        if (self.engine_info is None or self.generation.running or self._closed
                or not self.dock.isVisible() or not self.panel.distribution_box.isVisible()):
            return
        prompt = self.editor.text_before(self.editor.insertion_point())
        self.distribution_feed.request(prompt, self.panel.params())

    def _show_context(self, n_tokens: int) -> None:
        n_ctx = self.engine_info.n_ctx if self.engine_info else 1024
        if n_tokens > n_ctx:
            self.context_label.setText(f"Context {n_ctx} / {n_ctx} (start left out)")
        else:
            self.context_label.setText(f"Context {n_tokens} / {n_ctx}")

    def _update_actions(self) -> None:
        running = self.generation.running
        ready = self.engine_info is not None
        self.generate_action.setEnabled(not running)  # without a model it says what to do
        self.regenerate_action.setEnabled(ready)
        self.stop_action.setEnabled(running)
        document = self.editor.document()
        self.undo_action.setEnabled(not running and document.isUndoAvailable())
        self.redo_action.setEnabled(not running and document.isRedoAvailable())
        for action in (self.cut_action, self.paste_action, self.open_action, self.new_action):
            action.setEnabled(not running)

    # --- writing actions ---------------------------------------------------------------------

    def _make_write_dock(self) -> None:
        """The Write pane (summarise, translate, ask… on the selection), a tab beside the
        sampling panel, shown when an action runs."""
        self.actions_pane = ActionsPane(self.worker, self.editor, self)
        self.actions_pane.message.connect(self.show_message)
        self.editor.escape_pressed.connect(self.actions_pane.stop)
        self.document.replacing.connect(self.actions_pane.forget_target)
        self.write_dock = QDockWidget("Write", self)
        self.write_dock.setObjectName("write-dock")
        self.write_dock.setWidget(self.actions_pane)
        self.write_dock.setFeatures(self.dock.features())
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.write_dock)
        self.tabifyDockWidget(self.dock, self.write_dock)
        self.write_dock.hide()
        self.write_pane_action = self.write_dock.toggleViewAction()
        self.write_pane_action.setText("Write &Pane")
        self.write_pane_action.setShortcut(QKeySequence("Ctrl+J, P"))
        self.write_pane_action.setStatusTip("Show or hide the answers of the writing actions")
        self.open_actions_folder_action = self._action(
            "Open Actions &Folder", "Ctrl+J, F", self.open_actions_folder,
            "Show the folder for your own writing actions (JSON files)")
        self.reload_actions_action = self._action(
            "Re&load Actions", "Ctrl+J, L", self.reload_writing_actions,
            "Read the writing actions' files again")
        problems = self.actions_pane.reload()
        self.addActions(self.actions_pane.commands)  # their shortcuts work with the menu closed
        if problems:
            self.show_message(self._problems_line(problems))

    def reload_writing_actions(self) -> None:
        problems = self.actions_pane.reload()
        self.addActions(self.actions_pane.commands)
        self.menus.fill_write()
        count = len(self.actions_pane.commands)
        self.show_message(self._problems_line(problems) if problems
                          else f"{count} writing actions loaded.")

    @staticmethod
    def _problems_line(problems: list[str]) -> str:
        more = f" (and {len(problems) - 1} more action files)" if len(problems) > 1 else ""
        return f"⚠ Writing action {problems[0]}{more}"

    def open_actions_folder(self) -> None:
        show_folder(user_actions_dir())

    # --- documents ---------------------------------------------------------------------------

    def clear_recent(self) -> None:
        self.settings.set("recent_files", [])
        self.settings.save()

    def _update_title(self) -> None:
        path = self.document.path
        self.setWindowTitle(f"{self.document.name}[*] — Ghostpen")
        self.setWindowFilePath(str(path) if path else "")

    def open_beside(self, recovery: Recovery) -> MainWindow:
        """Open `recovery` in a second window (one document per window), this one untouched.
        It loads its own copy of the model."""
        beside = MainWindow(self.settings, self._engine_factory, offer_recovery=False)
        self.beside_windows.append(beside)
        app = QApplication.instance()
        if app is not None:  # as run_gui does for the first window: unsaved text is kept
            app.aboutToQuit.connect(lambda: beside.shutdown(keep_unsaved=True))
        beside.move(self.pos() + QPoint(48, 48))
        beside.show()
        beside.document.restore(recovery)
        return beside

    # --- models and help ----------------------------------------------------------------------

    def device_providers(self) -> list[str]:
        """The providers the device setting asks for: what a new model is converted for."""
        device = self.settings.get("device")
        if device == "auto":
            return available_providers()
        return [DEVICE_PROVIDERS.get(device, "CPUExecutionProvider")]

    def open_models_dialog(self) -> None:
        """Models ▸ Manage Models…: list, download, add, remove, and choose the model in use."""
        if self._models_dialog is None:
            dialog = ModelDialog(self, current=self.settings.get("last_model"),
                                 providers=self.device_providers())
            dialog.model_chosen.connect(self.use_model)
            dialog.models_changed.connect(self._on_models_changed)
            self._models_dialog = dialog
        self._models_dialog.set_current(self.engine_info.model_name if self.engine_info else "")
        self._models_dialog.refresh()
        self._models_dialog.show()
        self._models_dialog.raise_()
        self._models_dialog.activateWindow()

    def _show_welcome(self) -> None:
        """No model yet: offer exactly Download GPT-2 and Add from folder, above the editor."""
        if self.welcome is None:
            self.welcome = WelcomeWidget(self, providers=self.device_providers())
            self.welcome.model_chosen.connect(self.use_model)
            self._central_layout.insertWidget(1, self.welcome)
        self.welcome.show()

    def use_model(self, name: str) -> None:
        """Switch to the installed model `name`: no restart, the worker loads it."""
        self.settings.set("last_model", name)
        self.settings.save()
        self.load_engine()

    def _on_models_changed(self) -> None:
        if self.engine_info is None:  # the first model arrived: use it
            self.load_engine()

    def open_models_folder(self) -> None:
        show_folder(models_dir())

    def show_shortcuts(self) -> None:
        rows = [(menu, a) for menu, a in self.menus.commands() if not a.shortcut().isEmpty()]
        ShortcutsDialog(rows, self).exec()

    def show_about(self) -> None:
        QMessageBox.about(self, "About Ghostpen",
                          f"<b>Ghostpen {__version__}</b><p>Write with GPT-2 running on this "
                          "computer. Nothing leaves it unless you ask.</p><p>MIT licence.</p>")

    def _toggle_full_screen(self, on: bool) -> None:
        if on:
            self.showFullScreen()
        else:
            self.showNormal()

    def show_message(self, message: str) -> None:
        self.statusBar().showMessage(message, STATUS_MS)

    # --- closing ------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.generation.running:
            self.generation.stop()
        if not self.document.maybe_save():
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def shutdown(self, keep_unsaved: bool = False) -> None:
        """Save settings and stop the worker. Unsaved text is dropped from the autosave after
        the close question; when Qt quits without asking, `keep_unsaved` keeps it."""
        if self._closed:
            return
        self._closed = True
        self._preview_timer.stop()
        self.editor.popup.hide()
        self.save_settings()
        self.autocomplete.shutdown()
        if self._models_dialog is not None:
            self._models_dialog.shutdown()
        if self.welcome is not None:
            self.welcome.jobs.shutdown()
        self.serve_toggle.shutdown()  # before the worker: it may be waiting on a request
        self.worker.shutdown()
        self.takes.close(keep_unsaved)
        self.document.close(keep_unsaved)
