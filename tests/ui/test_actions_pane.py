"""The Write menu and pane in the real window: an action on the selection streams its answer
into the pane, and only Insert After / Replace change the document, one undo step each."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QGuiApplication, QTextCursor
from pytestqt.qtbot import QtBot

from app.engine.events import TokenEvent
from app.engine.fake import FakeEngine
from app.engine.sampling_params import SamplingParams
from app.ui.main_window import MainWindow

TEXT = "The storm came in from the sea.\n\nThe town slept through it."


class RecordingEngine(FakeEngine):
    """The fake engine, slowed so that streaming shows, keeping the prompts it was given."""

    def __init__(self) -> None:
        super().__init__(token_delay_s=0.01)
        self.prompts: list[str] = []

    def generate(self, prompt: str, params: SamplingParams,
                 cancel: threading.Event | None = None, n_alternatives: int = 10,
                 ) -> Iterator[TokenEvent]:
        self.prompts.append(prompt)
        return super().generate(prompt, params, cancel, n_alternatives)


@pytest.fixture
def engine() -> RecordingEngine:
    return RecordingEngine()


@pytest.fixture
def window(make_window: Callable[..., MainWindow], engine: RecordingEngine) -> MainWindow:
    window = make_window(lambda: engine)
    window.editor.set_text(TEXT)
    return window


def select(window: MainWindow, start: int, end: int) -> None:
    cursor = window.editor.textCursor()
    cursor.setPosition(start)
    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    window.editor.setTextCursor(cursor)


def write_command(window: MainWindow, text: str) -> QAction:
    """The Write menu's command `text`."""
    return next(a for a in window.menus.write_menu.actions() if a.text() == text)


def summarise_first_sentence(qtbot: QtBot, window: MainWindow) -> str:
    """Select the first paragraph, press Ctrl+J, S and wait for the answer."""
    select(window, 0, len("The storm came in from the sea."))
    window.editor.setFocus()
    qtbot.keyClick(window.editor, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window.editor, Qt.Key.Key_S)
    pane = window.actions_pane
    assert pane.running
    qtbot.waitUntil(lambda: not pane.running, timeout=10000)
    return pane.answer()


def test_summarise_streams_into_the_pane_and_leaves_the_document_alone(
        qtbot: QtBot, window: MainWindow, engine: RecordingEngine) -> None:
    pane = window.actions_pane
    assert window.write_dock.isHidden()
    select(window, 0, len("The storm came in from the sea."))
    write_command(window, "Summarise").trigger()
    assert window.write_dock.isVisible()
    qtbot.waitUntil(lambda: len(pane.answer()) > 0 and pane.running, timeout=5000)
    partial = pane.answer()
    qtbot.waitUntil(lambda: not pane.running, timeout=10000)
    assert pane.answer().startswith(partial) and len(pane.answer()) > len(partial)
    assert pane.status.text() == "Done: 100 tokens, reached the most it may write."
    assert engine.prompts[-1] == "The storm came in from the sea.\nTL;DR:"
    assert window.editor.toPlainText() == TEXT
    assert not window.editor.document().isUndoAvailable()
    assert pane.insert_button.isEnabled() and pane.replace_button.isEnabled()


def test_insert_after_puts_the_answer_after_the_selection_as_one_undo_step(
        qtbot: QtBot, window: MainWindow) -> None:
    answer = summarise_first_sentence(qtbot, window)
    assert window.editor.toPlainText() == TEXT
    qtbot.mouseClick(window.actions_pane.insert_button, Qt.MouseButton.LeftButton)
    first = "The storm came in from the sea."
    assert window.editor.toPlainText() == TEXT.replace(first, f"{first} {answer}")
    window.editor.undo()
    assert window.editor.toPlainText() == TEXT
    assert not window.editor.document().isUndoAvailable()


def test_replace_puts_the_answer_in_place_of_the_selection_as_one_undo_step(
        qtbot: QtBot, window: MainWindow) -> None:
    answer = summarise_first_sentence(qtbot, window)
    window.editor.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(window.editor, " More.")  # the answer's place follows the writer's edits
    qtbot.mouseClick(window.actions_pane.replace_button, Qt.MouseButton.LeftButton)
    expected = TEXT.replace("The storm came in from the sea.", answer) + " More."
    assert window.editor.toPlainText() == expected
    window.editor.undo()
    assert window.editor.toPlainText() == TEXT + " More."


