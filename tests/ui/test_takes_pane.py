"""Takes in the real window: every run is kept, the pane shows them as a tree, one can be put
back, compared or continued, and they are kept beside the document and through a crash."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QFileDialog, QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from app.takes import TakeToken, TakeTree, new_take, prompt_hash, sidecar_path
from app.ui.main_window import MainWindow
from app.ui.settings import Settings
from app.ui.take_keeper import takes_dir

from .conftest import Answers, generate_and_wait, set_max_tokens


def regenerate_and_wait(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.keyClick(window.editor, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.generation.running, timeout=5000)


def click(qtbot: QtBot, button: QPushButton) -> None:
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def rows(window: MainWindow) -> list[tuple[int, str]]:
    """The pane's rows as a person reads them: depth and the preview text."""
    found: list[tuple[int, str]] = []
    for item in window.takes_pane.items():
        depth, parent = 0, item.parent()
        while parent is not None:
            depth, parent = depth + 1, parent.parent()
        found.append((depth, item.text(0)))
    return found


def three_takes(qtbot: QtBot, window: MainWindow) -> list[str]:
    """Generate once and regenerate twice after "Hello"; the document's text after each."""
    set_max_tokens(window, 8)
    qtbot.keyClicks(window.editor, "Hello")
    texts = []
    generate_and_wait(qtbot, window)
    texts.append(window.editor.toPlainText())
    for _ in range(2):
        regenerate_and_wait(qtbot, window)
        texts.append(window.editor.toPlainText())
    return texts


def test_regenerating_twice_keeps_three_sibling_takes(qtbot: QtBot, window: MainWindow) -> None:
    texts = three_takes(qtbot, window)
    tree = window.takes.tree
    assert [t.text for t in tree.all()] == [text[5:] for text in texts]
    first, second, third = tree.all()
    assert [t.id for t in tree.siblings(first.id)] == [second.id, third.id]
    assert all(t.parent is None and t.prompt_hash == prompt_hash("Hello") for t in tree.all())
    assert all(t.model == "fake" and t.seed is not None for t in tree.all())
    assert [depth for depth, _ in rows(window)] == [0, 0, 0]
    assert rows(window)[2][1] == f"● {third.preview()}"  # the one in the document is marked


def test_use_this_take_puts_the_first_back_as_one_undo_step(qtbot: QtBot,
                                                            window: MainWindow) -> None:
    texts = three_takes(qtbot, window)
    window.takes_dock.show()
    window.takes_dock.raise_()
    first = window.takes.tree.all()[0]
    window.takes_pane.select(first.id)
    assert first.text in window.takes_pane.view.toPlainText()
    click(qtbot, window.takes_pane.use_button)
    assert window.editor.toPlainText() == texts[0]
    # Its tokens are marked again, with their probabilities for the token view's colours.
    expected, at = [], 5
    for token in first.tokens:
        expected.append((at, at + len(token.text), token.p))
        at += len(token.text)
    assert [(s.start, s.end, s.event.p) for s in window.editor.tokens()] == expected
    assert window.takes.current == first.id
    window.editor.undo()
    assert window.editor.toPlainText() == texts[2]
    window.editor.redo()
    assert window.editor.toPlainText() == texts[0]
    regenerate_and_wait(qtbot, window)  # Regenerate now rerolls the take put back
    assert window.editor.toPlainText()[:5] == "Hello" and len(window.takes.tree) == 4
    assert window.takes.tree.all()[3].parent is None


def test_the_writers_edit_survives_regenerate_and_the_new_take_continues_it(
        qtbot: QtBot, window: MainWindow) -> None:
    set_max_tokens(window, 8)
    qtbot.keyClicks(window.editor, "Hello")
    generate_and_wait(qtbot, window)
    cursor = window.editor.textCursor()
    cursor.setPosition(7)
    cursor.setPosition(8, QTextCursor.MoveMode.KeepAnchor)
    window.editor.setTextCursor(cursor)
    qtbot.keyClicks(window.editor, "XY")
    edited = window.editor.toPlainText()[:9]
    regenerate_and_wait(qtbot, window)
    assert window.editor.toPlainText()[:9] == edited
    first, second = window.takes.tree.all()
    assert second.parent == first.id  # it continues the edited take
    assert second.prompt_tail.endswith(edited) and second.prompt_hash == prompt_hash(edited)
    assert window.editor.toPlainText() == edited + second.text
    assert [depth for depth, _ in rows(window)] == [0, 1]
    window.takes_pane.select(first.id)  # the take as the model wrote it, before the edit
    click(qtbot, window.takes_pane.use_button)
    assert window.editor.toPlainText() == "Hello" + first.text
    window.takes_pane.select(second.id)  # and back: the edit it continued comes with it
    click(qtbot, window.takes_pane.use_button)
    assert window.editor.toPlainText() == edited + second.text


