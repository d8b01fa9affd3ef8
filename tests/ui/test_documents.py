"""Open, save, recent files, the unsaved-changes question, autosave and crash recovery."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox
from pytestqt.qtbot import QtBot

from app.engine.errors import GhostpenError
from app.ui.documents import read_text, write_text_atomic
from app.ui.main_window import MainWindow
from app.ui.settings import Settings

from .conftest import Answers


def test_save_as_writes_the_file_and_clears_the_modified_mark(
        qtbot: QtBot, window: MainWindow, answer: Answers, tmp_path: Path) -> None:
    qtbot.keyClicks(window.editor, "Chapter one")
    assert window.isWindowModified()
    target = tmp_path / "docs" / "novel"
    answer.set(QFileDialog, "getSaveFileName", (str(target), "Markdown (*.md)"))
    window.save_action.trigger()
    saved = tmp_path / "docs" / "novel.md"
    assert saved.read_text(encoding="utf-8") == "Chapter one"
    assert window.windowTitle() == "novel.md[*] — Ghostpen" and not window.isWindowModified()
    assert sorted(p.name for p in saved.parent.iterdir()) == ["novel.md"]  # no temp left


def test_open_shows_the_file_and_remembers_it(qtbot: QtBot, window: MainWindow,
                                              answer: Answers, tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_bytes("\ufeffLine one\r\nLine two".encode())
    answer.set(QFileDialog, "getOpenFileName", (str(file), ""))
    window.open_action.trigger()
    assert window.editor.toPlainText() == "Line one\nLine two"
    assert window.windowTitle().startswith("notes.txt") and not window.isWindowModified()
    window.menus.fill_recent()
    entries = [a.text() for a in window.menus.recent_menu.actions() if a.text()]
    assert entries[0] == "&1 notes.txt"


def test_closing_with_unsaved_changes_asks_first(qtbot: QtBot, window: MainWindow,
                                                 answer: Answers) -> None:
    qtbot.keyClicks(window.editor, "precious")
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Cancel)
    assert not window.close()
    assert window.isVisible() and answer.asked[0][1][1] == "Unsaved Changes"
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Discard)
    assert window.close()


def test_new_document_asks_and_clears(qtbot: QtBot, window: MainWindow, answer: Answers) -> None:
    qtbot.keyClicks(window.editor, "draft")
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Discard)
    window.new_action.trigger()
    assert window.editor.toPlainText() == "" and window.windowTitle().startswith("Untitled")


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
    assert restarted.editor.toPlainText() == "words I never saved"
    assert restarted.isWindowModified()
    assert "Recovered unsaved text" in restarted.statusBar().currentMessage()
    assert not recovery.exists()


def test_a_running_window_is_not_recovered_by_another(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    settings = Settings()
    settings.set("autosave_interval_s", 0.1)
    settings.save()
    first = make_window()
    qtbot.keyClicks(first.editor, "still open")
    qtbot.waitUntil(first.document.autosave.file.exists, timeout=3000)
    second = make_window()
    assert second.editor.toPlainText() == ""


def test_a_clean_close_leaves_nothing_to_recover(
        qtbot: QtBot, make_window: Callable[..., MainWindow], answer: Answers) -> None:
    window = make_window()
    qtbot.keyClicks(window.editor, "throwaway")
    window.document.autosave_now()
    assert window.document.autosave.file.exists()
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Discard)
    window.close()
    assert not window.document.autosave.file.exists()
    assert make_window().editor.toPlainText() == ""


def test_a_failed_save_leaves_the_old_file_whole(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "story.txt"
    target.write_text("the old version")

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(GhostpenError, match=r"Cannot save story\.txt: No space left on device"):
        write_text_atomic(target, "the new version")
    assert target.read_text() == "the old version"
    assert [p.name for p in tmp_path.iterdir()] == ["story.txt"]


def test_a_file_that_is_not_utf8_gives_one_line(tmp_path: Path) -> None:
    file = tmp_path / "old.txt"
    file.write_bytes(b"caf\xe9")
    with pytest.raises(GhostpenError, match="not UTF-8 text"):
        read_text(file)


def test_quitting_without_the_close_question_keeps_unsaved_text(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window()
    qtbot.keyClicks(window.editor, "typed just before the logout")
    window.shutdown(keep_unsaved=True)  # what run_gui does on QApplication.aboutToQuit
    assert make_window().editor.toPlainText() == "typed just before the logout"
