"""The Write pane: run a writing action (summarise, translate, ask…) on the selection, or on the
paragraph at the cursor, and offer the answer beside the text.

The answer streams into the pane from the engine's thread (the worker's `action` jobs) and is
only a suggestion: the document changes when the writer presses Insert After or Replace (one
undo step each), never before. The templates and their checks live in app/writing_actions.py.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import (
    QAction,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QPalette,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.engine.events import GenerationStats, TokenEvent
from app.engine.protocol import TextEngine
from app.ui.editor import Editor, utf16_len
from app.ui.worker import EngineWorker
from app.writing_actions import (
    ActionInput,
    WritingAction,
    finish_text,
    is_complete,
    load_actions,
    paragraph_at,
    render,
)

# Chords (Ctrl+J, then a letter) for the built-in actions; a person's own get Ctrl+J, 1…9.
ACTION_KEYS = {"summarise": "Ctrl+J, S", "translate": "Ctrl+J, T", "ask": "Ctrl+J, A",
               "continue": "Ctrl+J, C", "rephrase": "Ctrl+J, R"}
STOP_REASONS = {"eos": "the model ended its answer", "stop_string": "the answer ended",
                "max_new_tokens": "reached the most it may write",
                "context_full": "the context is full", "cancelled": "stopped"}
PREVIEW_CHARS = 60


class ActionsPane(QWidget):
    message = Signal(str)  # a one-line note for the status bar

    def __init__(self, worker: EngineWorker, editor: Editor, parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.setObjectName("actions-pane")
        self._worker = worker
        self._editor = editor
        self.actions_by_key: dict[str, WritingAction] = {}
        self.commands: list[QAction] = []  # one per action, for the menus
        self._active: int | None = None  # request id of the run whose tokens are wanted
        self._action: WritingAction | None = None  # of the running or the last run
        self._raw = ""
        self._target: QTextCursor | None = None  # what the answer is for; follows edits

        self.action_box = QComboBox(self)
        self.action_box.setAccessibleName("Action")
        self.action_box.currentIndexChanged.connect(self._show_action)
        self.run_button = QPushButton("&Run", self)
        self.run_button.setToolTip("Run the action on the selection, or on the paragraph at "
                                   "the cursor")
        self.run_button.clicked.connect(lambda: self.run(self.action_box.currentData()))
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip("Stop writing the answer (Esc)")
        self.stop_button.clicked.connect(self.stop)
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        self.description.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.language_box = QComboBox(self)
        self.language_box.setAccessibleName("Language")
        self._language = ""  # the last language chosen: kept while other actions are shown
        self.language_box.currentTextChanged.connect(self._remember_language)
        self.question_edit = QLineEdit(self)
        self.question_edit.setAccessibleName("Question")
        self.question_edit.setPlaceholderText("What would you like to know about the text?")
        self.question_edit.setClearButtonEnabled(True)
        self.question_edit.returnPressed.connect(lambda: self.run(self.action_box.currentData()))
        self.source_label = QLabel(self)
        self.source_label.setWordWrap(True)
        self.source_label.setTextFormat(Qt.TextFormat.PlainText)
        self.result = QPlainTextEdit(self)
        self.result.setObjectName("action-result")
        self.result.setAccessibleName("Answer")
        self.result.setPlaceholderText(
            "Select some text (or put the cursor in a paragraph), choose an action and press "
            "Run. The answer appears here; nothing changes in your document until you insert "
            "it.")
        self.result.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.insert_button = QPushButton("&Insert After", self)
        self.insert_button.setToolTip("Put the answer after the text it was made from")
        self.insert_button.clicked.connect(self.insert_after)
        self.replace_button = QPushButton("Re&place", self)
        self.replace_button.setToolTip("Put the answer in place of the text it was made from")
        self.replace_button.clicked.connect(self.replace)
        self.copy_button = QPushButton("&Copy", self)
        self.copy_button.setToolTip("Copy the answer to the clipboard")
        self.copy_button.clicked.connect(self.copy)

        top = QHBoxLayout()
        top.addWidget(self.action_box, 1)
        top.addWidget(self.run_button)
        top.addWidget(self.stop_button)
        self.options = QFormLayout()
        self.options.addRow("Into:", self.language_box)
        self.options.addRow("Question:", self.question_edit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.insert_button)
        buttons.addWidget(self.replace_button)
        buttons.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.description)
        layout.addLayout(self.options)
        layout.addWidget(self.source_label)
        layout.addWidget(self.result, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

        worker.action_token.connect(self._on_token)
        worker.action_finished.connect(self._on_finished)
        worker.action_failed.connect(self._on_failed)
        self._update_buttons()

    # --- the actions ------------------------------------------------------------------------

    def reload(self) -> list[str]:
        """Load the built-in and the person's own actions again; returns one line per file
        that could not be used. `commands` is rebuilt: the menus show the new ones."""
        loaded = load_actions()
        current = self.action_box.currentData()
        self.actions_by_key = {a.key: a for a in loaded.actions}
        for command in self.commands:
            command.deleteLater()
        self.commands = []
        self.action_box.blockSignals(True)
        self.action_box.clear()
        numbers = [str(n) for n in range(1, 10)]
        for action in loaded.actions:
            self.action_box.addItem(action.name, action.key)
            command = QAction(f"{action.name}…" if action.uses("question") else action.name,
                              self)
            key = ACTION_KEYS.get(action.key)
            if key is None and numbers:
                key = f"Ctrl+J, {numbers.pop(0)}"
            if key is not None:
                command.setShortcut(QKeySequence(key))
            command.setStatusTip(action.description or action.name)
            command.triggered.connect(lambda _=False, k=action.key: self.run(k))
            self.commands.append(command)
        index = self.action_box.findData(current)
        self.action_box.setCurrentIndex(max(0, index))
        self.action_box.blockSignals(False)
        self._show_action()
        return loaded.problems

    def select_action(self, key: str) -> None:
        index = self.action_box.findData(key)
        if index >= 0:
            self.action_box.setCurrentIndex(index)

    def current_action(self) -> WritingAction | None:
        return self.actions_by_key.get(self.action_box.currentData())

    def _show_action(self) -> None:
        action = self.current_action()
        self.description.setText(action.description if action else "")
        languages = list(action.languages) if action else []
        chosen = self._language
        self.language_box.clear()
        self.language_box.addItems(languages)
        if chosen in languages:
            self.language_box.setCurrentText(chosen)
        self.options.setRowVisible(self.language_box, bool(languages))
        self.options.setRowVisible(self.question_edit,
                                   action is not None and action.uses("question"))

    def _remember_language(self, language: str) -> None:
        if language:
            self._language = language

    # --- running ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._active is not None

    def run(self, key: str) -> None:
        """Run the action `key` on the selection, or on the paragraph at the cursor."""
        action = self.actions_by_key.get(key)
        if action is None:
            return
        if self.current_action() is not action:
            self.select_action(key)
        self._reveal()  # what happens next, an answer or what is missing, shows there
        if action.uses("question") and not self.question_edit.text().strip():
            self.status.setText("Type your question, then press Enter.")
            self.question_edit.setFocus()
            return
        given, start, end = self._input(action)
        if action.uses("selection") and not given.selection.strip():
            self.status.setText("Select some text first, or put the cursor in a paragraph.")
            return
        if self.running:
            self.stop()
        target = QTextCursor(self._editor.document())
        target.setPosition(start)
        target.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        self._target = target
        self._action = action
        self._raw = ""
        self.result.setPlainText("")
        self.result.setReadOnly(True)
        self.source_label.setText(self._source_text(action, given))

        def build_prompt(engine: TextEngine) -> str:  # on the engine's thread: it counts tokens
            return render(action, given, engine.count_tokens, engine.info.n_ctx)

        self._active = self._worker.run_action(build_prompt, action.params)
        self.status.setText("Writing… (Esc stops)")
        self._update_buttons()

    def _reveal(self) -> None:
        dock = self.parentWidget()
        if isinstance(dock, QDockWidget):
            dock.show()
            dock.raise_()

    def _source_text(self, action: WritingAction, given: ActionInput) -> str:
        """What the answer is made from, in a line: the writer sees what Insert After follows."""
        what = "the selection" if self._editor.textCursor().hasSelection() else "the paragraph"
        preview = " ".join(given.selection.split())
        if len(preview) > PREVIEW_CHARS:
            preview = preview[: PREVIEW_CHARS - 1] + "…"
        if action.uses("document") and not action.uses("selection"):
            return f"From the document, around {what}: “{preview}”"
        return f"From {what}: “{preview}”"

    def _input(self, action: WritingAction) -> tuple[ActionInput, int, int]:
        """What the action runs on, and where that sits in the editor (Qt positions)."""
        editor = self._editor
        document = editor.toPlainText()
        cursor = editor.textCursor()
        if cursor.hasSelection():
            start, end = cursor.selectionStart(), cursor.selectionEnd()
            first, last = len(editor.text_before(start)), len(editor.text_before(end))
        else:
            first, last = paragraph_at(document, len(editor.text_before(cursor.position())))
            start, end = utf16_len(document[:first]), utf16_len(document[:last])
        given = ActionInput(selection=document[first:last], document=document, start=first,
                            end=last, question=self.question_edit.text(),
                            language=self.language_box.currentText())
        return given, start, end

    def stop(self) -> None:
        """End the run now: what has come stays, later tokens of this run are dropped."""
        if self._active is None:
            return
        self._worker.stop_action()
        self._active = None
        self._show_finished("Stopped.")

    def forget_target(self) -> None:
        """Another document replaces this one: the answer can be copied, not put back."""
        self.stop()
        self._target = None
        self._update_buttons()

    def _on_token(self, request_id: int, event: TokenEvent) -> None:
        if request_id != self._active or self._action is None:
            return
        self._raw += event.text
        self.result.setPlainText(finish_text(self._action, self._raw))
        self.result.moveCursor(QTextCursor.MoveOperation.End)
        if is_complete(self._action, self._raw):  # the rest would be cut anyway
            self._worker.stop_action()
            self._active = None
            self._show_finished("Done.")

    def _on_finished(self, request_id: int, stats: GenerationStats) -> None:
        if request_id != self._active:
            return
        self._active = None
        reason = STOP_REASONS.get(stats.stop_reason, stats.stop_reason or "done")
        self._show_finished(f"Done: {stats.new_tokens} tokens, {reason}.")

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id != self._active:
            return
        self._active = None
        self._show_finished(f"⚠ {message}")

    def _show_finished(self, status: str) -> None:
        if self._action is not None and self._raw and not self.result.toPlainText().strip():
            status = f"{status} The answer was empty; try again or select other text."
        self.status.setText(status)
        self.result.setReadOnly(False)  # the writer may touch up the answer before inserting
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.running
        has_answer = bool(self.result.toPlainText().strip())
        self.stop_button.setEnabled(running)
        self.run_button.setEnabled(not running and bool(self.actions_by_key))
        for button in (self.insert_button, self.replace_button, self.copy_button):
            button.setEnabled(not running and has_answer)
        self.insert_button.setEnabled(self.insert_button.isEnabled() and self._target is not None)
        self.replace_button.setEnabled(self.replace_button.isEnabled()
                                       and self._target is not None)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.running:
            self.stop()
            event.accept()
            return
        super().keyPressEvent(event)

    # --- using the answer -------------------------------------------------------------------

    def answer(self) -> str:
        return self.result.toPlainText()

    def insert_after(self) -> None:
        """Put the answer after the text it was made from, as one undo step."""
        target = self._usable_target()
        if target is None:
            return
        end = target.selectionEnd()
        text = self.answer()
        before = self._editor.text_before(end)[-1:]
        if before and not before.isspace() and not text[:1].isspace():
            text = " " + text  # "…end of the selection." + "Summary" would run together
        self._editor.replace_range(end, end, text)
        self._select_target(end, end + utf16_len(text))

    def replace(self) -> None:
        """Put the answer in place of the text it was made from, as one undo step."""
        target = self._usable_target()
        if target is None:
            return
        start, text = target.selectionStart(), self.answer()
        self._editor.replace_range(start, target.selectionEnd(), text)
        self._select_target(start, start + utf16_len(text))

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.answer())
        self.message.emit("The answer is on the clipboard.")

    def _usable_target(self) -> QTextCursor | None:
        if self._target is None or self.running or not self.answer():
            return None
        if self._editor.isReadOnly():
            self.message.emit("The model is writing in the document; wait for it or press "
                              "Esc, then insert.")
            return None
        return self._target

    def _select_target(self, start: int, end: int) -> None:
        """The inserted answer is what a second Replace would replace."""
        target = QTextCursor(self._editor.document())
        target.setPosition(start)
        target.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        self._target = target