def test_continue_from_here_writes_a_child_after_the_take(qtbot: QtBot,
                                                          window: MainWindow) -> None:
    texts = three_takes(qtbot, window)
    first = window.takes.tree.all()[0]
    window.takes_pane.select(first.id)
    click(qtbot, window.takes_pane.continue_button)
    qtbot.waitUntil(lambda: not window.generation.running, timeout=5000)
    child = window.takes.tree.all()[3]
    assert child.parent == first.id
    assert window.editor.toPlainText() == texts[0] + child.text
    assert [depth for depth, _ in rows(window)] == [0, 1, 0, 0]
    window.takes_pane.select(window.takes.tree.all()[1].id)  # a sibling of the parent
    click(qtbot, window.takes_pane.use_button)
    assert window.editor.toPlainText() == texts[1]  # in place of the parent and its child
    window.takes_pane.select(child.id)  # the child again: its parent comes back under it
    click(qtbot, window.takes_pane.use_button)
    assert window.editor.toPlainText() == texts[0] + child.text
    window.editor.undo()
    assert window.editor.toPlainText() == texts[1]


def test_compare_shows_two_takes_side_by_side_with_their_differences(
        qtbot: QtBot, window: MainWindow) -> None:
    three_takes(qtbot, window)
    first, second, _ = window.takes.tree.all()
    window.takes_pane.select(first.id, second.id)
    dialog = window.takes_pane.compare_selected()
    assert dialog is not None
    qtbot.addWidget(dialog)
    assert [v.toPlainText() for v in dialog.views] == [first.text, second.text]
    assert first.text != second.text  # fresh seeds: different letters
    assert dialog.highlighted(0) and dialog.highlighted(1)
    assert all(word in first.text for word in dialog.highlighted(0))
    assert all(word in second.text for word in dialog.highlighted(1))


def test_save_close_and_reopen_brings_the_takes_back(
        qtbot: QtBot, make_window: Callable[..., MainWindow], answer: Answers,
        tmp_path: Path) -> None:
    window = make_window()
    texts = three_takes(qtbot, window)
    saved = tmp_path / "novel.txt"
    answer.set(QFileDialog, "getSaveFileName", (str(saved), "Text (*.txt)"))
    window.save_action.trigger()
    sidecar = tmp_path / ".novel.txt.takes.json"
    assert sidecar.exists() and not list(takes_dir().glob("*.json"))  # moved, not copied
    kept = [t.text for t in window.takes.tree.all()]
    window.close()

    reopened = make_window()
    answer.set(QFileDialog, "getOpenFileName", (str(saved), ""))
    reopened.open_action.trigger()
    assert reopened.editor.toPlainText() == texts[2]
    assert [t.text for t in reopened.takes.tree.all()] == kept
    assert len(rows(reopened)) == 3
    reopened.takes_pane.select(reopened.takes.tree.all()[0].id)
    click(qtbot, reopened.takes_pane.use_button)  # found in the text by where it was written
    assert reopened.editor.toPlainText() == texts[0]


def test_a_damaged_takes_file_is_one_line_and_the_document_opens(
        qtbot: QtBot, window: MainWindow, answer: Answers, tmp_path: Path) -> None:
    document = tmp_path / "notes.txt"
    document.write_text("My notes", encoding="utf-8")
    sidecar = tmp_path / ".notes.txt.takes.json"
    sidecar.write_text('{"version": 1, "takes": [', encoding="utf-8")
    answer.set(QFileDialog, "getOpenFileName", (str(document), ""))
    window.open_action.trigger()
    assert window.editor.toPlainText() == "My notes"
    qtbot.waitUntil(lambda: "damaged" in window.statusBar().currentMessage())
    assert window.statusBar().currentMessage().startswith(
        "The takes in .notes.txt.takes.json are damaged")
    assert "opens without them" in window.statusBar().currentMessage()
    assert len(window.takes.tree) == 0 and window.takes_pane.empty_label.isVisibleTo(
        window.takes_pane)
    assert (tmp_path / ".notes.txt.takes.json.damaged").exists()  # kept aside, not lost
    generate_and_wait(qtbot, window)  # new takes start afresh beside it
    assert len(json.loads(sidecar.read_text(encoding="utf-8"))["takes"]) == 1


