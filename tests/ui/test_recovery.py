"""Autosave and crash recovery: text a session left when it ended without closing is offered at
the next start (Restore, Open Beside, Discard), never put in the window unasked, and never
deleted before it is in an editor or the writer chose to discard it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from app.ui.main_window import MainWindow
from app.ui.settings import Settings

from .conftest import Answers

# A Ghostpen session in a process of its own that autosaves and then dies without closing:
# its lock file stays behind naming a process that no longer runs, which is how the next
# session knows the autosave is an orphan.
CRASHING_SESSION = """
import os, sys
from pathlib import Path
from app.paths import recovery_dir
from app.ui.documents import Autosave

autosave = Autosave(recovery_dir())
autosave.save(sys.argv[1], Path(sys.argv[2]) if sys.argv[2] else None)
print(autosave.file, flush=True)
os._exit(1)
"""


def crashed_session(text: str, document: Path | None = None) -> Path:
    """Run a session that autosaves `text` (of `document`, or untitled) and crashes; its
    recovery file."""
    result = subprocess.run([sys.executable, "-c", CRASHING_SESSION, text, str(document or "")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    return Path(result.stdout.strip())


def autosaved_at(recovery_file: Path) -> str:
    saved_at = json.loads(recovery_file.read_text(encoding="utf-8"))["saved_at"]
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(saved_at))


def click(qtbot: QtBot, button: QPushButton) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


@pytest.fixture
def beside_windows(make_window: Callable[..., MainWindow]) -> Iterator[list[MainWindow]]:
    """Windows that Open Beside made, closed at the end like make_window's."""
    made: list[MainWindow] = []
    yield made
    for window in made:
        window.editor.document().setModified(False)
        window.close()
        window.shutdown()
        window.deleteLater()


def test_text_from_a_crash_is_offered_not_put_in_the_window(
        make_window: Callable[..., MainWindow], tmp_path: Path) -> None:
    recovery = crashed_session("words from last night", tmp_path / "novel.txt")
    window = make_window()
    assert window.editor.toPlainText() == "" and not window.isWindowModified()
    offer = window.recovery_offer
    assert offer.isVisible() and offer.title.text() == "Unsaved text from novel.txt"
    assert (f"4 words (21 characters), autosaved {autosaved_at(recovery)}"
            in offer.body.text())
    assert [b.text() for b in offer.findChildren(QPushButton)] == [
        "Restore", "Open Beside", "Discard…"]
    assert recovery.exists()


def test_an_untitled_documents_text_is_offered_as_such(
        make_window: Callable[..., MainWindow]) -> None:
    crashed_session("a note I never named")
    offer = make_window().recovery_offer
    assert offer.title.text() == "Unsaved text from an untitled document"
    assert "5 words (20 characters)" in offer.body.text()


def test_restore_puts_the_text_in_the_window_unsaved_under_its_name(
        qtbot: QtBot, make_window: Callable[..., MainWindow], tmp_path: Path) -> None:
    novel = tmp_path / "novel.txt"
    recovery = crashed_session("words from last night", novel)
    window = make_window()
    click(qtbot, window.recovery_offer.restore_button)
    assert window.editor.toPlainText() == "words from last night"
    assert window.isWindowModified() and window.windowTitle().startswith("novel.txt")
    assert not window.recovery_offer.isVisible()
    assert not recovery.exists()  # it is in this window's own autosave now
    own = json.loads(window.document.autosave.file.read_text(encoding="utf-8"))
    assert own["text"] == "words from last night" and own["path"] == str(novel)
    window.save_action.trigger()
    assert novel.read_text(encoding="utf-8") == "words from last night"
    assert not window.isWindowModified()


def test_restore_over_unsaved_text_asks_first(
        qtbot: QtBot, make_window: Callable[..., MainWindow], answer: Answers) -> None:
    recovery = crashed_session("words from last night")
    window = make_window()
    qtbot.keyClicks(window.editor, "a new start")
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Cancel)
    click(qtbot, window.recovery_offer.restore_button)
    assert answer.asked[0][1][1] == "Unsaved Changes"
    assert window.editor.toPlainText() == "a new start"
    assert window.recovery_offer.isVisible() and recovery.exists()


def test_discard_asks_then_deletes_the_autosave_and_leaves_the_editor(
        qtbot: QtBot, make_window: Callable[..., MainWindow], answer: Answers) -> None:
    recovery = crashed_session("words I do not want")
    window = make_window()
    qtbot.keyClicks(window.editor, "typed meanwhile")
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Cancel)
    click(qtbot, window.recovery_offer.discard_button)
    assert answer.asked[0][1][1] == "Discard Unsaved Text"
    assert answer.asked[0][1][2].startswith("Delete the 5 words (19 characters) of unsaved text "
                                            "from an untitled document, autosaved ")
    assert recovery.exists() and window.recovery_offer.isVisible()

    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Discard)
    click(qtbot, window.recovery_offer.discard_button)
    assert not recovery.exists() and not recovery.with_suffix(".lock").exists()
    assert not window.recovery_offer.isVisible()
    assert window.editor.toPlainText() == "typed meanwhile" and window.isWindowModified()


