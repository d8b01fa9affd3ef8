"""Ghost-text autocomplete: after a pause in typing, ask the worker for a few short
continuations of the text before the cursor, computed together, and hand them to the editor.

The work runs inside the typing pause: a suggestion is started about one compute-time before
the pause ends (`SuggestionLead`) and held until the pause is over, so it appears when the pause
ends instead of a compute-time later.

When the cursor comes to rest at the end of a line somewhere new (a document opened, a click),
the text before it is read into the model's KV cache in the background, so that the first
suggestion there runs only the keys typed since, not the whole document.

The newest request wins. A keystroke or a cursor move cancels the running request at once (the
worker sets its cancel event), and an answer is shown only if it is the answer to the latest
request *and* the editor still has the edit count and cursor position it was asked for, so a
suggestion never lands at a place or on text it was not made for. Suggestions are asked for
only at the end of a line, never during a generation, and with their own (cooler) sampler.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QSpinBox,
    QWidget,
)

from app.engine.sampling_params import SamplingParams
from app.ui.editor import Editor
from app.ui.generation import GenerationController
from app.ui.ghost_text import SUGGESTION_PARAMS, GhostText, usable_alternatives
from app.ui.presets import PresetStore
from app.ui.settings import Settings
from app.ui.suggestion_timing import SuggestionLead
from app.ui.worker import EngineWorker

# Allowed ranges; a hand-edited settings file is clamped into them.
LIMITS: dict[str, tuple[int, int]] = {
    "suggestion_delay_ms": (0, 5000),
    "suggestion_tokens": (1, 64),
    "suggestion_alternatives": (1, 9),
}
BUILTIN_LABEL = "Suggestions (built in: cool, temperature 0.5)"
# A cursor that rests this long somewhere new has the text before it read ahead of time.
WARM_DELAY_MS = 400


@dataclass(frozen=True)
class _Request:
    request_id: int
    revision: int  # the editor's edit count it was asked at
    position: int  # the cursor position it was asked at
    sent_at: float  # time.monotonic() when it was sent
    show_at: float | None  # not shown before this time.monotonic(): the end of the pause


class AutocompleteController(QObject):
    message = Signal(str)  # one line for the status bar

    def __init__(self, worker: EngineWorker, editor: Editor, generation: GenerationController,
                 settings: Settings, presets: PresetStore, window: QWidget) -> None:
        super().__init__(window)
        self._worker = worker
        self._editor = editor
        self._generation = generation
        self._settings = settings
        self._presets = presets
        self._window = window
        self._engine_ready = False
        self._closed = False
        self._active: _Request | None = None
        self._held: tuple[_Request, tuple[str, ...]] | None = None  # ready before the pause ended
        self._pause_ends_at: float | None = None
        self.lead = SuggestionLead()
        self.dialog: SuggestionSettingsDialog | None = None
        # Both timers are precise: the pause is a setting, and the person should get it.
        self._timer = QTimer(self, singleShot=True)  # starts the work, inside the pause
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(lambda: self._request(self._pause_ends_at))
        self._show_timer = QTimer(self, singleShot=True)  # shows a held suggestion
        self._show_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._show_timer.timeout.connect(self._show_held)
        self._warm_timer = QTimer(self, singleShot=True)  # reads the text ahead, once at rest
        self._warm_timer.timeout.connect(self._warm)
        self._make_actions()

        editor.typed.connect(self._on_typed)
        editor.cursorPositionChanged.connect(self._on_cursor_moved)
        editor.escape_pressed.connect(self.cancel)
        editor.ghost_changed.connect(self._update_actions)
        generation.running_changed.connect(self._on_running_changed)
        worker.engine_loaded.connect(self._on_engine_loaded)
        worker.engine_failed.connect(lambda *_: self._set_engine_ready(False))
        worker.suggestions_ready.connect(self._on_ready)
        worker.suggestions_failed.connect(self._on_failed)
        self.toggle_action.setChecked(self.enabled)
        self._update_actions()

    # --- commands -----------------------------------------------------------------------------

    def _make_actions(self) -> None:
        def action(text: str, keys: str, slot: Any, tip: str, on_editor: bool = True) -> QAction:
            act = QAction(text, self._window)
            if keys:
                act.setShortcut(QKeySequence(keys))
            if on_editor:  # keys that mean something else without a suggestion: editor only
                act.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
                self._editor.addAction(act)
            act.setStatusTip(tip)
            act.setToolTip(f"{tip} ({keys})" if keys else tip)
            act.triggered.connect(slot)
            return act

        self.toggle_action = action("Ghost-Text &Suggestions", "Ctrl+Shift+G", self.set_enabled,
                                    "Offer the next words in grey after a pause in typing "
                                    "(Esc hides them)",
                                    on_editor=False)
        self.toggle_action.setCheckable(True)
        self.accept_action = action("&Accept Suggestion", "Tab", self._editor.accept_ghost,
                                    "Write the whole suggestion")
        self.accept_word_action = action("Accept Next &Word", "Ctrl+Right",
                                         self._editor.accept_ghost_word,
                                         "Write the suggestion's next word")
        self.next_action = action("&Next Suggestion", "Alt+]",
                                  lambda: self._editor.cycle_ghost(1),
                                  "Show the next of the suggestions")
        self.previous_action = action("&Previous Suggestion", "Alt+[",
                                      lambda: self._editor.cycle_ghost(-1),
                                      "Show the previous of the suggestions")
        self.settings_action = action("Suggestion S&ettings…", "Ctrl+Alt+G", self.open_settings,
                                      "Delay, length, number and sampler of suggestions",
                                      on_editor=False)

    def _update_actions(self) -> None:
        ghost = self._editor.ghost
        self.accept_action.setEnabled(ghost is not None)
        self.accept_word_action.setEnabled(ghost is not None)
        several = ghost is not None and len(ghost.alternatives) > 1
        self.next_action.setEnabled(several)
        self.previous_action.setEnabled(several)

    # --- settings -----------------------------------------------------------------------------

    def setting(self, key: str) -> Any:
        value = self._settings.get(key)
        if key in LIMITS:
            low, high = LIMITS[key]
            value = min(high, max(low, value))
        return value

    @property
    def enabled(self) -> bool:
        return bool(self._settings.get("suggestions"))

    def set_enabled(self, on: bool) -> None:
        self._settings.set("suggestions", bool(on))
        self._settings.save()
        self.toggle_action.setChecked(bool(on))
        if not on:
            self.cancel()
            self._editor.clear_ghost()
        self.message.emit("Suggestions on: they appear after a pause in typing." if on
                          else "Suggestions off.")

    def apply_settings(self, values: dict[str, Any]) -> None:
        """Store new suggestion settings (keys from settings.DEFAULTS) and use them from now."""
        for key, value in values.items():
            if key != "suggestions":
                self._settings.set(key, value)
        if "suggestions" in values and values["suggestions"] != self.enabled:
            self.set_enabled(values["suggestions"])  # saves too
        else:
            self._settings.save()

    def params(self) -> SamplingParams:
        """The sampler for suggestions: the chosen preset, else the built-in cool one."""
        name = self._settings.get("suggestion_preset")
        params = self._presets.get(name) if name and name in self._presets else SUGGESTION_PARAMS
        return params.replace(max_new_tokens=self.setting("suggestion_tokens"))

    def preset_choices(self) -> list[tuple[str, str]]:
        """(label, setting value) for each sampler suggestions may use."""
        return [(BUILTIN_LABEL, ""), *((name, name) for name in self._presets.names())]

    def open_settings(self) -> None:
        if self.dialog is None:
            dialog = SuggestionSettingsDialog(self, self._window)
            dialog.accepted.connect(lambda: self.apply_settings(dialog.values()))
            self.dialog = dialog
        self.dialog.load()
        self.dialog.open()

    # --- requests -----------------------------------------------------------------------------

    def _may_suggest(self) -> bool:
        return (self.enabled and self._engine_ready and not self._closed
                and not self._generation.running and not self._editor.generating
                and not self._editor.isReadOnly())

    def _on_cursor_moved(self) -> None:
        self.cancel()
        self._warm_timer.start(WARM_DELAY_MS)

    def _suggestion_prompt(self) -> tuple[str, int] | None:
        """(text before the cursor, cursor position) where a suggestion may be asked for now,
        else None."""
        if not self._may_suggest():
            return None
        cursor = self._editor.textCursor()
        if cursor.hasSelection() or not cursor.atBlockEnd():
            return None  # painted text would cover what follows the cursor on its line
        prompt = self._editor.text_before(cursor.position())
        return (prompt, cursor.position()) if prompt.strip() else None

    def _warm(self) -> None:
        asked = self._suggestion_prompt()  # only where a suggestion could be asked for
        if asked is not None:
            # The room a suggestion leaves, so that both agree on the window the cache holds.
            self._worker.warm(asked[0], self.setting("suggestion_tokens") + 1)

    def _on_typed(self) -> None:
        self._warm_timer.stop()  # the suggestion after the pause reads the text itself
        self.cancel()
        if self._may_suggest():
            delay_ms = self.setting("suggestion_delay_ms")
            self._pause_ends_at = time.monotonic() + delay_ms / 1000
            self._timer.start(delay_ms - self.lead.lead_ms(delay_ms))

    def request_now(self) -> None:
        """Ask for suggestions at the cursor now, and show them as soon as they are ready."""
        self._request(show_at=None)

    def _request(self, show_at: float | None) -> None:
        self._timer.stop()
        asked = None if self._editor.ghost is not None else self._suggestion_prompt()
        if asked is None:
            return
        prompt, position = asked
        request_id = self._worker.suggest(
            prompt, self.params(), self.setting("suggestion_alternatives"),
            self.setting("suggestion_tokens"), self.setting("suggestion_stop_at_sentence_end"))
        self._active = _Request(request_id, self._editor.revision, position, time.monotonic(),
                                show_at)

    def cancel(self) -> None:
        """No suggestion from anything asked so far: stop the pause timer and the running run,
        and drop one held for the end of the pause."""
        self._timer.stop()
        self._show_timer.stop()
        self._held = None
        if self._active is not None:
            self._active = None
            self._worker.cancel_suggestion()

    @property
    def scheduled(self) -> bool:
        """The typing pause is being timed: a request follows unless a key comes first."""
        return self._timer.isActive()

    @property
    def waiting(self) -> bool:
        """A suggestion was asked for and has not been shown yet (running, or ready and held
        for the end of the pause)."""
        return self._active is not None or self._held is not None

    def _on_ready(self, request_id: int, suggestions: list[Any]) -> None:
        request = self._active
        if request is None or request_id != request.request_id:
            return  # an answer to an older request
        self._active = None
        now = time.monotonic()
        self.lead.record((now - request.sent_at) * 1000)
        texts = usable_alternatives([s.text for s in suggestions])
        if not texts:
            return
        if request.show_at is not None and now < request.show_at:
            self._held = (request, texts)
            self._show_timer.start(math.ceil((request.show_at - now) * 1000))  # never early
        else:
            self._show(request, texts)

    def _show_held(self) -> None:
        if self._held is not None:
            request, texts = self._held
            self._held = None
            self._show(request, texts)

    def _show(self, request: _Request, texts: tuple[str, ...]) -> None:
        # The editor refuses a ghost made for another position or another edit count.
        if self._may_suggest():
            self._editor.show_ghost(GhostText(request.position, request.revision, texts))

    def _on_failed(self, request_id: int, message: str) -> None:
        if self._active is not None and request_id == self._active.request_id:
            self._active = None
            self.message.emit(f"⚠ {message}")

    def _on_running_changed(self, running: bool) -> None:
        if running:
            self.cancel()
            self._editor.clear_ghost()

    def _on_engine_loaded(self, _info: object) -> None:
        self.lead.forget()  # another model, another speed
        self._set_engine_ready(True)
        self._warm_timer.start(0)  # the new model has read nothing yet

    def _set_engine_ready(self, ready: bool) -> None:
        self._engine_ready = ready
        if not ready:
            self.cancel()

    def shutdown(self) -> None:
        self._closed = True
        self._warm_timer.stop()
        self.cancel()


class SuggestionSettingsDialog(QDialog):
    """Generate ▸ Suggestions ▸ Suggestion Settings: every suggestion setting in one form."""

    def __init__(self, controller: AutocompleteController, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("suggestion-settings")
        self.setWindowTitle("Suggestion Settings")
        self._controller = controller
        self.enabled_box = QCheckBox("Show suggestions while typing", self)
        self.delay_box = self._spin("suggestion_delay_ms", " ms", 50)
        self.delay_box.setToolTip("How long a pause in typing brings a suggestion")
        self.tokens_box = self._spin("suggestion_tokens", " tokens", 1)
        self.tokens_box.setToolTip("The most a suggestion can be: a token is about ¾ of a word")
        self.sentence_box = QCheckBox("End suggestions at the end of a sentence or line", self)
        self.alternatives_box = self._spin("suggestion_alternatives", "", 1)
        self.alternatives_box.setToolTip("How many suggestions are made together; Alt+] and "
                                         "Alt+[ show them in turn")
        self.preset_box = QComboBox(self)
        self.preset_box.setToolTip("The sampler settings suggestions use; cooler ones give the "
                                   "likelier words")
        form = QFormLayout(self)
        form.addRow(self.enabled_box)
        form.addRow("&Pause before suggesting:", self.delay_box)
        form.addRow("&Length, at most:", self.tokens_box)
        form.addRow(self.sentence_box)
        form.addRow("&Suggestions to choose from:", self.alternatives_box)
        form.addRow("Sa&mpler:", self.preset_box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.buttons = buttons
        for widget in (self.enabled_box, self.delay_box, self.tokens_box, self.sentence_box,
                       self.alternatives_box, self.preset_box):
            widget.setAccessibleDescription(widget.toolTip())

    def _spin(self, key: str, suffix: str, step: int) -> QSpinBox:
        box = QSpinBox(self)
        box.setRange(*LIMITS[key])
        box.setSingleStep(step)
        box.setSuffix(suffix)
        return box

    def load(self) -> None:
        c = self._controller
        self.enabled_box.setChecked(c.enabled)
        self.delay_box.setValue(c.setting("suggestion_delay_ms"))
        self.tokens_box.setValue(c.setting("suggestion_tokens"))
        self.sentence_box.setChecked(c.setting("suggestion_stop_at_sentence_end"))
        self.alternatives_box.setValue(c.setting("suggestion_alternatives"))
        self.preset_box.clear()
        for label, value in c.preset_choices():
            self.preset_box.addItem(label, value)
        index = self.preset_box.findData(c.setting("suggestion_preset"))
        self.preset_box.setCurrentIndex(max(0, index))

    def values(self) -> dict[str, Any]:
        return {
            "suggestions": self.enabled_box.isChecked(),
            "suggestion_delay_ms": self.delay_box.value(),
            "suggestion_tokens": self.tokens_box.value(),
            "suggestion_stop_at_sentence_end": self.sentence_box.isChecked(),
            "suggestion_alternatives": self.alternatives_box.value(),
            "suggestion_preset": str(self.preset_box.currentData() or ""),
        }