def test_the_takes_of_an_untitled_document_survive_a_crash(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    settings = Settings()
    settings.set("autosave_interval_s", 0.1)
    settings.save()
    crashed = make_window()
    texts = three_takes(qtbot, crashed)
    kept = [t.text for t in crashed.takes.tree.all()]
    qtbot.waitUntil(crashed.document.autosave.file.exists, timeout=3000)
    qtbot.wait(300)  # the autosave after the last run
    crashed.document.autosave.lock.unlock()  # what the OS does when the process dies

    restarted = make_window()
    assert len(restarted.takes.tree) == 0
    click(qtbot, restarted.recovery_offer.restore_button)
    assert restarted.editor.toPlainText() == texts[2]
    assert [t.text for t in restarted.takes.tree.all()] == kept
    assert restarted.takes.file.exists()
    assert [p.stem for p in takes_dir().glob("*.json")] == [
        restarted.document.autosave.session]


def test_the_takes_of_a_saved_document_survive_a_crash_beside_it(
        qtbot: QtBot, make_window: Callable[..., MainWindow], answer: Answers,
        tmp_path: Path) -> None:
    settings = Settings()
    settings.set("autosave_interval_s", 0.1)
    settings.save()
    crashed = make_window()
    saved = tmp_path / "story.md"
    answer.set(QFileDialog, "getSaveFileName", (str(saved), "Markdown (*.md)"))
    qtbot.keyClicks(crashed.editor, "Chapter one. ")
    crashed.save_action.trigger()
    set_max_tokens(crashed, 8)
    generate_and_wait(qtbot, crashed)  # unsaved: only the autosave and the takes have it
    kept = [t.text for t in crashed.takes.tree.all()]
    qtbot.waitUntil(crashed.document.autosave.file.exists, timeout=3000)
    crashed.document.autosave.lock.unlock()

    restarted = make_window()
    click(qtbot, restarted.recovery_offer.restore_button)
    assert [t.text for t in restarted.takes.tree.all()] == kept
    assert restarted.takes.file == tmp_path / ".story.md.takes.json"


def test_compare_with_one_take_selected_sets_it_beside_the_one_in_the_document(
        qtbot: QtBot, window: MainWindow) -> None:
    three_takes(qtbot, window)
    first, _, third = window.takes.tree.all()
    window.takes_pane.select(first.id)
    dialog = window.takes_pane.compare_selected()
    assert dialog is not None
    qtbot.addWidget(dialog)
    assert [v.toPlainText() for v in dialog.views] == [third.text, first.text]
    window.takes_pane.select(third.id)  # the one in the document: nothing to set it beside
    assert not window.takes_pane.compare_button.isEnabled()


def test_discarding_a_crashed_untitled_document_deletes_its_takes(
        qtbot: QtBot, make_window: Callable[..., MainWindow], answer: Answers) -> None:
    settings = Settings()
    settings.set("autosave_interval_s", 0.1)
    settings.save()
    crashed = make_window()
    three_takes(qtbot, crashed)
    takes_file = crashed.takes.file
    qtbot.waitUntil(crashed.document.autosave.file.exists, timeout=3000)
    crashed.document.autosave.lock.unlock()

    restarted = make_window()
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Discard)
    click(qtbot, restarted.recovery_offer.discard_button)
    assert not takes_file.exists()


def test_an_untitled_documents_takes_go_when_it_is_discarded(
        qtbot: QtBot, window: MainWindow, answer: Answers) -> None:
    three_takes(qtbot, window)
    file = window.takes.file
    assert file.exists()
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Discard)
    window.new_action.trigger()
    assert not file.exists() and len(window.takes.tree) == 0


