"""Open, save, recent files, the unsaved-changes question; what a save does to the file on disk
(mode, owner, links, a failure half-way). Autosave and crash recovery: test_recovery.py."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox
from pytestqt.qtbot import QtBot

from app.engine.errors import GhostpenError
from app.ui.documents import Autosave, TextFormat, read_text, write_text_atomic
from app.ui.main_window import MainWindow

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


posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes, owners and links: POSIX")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o664, 0o600])
def test_saving_keeps_the_files_mode(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "story.txt"
    target.write_text("the old version")
    target.chmod(mode)
    write_text_atomic(target, "the new version")
    assert target.read_text() == "the new version"
    assert oct(mode_of(target)) == oct(mode)


@posix_only
@pytest.mark.skipif(os.name == "posix" and os.geteuid() != 0,
                    reason="only root may give a file to another owner to set this up")
def test_saving_keeps_the_files_owner_and_group(tmp_path: Path) -> None:
    target = tmp_path / "shared.txt"
    target.write_text("the old version")
    os.chown(target, 1234, 2345)
    write_text_atomic(target, "the new version")
    assert (target.stat().st_uid, target.stat().st_gid) == (1234, 2345)


@posix_only
def test_saving_through_a_symlink_updates_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    drafts, desk = tmp_path / "drafts", tmp_path / "desk"
    drafts.mkdir()
    desk.mkdir()
    real = drafts / "story.txt"
    real.write_text("the old version")
    real.chmod(0o644)
    link = desk / "story.txt"
    link.symlink_to(Path("..") / "drafts" / "story.txt")
    write_text_atomic(link, "the new version")
    assert link.is_symlink() and os.readlink(link) == str(Path("..") / "drafts" / "story.txt")
    assert real.read_text() == "the new version" and mode_of(real) == 0o644
    assert os.listdir(desk) == ["story.txt"] and os.listdir(drafts) == ["story.txt"]


@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_a_new_file_gets_the_mode_open_would_give_it(tmp_path: Path, umask: int) -> None:
    old_umask = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "new.txt", "first words")
        (tmp_path / "plain.txt").write_text("first words")
    finally:
        os.umask(old_umask)
    assert oct(mode_of(tmp_path / "new.txt")) == oct(mode_of(tmp_path / "plain.txt"))


@posix_only
def test_an_autosave_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        autosave = Autosave(tmp_path)
        autosave.save("a draft nobody else should read", None)
    finally:
        os.umask(old_umask)
    assert oct(mode_of(autosave.file)) == oct(0o600)
    autosave.close()


@posix_only
def test_a_save_syncs_the_file_then_its_folder(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_text_atomic(tmp_path / "story.txt", "words that must survive a power cut")
    assert synced == ["file", "folder"]


# In a process of its own: the file size limit (RLIMIT_FSIZE) makes the kernel refuse to write
# past 4 KiB, a real failure half-way through the text. Python ignores SIGXFSZ, so the write
# gets EFBIG. The document and an autosave both fail whole.
FILE_SIZE_LIMIT = """
import resource, sys
from pathlib import Path
from app.engine.errors import GhostpenError
from app.ui.documents import Autosave, write_text_atomic

autosave = Autosave(Path(sys.argv[2]))
autosave.save("the autosave before", None)
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
for save in (lambda: write_text_atomic(Path(sys.argv[1]), "new words " * 1000),
             lambda: autosave.save("new words " * 1000, None)):
    try:
        save()
    except GhostpenError as error:
        print(error)
print(autosave.file.read_text(encoding="utf-8"))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE: POSIX")
def test_a_write_that_fails_half_way_leaves_the_old_file_byte_identical(tmp_path: Path) -> None:
    target = tmp_path / "story.txt"
    original = "the old version, with an é and a newline\n".encode()
    target.write_bytes(original)
    recovery = tmp_path / "recovery"
    result = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(target), str(recovery)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    document_error, autosave_error, autosave_text = result.stdout.splitlines()
    assert document_error == ("Cannot save story.txt: File too large (story.txt on disk is "
                              "unchanged); save it elsewhere with Save As.")
    assert autosave_error.startswith("Cannot save ") and "File too large" in autosave_error
    assert target.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["recovery", "story.txt"]
    assert '"text": "the autosave before"' in autosave_text
    assert not [p for p in recovery.iterdir() if p.suffix == ".tmp"]