def test_copy_puts_the_answer_on_the_clipboard_only(qtbot: QtBot, window: MainWindow) -> None:
    answer = summarise_first_sentence(qtbot, window)
    qtbot.mouseClick(window.actions_pane.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == answer
    assert window.editor.toPlainText() == TEXT


def test_without_a_selection_the_paragraph_at_the_cursor_is_used(
        qtbot: QtBot, window: MainWindow, engine: RecordingEngine) -> None:
    select(window, len(TEXT) - 3, len(TEXT) - 3)
    window.actions_pane.run("summarise")
    qtbot.waitUntil(lambda: not window.actions_pane.running, timeout=10000)
    assert engine.prompts[-1] == "The town slept through it.\nTL;DR:"
    qtbot.mouseClick(window.actions_pane.insert_button, Qt.MouseButton.LeftButton)
    assert window.editor.toPlainText().startswith(TEXT + " ")


def test_esc_stops_the_answer_and_nothing_more_arrives(qtbot: QtBot,
                                                      window: MainWindow) -> None:
    pane = window.actions_pane
    select(window, 0, 10)
    pane.run("continue")
    qtbot.waitUntil(lambda: len(pane.answer()) >= 2, timeout=5000)
    qtbot.keyClick(pane.result, Qt.Key.Key_Escape)
    assert not pane.running and pane.status.text() == "Stopped."
    stopped_at = pane.answer()
    qtbot.wait(150)
    assert pane.answer() == stopped_at and len(stopped_at) < 100
    assert window.editor.toPlainText() == TEXT


def test_esc_in_the_document_stops_the_answer_too(qtbot: QtBot, window: MainWindow) -> None:
    pane = window.actions_pane
    select(window, 0, 10)
    pane.run("continue")
    qtbot.waitUntil(lambda: len(pane.answer()) >= 2, timeout=5000)
    qtbot.keyClick(window.editor, Qt.Key.Key_Escape)
    assert not pane.running and pane.status.text() == "Stopped."


def test_reload_actions_picks_up_a_new_file(qtbot: QtBot, window: MainWindow,
                                            own_folders: Path) -> None:
    folder = own_folders / "config" / "actions"
    folder.mkdir(parents=True)
    (folder / "headline.json").write_text(json.dumps(
        {"name": "Headline", "template": "{selection}\nHeadline:"}), encoding="utf-8")
    assert "Headline" not in [a.text() for a in window.menus.write_menu.actions()]
    window.reload_actions_action.trigger()
    assert "Headline" in [a.text() for a in window.menus.write_menu.actions()]
    assert window.statusBar().currentMessage() == "6 writing actions loaded."
    select(window, 0, 9)
    write_command(window, "Headline").trigger()
    qtbot.waitUntil(lambda: not window.actions_pane.running, timeout=10000)
    assert window.actions_pane.answer()


def test_ask_sends_the_document_and_the_question(qtbot: QtBot, window: MainWindow,
                                                 engine: RecordingEngine) -> None:
    pane = window.actions_pane
    select(window, 3, 3)
    write_command(window, "Ask…").trigger()
    assert pane.current_action() is not None and pane.current_action().name == "Ask"
    assert pane.question_edit.isVisible() and not pane.language_box.isVisible()
    assert "question" in pane.status.text()  # nothing runs without one
    qtbot.keyClicks(pane.question_edit, "Where did the storm come from?")
    qtbot.keyClick(pane.question_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not pane.running, timeout=10000)
    assert engine.prompts[-1] == f"{TEXT}\nQ: Where did the storm come from?\nA:"
    assert pane.answer()


def test_translate_uses_the_language_chosen_in_the_pane(qtbot: QtBot, window: MainWindow,
                                                        engine: RecordingEngine) -> None:
    pane = window.actions_pane
    pane.select_action("translate")
    assert pane.language_box.isVisibleTo(pane) and not pane.question_edit.isVisibleTo(pane)
    pane.language_box.setCurrentText("German")
    select(window, 0, 9)
    pane.run("translate")
    qtbot.waitUntil(lambda: not pane.running, timeout=10000)
    assert engine.prompts[-1].endswith("\nThe storm =")
    assert "Das Wetter" in engine.prompts[-1]
    pane.select_action("summarise")
    pane.select_action("translate")
    assert pane.language_box.currentText() == "German"  # still the writer's choice


def test_the_editors_context_menu_offers_the_actions(window: MainWindow) -> None:
    menu = window.editor.context_menu(window.editor.rect().center())
    submenus = [a.menu() for a in menu.actions() if a.menu() is not None]
    assert [m.title() for m in submenus] == ["&Write"]
    assert "Summarise" in [a.text() for a in submenus[0].actions()]
    menu.deleteLater()


def test_an_action_does_not_disturb_a_generation_in_the_document(
        qtbot: QtBot, window: MainWindow) -> None:
    pane = window.actions_pane
    select(window, 0, 10)
    pane.run("summarise")
    window.editor.moveCursor(QTextCursor.MoveOperation.End)
    window.generation.generate()
    qtbot.waitUntil(lambda: not pane.running and not window.generation.running, timeout=20000)
    assert pane.answer() and pane.status.text().startswith("Done")
    assert window.editor.toPlainText().startswith(TEXT)
    assert len(window.editor.toPlainText()) > len(TEXT)  # the generation wrote its part


def test_a_bad_action_file_is_named_in_one_line_and_the_rest_load(
        make_window: Callable[..., MainWindow], own_folders: Path) -> None:
    folder = own_folders / "config" / "actions"
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text('{"name": "Broken"}', encoding="utf-8")
    (folder / "headline.json").write_text(json.dumps(
        {"name": "Headline", "template": "{selection}\nHeadline:"}), encoding="utf-8")
    window = make_window()
    assert window.statusBar().currentMessage() == (
        '⚠ Writing action broken.json: "template" is missing; e.g. ["{selection}", "TL;DR:"].')
    names = [a.text() for a in window.menus.write_menu.actions()]
    assert "Headline" in names and "Summarise" in names
    headline = window.actions_pane.commands[names.index("Headline")]
    assert headline.shortcut().toString() == "Ctrl+J, 1"


@pytest.fixture(scope="module")
def tiny_model_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose models/ holds a tiny random GPT-2, converted by our own exporter."""
    pytest.importorskip("onnxruntime")
    from models.export import export_model
    from models.random import write_random_checkpoint

    root = tmp_path_factory.mktemp("tiny")
    write_random_checkpoint("tiny", root / "checkpoint", seed=0)
    export_model(root / "checkpoint", root / "data" / "models" / "tiny")
    return root / "data"


def test_summarise_with_the_real_tiny_model_end_to_end(
        qtbot: QtBot, tiny_model_data: Path, monkeypatch: pytest.MonkeyPatch,
        make_window: Callable[..., MainWindow]) -> None:
    monkeypatch.setenv("GHOSTPEN_DATA_DIR", str(tiny_model_data))
    window = make_window(engine=None, wait_for_engine=False)  # the default factory
    qtbot.waitUntil(lambda: window.engine_info is not None, timeout=20000)
    window.editor.set_text(TEXT)
    select(window, 0, len("The storm came in from the sea."))
    pane = window.actions_pane
    tokens: list[str] = []
    window.worker.action_token.connect(lambda _, event: tokens.append(event.text))
    pane.run("summarise")
    qtbot.waitUntil(lambda: not pane.running, timeout=20000)
    assert pane.status.text().startswith("Done"), pane.status.text()
    assert tokens  # the model wrote, token by token, into the pane
    assert pane.answer() and pane.answer() == pane.answer().strip()
    assert "".join(tokens).strip().startswith(pane.answer())  # at most its first sentences
    assert window.editor.toPlainText() == TEXT
    qtbot.mouseClick(pane.replace_button, Qt.MouseButton.LeftButton)
    assert window.editor.toPlainText() == TEXT.replace(
        "The storm came in from the sea.", pane.answer())


def test_a_selection_too_long_for_the_model_says_so_in_the_pane(qtbot: QtBot,
                                                                window: MainWindow) -> None:
    window.editor.set_text("word " * 400)
    select(window, 0, 2000)
    pane = window.actions_pane
    pane.run("summarise")
    qtbot.waitUntil(lambda: not pane.running, timeout=5000)
    assert pane.status.text() == (
        "⚠ The text is too long for Summarise: 2007 tokens, and the model reads 924 at most "
        "with room for the answer; select less.")
    assert pane.answer() == "" and not pane.insert_button.isEnabled()