def test_open_beside_opens_a_second_window_and_leaves_this_one(
        qtbot: QtBot, make_window: Callable[..., MainWindow], beside_windows: list[MainWindow],
        tmp_path: Path) -> None:
    recovery = crashed_session("words from last night", tmp_path / "novel.txt")
    window = make_window()
    qtbot.keyClicks(window.editor, "this morning's words")
    click(qtbot, window.recovery_offer.beside_button)
    beside_windows.extend(window.beside_windows)
    [beside] = window.beside_windows
    assert beside.isVisible() and not beside.recovery_offer.isVisible()
    assert beside.editor.toPlainText() == "words from last night"
    assert beside.isWindowModified() and beside.windowTitle().startswith("novel.txt")
    assert window.editor.toPlainText() == "this morning's words" and window.isWindowModified()
    assert not window.recovery_offer.isVisible()
    assert not recovery.exists()  # in the second window's autosave instead
    own = json.loads(beside.document.autosave.file.read_text(encoding="utf-8"))
    assert own["text"] == "words from last night"


def test_several_autosaves_are_offered_newest_first_one_after_another(
        qtbot: QtBot, make_window: Callable[..., MainWindow], answer: Answers,
        tmp_path: Path) -> None:
    older = crashed_session("the older words", tmp_path / "old.txt")
    newer = crashed_session("the newer words", tmp_path / "new.txt")
    window = make_window()
    offer = window.recovery_offer
    assert offer.title.text() == "Unsaved text from new.txt"
    assert "1 more after this one" in offer.body.text()
    click(qtbot, offer.restore_button)
    assert window.editor.toPlainText() == "the newer words" and not newer.exists()
    assert offer.isVisible() and offer.title.text() == "Unsaved text from old.txt"
    assert "more after" not in offer.body.text()
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Discard)
    click(qtbot, offer.discard_button)
    assert not older.exists() and not offer.isVisible()
    assert window.editor.toPlainText() == "the newer words"


def test_an_offer_left_unanswered_is_made_again_next_time(
        make_window: Callable[..., MainWindow]) -> None:
    recovery = crashed_session("words from last night")
    first = make_window()
    assert first.recovery_offer.isVisible()
    first.close()
    assert recovery.exists()
    assert make_window().recovery_offer.title.text() == "Unsaved text from an untitled document"


def test_autosave_brings_the_text_back_after_a_crash(
        qtbot: QtBot, make_window: Callable[..., MainWindow], isolated_dirs: Path) -> None:
    settings = Settings()
    settings.set("autosave_interval_s", 0.1)
    settings.save()
    crashed = make_window()
    qtbot.keyClicks(crashed.editor, "words I never saved")
    recovery = isolated_dirs / "data" / "recovery" / f"{crashed.document.autosave.session}.json"
    qtbot.waitUntil(recovery.exists, timeout=3000)
    crashed.document.autosave.lock.unlock()  # what the OS does when the process dies

    restarted = make_window()
    assert restarted.editor.toPlainText() == ""
    click(qtbot, restarted.recovery_offer.restore_button)
    assert restarted.editor.toPlainText() == "words I never saved"
    assert restarted.isWindowModified()
    assert "Restored an untitled document" in restarted.statusBar().currentMessage()
    assert not recovery.exists()


def test_a_running_window_is_not_offered_to_another(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    settings = Settings()
    settings.set("autosave_interval_s", 0.1)
    settings.save()
    first = make_window()
    qtbot.keyClicks(first.editor, "still open")
    qtbot.waitUntil(first.document.autosave.file.exists, timeout=3000)
    second = make_window()
    assert second.editor.toPlainText() == "" and not second.recovery_offer.isVisible()


def test_a_clean_close_leaves_nothing_to_recover(
        qtbot: QtBot, make_window: Callable[..., MainWindow], answer: Answers) -> None:
    window = make_window()
    qtbot.keyClicks(window.editor, "throwaway")
    window.document.autosave_now()
    assert window.document.autosave.file.exists()
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Discard)
    window.close()
    assert not window.document.autosave.file.exists()
    assert not make_window().recovery_offer.isVisible()


def test_quitting_without_the_close_question_keeps_unsaved_text(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window()
    qtbot.keyClicks(window.editor, "typed just before the logout")
    window.shutdown(keep_unsaved=True)  # what run_gui does on QApplication.aboutToQuit
    restarted = make_window()
    click(qtbot, restarted.recovery_offer.restore_button)
    assert restarted.editor.toPlainText() == "typed just before the logout"


def test_restored_text_is_saved_with_its_files_line_endings(
        qtbot: QtBot, make_window: Callable[..., MainWindow], tmp_path: Path) -> None:
    novel = tmp_path / "novel.txt"
    novel.write_bytes(b"Chapter one\r\n")
    crashed_session("Chapter one\nwords from last night", novel)
    window = make_window()
    click(qtbot, window.recovery_offer.restore_button)
    window.save_action.trigger()
    assert novel.read_bytes() == b"Chapter one\r\nwords from last night"