@posix_only
@pytest.mark.skipif(os.name == "posix" and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_read_only_folder_leaves_the_file_whole_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    target = folder / "story.txt"
    target.write_text("the old version")
    folder.chmod(0o555)
    try:
        with pytest.raises(GhostpenError) as raised:
            write_text_atomic(target, "the new version")
    finally:
        folder.chmod(0o755)
    assert str(raised.value) == (
        "Cannot save story.txt: Permission denied (story.txt on disk is unchanged); save it "
        "elsewhere with Save As, or allow yourself to write there.")
    assert target.read_text() == "the old version" and os.listdir(folder) == ["story.txt"]


@posix_only
def test_saving_in_the_window_keeps_a_shared_files_mode_and_its_link(
        qtbot: QtBot, window: MainWindow, answer: Answers, tmp_path: Path) -> None:
    real = tmp_path / "shared" / "chapter.md"
    real.parent.mkdir()
    (tmp_path / "desk").mkdir()
    real.write_text("Chapter one")
    real.chmod(0o644)
    link = tmp_path / "desk" / "chapter.md"
    link.symlink_to(real)
    answer.set(QFileDialog, "getOpenFileName", (str(link), ""))
    window.open_action.trigger()
    window.editor.moveCursor(window.editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(window.editor, ", revised")
    window.save_action.trigger()
    assert not window.isWindowModified()
    assert link.is_symlink() and real.read_text() == "Chapter one, revised"
    assert mode_of(real) == 0o644


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """The kernel refuses to write past `limit` bytes in this process until the block ends."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE: POSIX")
def test_a_failed_save_in_the_window_says_why_and_keeps_the_text(
        qtbot: QtBot, window: MainWindow, answer: Answers, tmp_path: Path) -> None:
    story = tmp_path / "documents" / "story.txt"
    story.parent.mkdir()
    story.write_text("the old version")
    answer.set(QFileDialog, "getOpenFileName", (str(story), ""))
    window.open_action.trigger()
    window.editor.insertPlainText("a long night of writing " * 400)
    written = window.editor.toPlainText()
    answer.set(QMessageBox, "warning", QMessageBox.StandardButton.Ok)
    with file_size_limit(4096):
        window.save_action.trigger()
    assert [args[1:3] for name, args in answer.asked if name == "warning"] == [
        ("Save", "Cannot save story.txt: File too large (story.txt on disk is unchanged); save "
                 "it elsewhere with Save As.")]
    assert story.read_text() == "the old version" and os.listdir(story.parent) == ["story.txt"]
    assert window.isWindowModified() and window.editor.toPlainText() == written


def test_a_save_clears_what_killed_saves_left_beside_the_document(tmp_path: Path) -> None:
    """kill -9 during a save leaves its temporary file; an old one goes at the next save, a
    fresh one (another window may be saving right now) and other files stay."""
    document = tmp_path / "story.txt"
    document.write_text("old", encoding="utf-8")
    abandoned = tmp_path / ".story.txt.0123456789ab.tmp"
    recent = tmp_path / ".story.txt.ba9876543210.tmp"
    other = tmp_path / ".story.txt.notes.tmp"
    for file in (abandoned, recent, other):
        file.write_text("partial", encoding="utf-8")
    hours_ago = time.time() - 2 * 3600
    os.utime(abandoned, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))
    write_text_atomic(document, "new")
    assert document.read_text(encoding="utf-8") == "new"
    assert not abandoned.exists() and recent.exists() and other.exists()


def test_sessions_killed_before_their_first_autosave_leave_no_lock(tmp_path: Path) -> None:
    killed = subprocess.run(
        [sys.executable, "-c",
         "import os, sys\nfrom pathlib import Path\nfrom app.ui.documents import Autosave\n"
         "session = Autosave(Path(sys.argv[1]))\nos._exit(1)\n", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert killed.returncode == 1, killed.stderr
    assert len(list(tmp_path.glob("*.lock"))) == 1
    autosave = Autosave(tmp_path)
    assert autosave.recoverable() == []
    assert [lock.stem for lock in tmp_path.glob("*.lock")] == [autosave.session]
    autosave.close()


def open_in_window(window: MainWindow, answer: Answers, file: Path) -> None:
    answer.set(QFileDialog, "getOpenFileName", (str(file), ""))
    window.open_action.trigger()


def changed_by_another_program(file: Path, text: str) -> None:
    file.write_text(text, encoding="utf-8")
    later = time.time() + 5  # as a coarse file-system clock would stamp a later write
    os.utime(file, (later, later))


def test_saving_over_a_file_another_program_changed_asks_first(
        qtbot: QtBot, window: MainWindow, answer: Answers, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Monday", encoding="utf-8")
    open_in_window(window, answer, notes)
    window.editor.moveCursor(window.editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(window.editor, ", Tuesday")
    changed_by_another_program(notes, "Monday, from the phone")
    answer.set(QMessageBox, "warning", QMessageBox.StandardButton.Cancel)
    window.save_action.trigger()
    assert [args[1] for name, args in answer.asked if name == "warning"] == ["Changed on Disk"]
    assert notes.read_text(encoding="utf-8") == "Monday, from the phone"
    assert window.editor.toPlainText() == "Monday, Tuesday" and window.isWindowModified()
    answer.set(QMessageBox, "warning", QMessageBox.StandardButton.Save)  # replace it after all
    window.save_action.trigger()
    assert notes.read_text(encoding="utf-8") == "Monday, Tuesday"
    assert not window.isWindowModified()
    answer.asked.clear()
    qtbot.keyClicks(window.editor, "!")
    window.save_action.trigger()  # its own last save is no change by another program
    assert answer.asked == [] and notes.read_text(encoding="utf-8") == "Monday, Tuesday!"


def test_a_file_only_touched_or_removed_saves_without_a_question(
        qtbot: QtBot, window: MainWindow, answer: Answers, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Monday", encoding="utf-8")
    open_in_window(window, answer, notes)
    changed_by_another_program(notes, "Monday")  # the same bytes, a new time: a sync client
    qtbot.keyClicks(window.editor, "On ")
    window.save_action.trigger()
    notes.unlink()
    qtbot.keyClicks(window.editor, "X")
    window.save_action.trigger()
    assert [name for name, _ in answer.asked] == ["getOpenFileName"]  # no question
    assert notes.read_text(encoding="utf-8") == "On XMonday"


def test_coming_back_to_the_window_says_once_that_the_file_changed(
        qtbot: QtBot, window: MainWindow, answer: Answers, tmp_path: Path) -> None:
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    notes = tmp_path / "notes.txt"
    notes.write_text("Monday", encoding="utf-8")
    open_in_window(window, answer, notes)
    messages: list[str] = []
    window.document.message.connect(messages.append)
    QApplication.sendEvent(window, QEvent(QEvent.Type.WindowActivate))
    assert messages == []
    changed_by_another_program(notes, "Monday, from the phone")
    for _ in range(2):
        QApplication.sendEvent(window, QEvent(QEvent.Type.WindowActivate))
    assert messages == ["notes.txt was changed by another program; open it again to see the "
                        "new text."]
    assert window.editor.toPlainText() == "Monday"


def test_a_file_is_saved_with_the_line_endings_and_mark_it_was_opened_with(
        qtbot: QtBot, window: MainWindow, answer: Answers, tmp_path: Path) -> None:
    """A Windows file stays a Windows file: a save changes only what was written."""
    notes = tmp_path / "notes.txt"
    notes.write_bytes("\ufeffLine one\r\nLine two\r\n".encode())
    open_in_window(window, answer, notes)
    window.editor.moveCursor(window.editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(window.editor, "Line three")
    window.save_action.trigger()
    assert notes.read_bytes() == "\ufeffLine one\r\nLine two\r\nLine three".encode()
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"Unix\nfile\n")
    open_in_window(window, answer, plain)
    qtbot.keyClicks(window.editor, "A ")
    window.save_action.trigger()
    assert plain.read_bytes() == b"A Unix\nfile\n"
    window.new_action.trigger()
    qtbot.keyClicks(window.editor, "new")
    window.editor.insertPlainText("\nlines")
    answer.set(QFileDialog, "getSaveFileName", (str(tmp_path / "new.txt"), "Text (*.txt)"))
    window.save_action.trigger()
    assert (tmp_path / "new.txt").read_bytes() == b"new\nlines"  # a new file: line feeds


@pytest.mark.parametrize(("data", "line_ending", "bom"), [
    (b"one\r\ntwo\r\nthree\n", "\r\n", False),  # mostly Windows: a stray line feed is read too
    (b"one\rtwo\r", "\r", False),  # classic Mac OS
    (b"\xef\xbb\xbfone line", "\n", True),  # no ending at all: line feeds for new lines
    (b"one\ntwo\r\n", "\n", False),  # a tie
])
def test_a_files_format_is_its_most_frequent_line_ending_and_its_mark(
        data: bytes, line_ending: str, bom: bool) -> None:
    assert TextFormat.of(data) == TextFormat(line_ending, bom)