def test_takes_with_the_real_tiny_model(qtbot: QtBot, tmp_path_factory: pytest.TempPathFactory,
                                        monkeypatch: pytest.MonkeyPatch,
                                        make_window: Callable[..., MainWindow]) -> None:
    pytest.importorskip("onnxruntime")
    from models.export import export_model
    from models.random import write_random_checkpoint

    root = tmp_path_factory.mktemp("tiny")
    write_random_checkpoint("tiny", root / "checkpoint", seed=0)
    export_model(root / "checkpoint", root / "data" / "models" / "tiny")
    monkeypatch.setenv("GHOSTPEN_DATA_DIR", str(root / "data"))
    window = make_window(engine=None, wait_for_engine=False)  # the default factory
    qtbot.waitUntil(lambda: window.engine_info is not None, timeout=20000)
    set_max_tokens(window, 6)
    qtbot.keyClicks(window.editor, "The night was")
    generate_and_wait(qtbot, window)
    first_text = window.editor.toPlainText()
    regenerate_and_wait(qtbot, window)
    first, second = window.takes.tree.all()
    assert second.parent is None and first.model == "tiny"
    assert first_text == "The night was" + first.text
    assert all(0 < token.p <= 1 for token in first.tokens)
    window.takes_pane.select(first.id)
    click(qtbot, window.takes_pane.use_button)
    assert window.editor.toPlainText() == first_text
    assert window.takes.file.exists()


def test_the_pane_follows_the_take_in_the_document_and_enter_puts_one_back(
        qtbot: QtBot, window: MainWindow) -> None:
    assert window.takes_pane.empty_label.text().startswith("No takes yet")
    texts = three_takes(qtbot, window)
    third = window.takes.tree.all()[2]
    assert window.takes_pane.selected_ids() == [third.id]
    assert window.takes_pane.view.toPlainText().endswith(third.text)
    assert "fake" in window.takes_pane.details.text()
    window.takes_dock.show()
    window.takes_dock.raise_()
    first = window.takes.tree.all()[0]
    window.takes_pane.select(first.id)
    window.takes_pane.tree.setFocus()
    qtbot.keyClick(window.takes_pane.tree, Qt.Key.Key_Return)
    assert window.editor.toPlainText() == texts[0]


def test_a_run_cut_short_by_opening_a_recent_file_leaves_no_stray_takes(
        qtbot: QtBot, make_window: Callable[..., MainWindow], answer: Answers,
        tmp_path: Path) -> None:
    from app.engine.fake import FakeEngine

    other = tmp_path / "other.txt"
    other.write_text("Another story", encoding="utf-8")
    window = make_window(lambda: FakeEngine(token_delay_s=0.02))
    set_max_tokens(window, 500)
    qtbot.keyClicks(window.editor, "Go")
    window.generate_action.trigger()
    qtbot.waitUntil(lambda: len(window.editor.toPlainText()) >= 5, timeout=5000)
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Discard)
    window.document.open(other)  # File > Open Recent, which stays open while the model writes
    qtbot.wait(100)  # the stopped run's last signals
    assert window.editor.toPlainText() == "Another story" and len(window.takes.tree) == 0
    assert not list(takes_dir().glob("*.json"))  # the discarded text's takes went with it
    assert not (tmp_path / ".other.txt.takes.json").exists()


def test_a_take_that_starts_a_new_paragraph_is_named_by_its_words(
        qtbot: QtBot, window: MainWindow, answer: Answers, tmp_path: Path) -> None:
    prompt = "It was late"
    document = tmp_path / "story.txt"
    tree = TakeTree()
    for text in (".\nThe rain had stopped.", "\n\n  She  waited\tby the door."):
        tree.add(new_take(None, prompt, [TakeToken(0, text, 0.5)], "greedy", 1, 1764660000.0,
                          "gpt2"))
    document.write_text(prompt + ".\nThe rain had stopped.", encoding="utf-8")
    sidecar_path(document).write_text(json.dumps(tree.to_json()), encoding="utf-8")
    answer.set(QFileDialog, "getOpenFileName", (str(document), ""))
    window.open_action.trigger()
    assert [label.removeprefix("● ") for _, label in rows(window)] == [
        ". The rain had stopped.", "She waited by the door."]
