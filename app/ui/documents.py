"""Reading and saving documents, and the autosave that brings text back after a crash.

A save writes a temporary file beside the target and renames it over the target, so a crash
or a full disk never leaves a half-written document. Autosaves are small JSON files, one per
running window, each guarded by a QLockFile: a file whose lock nobody holds belongs to a
session that ended without closing cleanly, and is offered back.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QLockFile

from app.engine.errors import GhostpenError, first_line
from app.ui.file_stamp import FileStamp

FILE_FILTER = ";;".join(("Text and Markdown (*.txt *.md *.markdown)", "Text (*.txt)",
                         "Markdown (*.md)", "All files (*)"))
_RECOVERY_VERSION = 1
_PRIVATE = 0o600  # autosaves hold the writer's text: nobody else reads them
_WHAT_TO_DO = {
    errno.ENOSPC: "free some disk space, or save it elsewhere with Save As",
    errno.EDQUOT: "free some of your disk quota, or save it elsewhere with Save As",
    errno.EROFS: "that drive is read-only: save it elsewhere with Save As",
    errno.EACCES: "save it elsewhere with Save As, or allow yourself to write there",
    errno.EPERM: "save it elsewhere with Save As, or allow yourself to write there",
}


@dataclass(frozen=True)
class TextFormat:
    """How a document's file writes its text: its line ending and whether it starts with
    UTF-8's byte-order mark. The editor holds line feeds only; a file opened with Windows
    line endings (or a mark) is saved with them again, so that a save changes only what was
    written."""

    line_ending: str = "\n"
    bom: bool = False

    @staticmethod
    def of(data: bytes) -> TextFormat:
        """The format of a file's bytes: its most frequent line ending (a line feed on a tie
        or none), and its mark."""
        crlf = data.count(b"\r\n")
        endings = {"\n": data.count(b"\n") - crlf, "\r\n": crlf, "\r": data.count(b"\r") - crlf}
        most = max(endings.values())
        line_ending = "\n" if endings["\n"] == most else max(endings, key=endings.__getitem__)
        return TextFormat(line_ending, data.startswith(b"\xef\xbb\xbf"))

    @staticmethod
    def of_file(path: Path) -> TextFormat:
        """The format of the file at `path`; line feeds and no mark where it cannot be read."""
        try:
            return TextFormat.of(Path(path).read_bytes())
        except OSError:
            return TextFormat()

    def encode(self, text: str) -> bytes:
        if self.line_ending != "\n":
            text = text.replace("\n", self.line_ending)
        return ("\ufeff" + text if self.bom else text).encode("utf-8")


PLAIN = TextFormat()


# Not QSaveFile: it keeps the mode, writes through a symlink and honours the umask, but the
# file it leaves belongs to whoever saved (owner and group are lost) and it never syncs the
# folder, so after a power cut the rename can be gone (checked with Qt 6.12 on 2026-12-02).
def write_text_atomic(path: Path, text: str, new_file_mode: int = 0o666,
                      text_format: TextFormat = PLAIN) -> None:
    """Write `text` as UTF-8 in `text_format` to `path` so that the file on disk is always the
    old version or the new one, whole: a temporary file beside it, synced, renamed over it,
    the folder synced.

    A symlink is written through: its target is replaced, in the target's folder, and the link
    stays a link. An existing file keeps its mode, and its owner and group where this process
    may set them; a new file gets `new_file_mode` less the umask, as open() would give it.
    A failure leaves the old file as it was and raises a GhostpenError of one line."""
    path = Path(path)
    target = Path(os.path.realpath(path))
    data = text_format.encode(text)
    existing: os.stat_result | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            existing = os.stat(target)
        _remove_abandoned_temps(target)
        temp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        # A new file is created by the kernel with the umask applied, exactly as open() does;
        # a replacement starts owner-only and gets the old file's mode before any text is in.
        fd = os.open(temp, flags, _PRIVATE if existing else new_file_mode)
    except OSError as error:
        raise _save_error(path, error, existing is not None) from error
    try:
        with os.fdopen(fd, "wb") as file:
            if existing is not None:
                _copy_owner_and_mode(file.fileno(), existing)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise _save_error(path, error, existing is not None) from error
    try:
        _sync_folder(target.parent)
    except OSError as error:
        raise GhostpenError(first_line(
            f"Saved {path.name}, but the system could not confirm it reached the disk "
            f"({error.strerror or error}): save again, or save a copy elsewhere with Save As."
        )) from error


# A save takes seconds at most; a temporary file older than this was left by a save that was
# killed (kill -9, a power cut) and is never renamed into place. Fifty killed saves of an 8 MB
# document left 98 MB of them beside it before they were cleaned up.
ABANDONED_TEMP_S = 3600


def _remove_abandoned_temps(target: Path) -> None:
    """Delete the temporary files that killed saves of `target` left beside it: only ours
    (`.NAME.<12 hex>.tmp`) and only old ones, so a save running in another window is left be."""
    prefix, now = f".{target.name}.", time.time()
    with contextlib.suppress(OSError), os.scandir(target.parent) as entries:
        for entry in entries:
            name = entry.name
            middle = name[len(prefix):-len(".tmp")]
            if (name.startswith(prefix) and name.endswith(".tmp") and len(middle) == 12
                    and all(c in "0123456789abcdef" for c in middle)):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > ABANDONED_TEMP_S:
                        os.unlink(entry.path)


def _copy_owner_and_mode(fd: int, old: os.stat_result) -> None:
    """Give the new file the old one's owner, group and mode, as far as this process may.
    Owner first: changing it clears the set-user-ID bits that the mode then puts back."""
    if os.name != "posix":  # Windows keeps neither; a read-only file refuses the rename
        return
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except OSError:  # only root gives a file away; the group may still be one of ours
        with contextlib.suppress(OSError):
            os.fchown(fd, -1, old.st_gid)
    # Where a drive cannot store modes (FAT) the file stays owner-only: never more open.
    with contextlib.suppress(OSError):
        os.fchmod(fd, stat.S_IMODE(old.st_mode))


def _sync_folder(folder: Path) -> None:
    """Make the rename in `folder` durable. Windows cannot open a folder to sync it."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):  # filesystems that cannot
            raise
    finally:
        os.close(fd)


def _save_error(path: Path, error: OSError, existed: bool) -> GhostpenError:
    reason = error.strerror or str(error)
    kept = f"{path.name} on disk is unchanged" if existed else "nothing was written"
    what_to_do = _WHAT_TO_DO.get(error.errno or 0, "save it elsewhere with Save As")
    return GhostpenError(first_line(f"Cannot save {path.name}: {reason} ({kept}); "
                                    f"{what_to_do}.", limit=400))


def read_text(path: Path) -> str:
    """The text of a UTF-8 file (a byte-order mark is dropped, every line ending read as a
    line feed); one-line errors otherwise."""
    return read_document(path)[0]


def read_document(path: Path) -> tuple[str, TextFormat, FileStamp]:
    """read_text's text, the format to save it back in, and the stamp of the bytes read (to
    tell later whether another program changed the file)."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            data = file.read()
    except OSError as error:
        raise GhostpenError(f"Cannot open {path.name}: {error.strerror or error}.") from error
    try:
        text = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
        return text, TextFormat.of(data), FileStamp.of_bytes(stat, data)
    except UnicodeDecodeError as error:
        raise GhostpenError(
            f"Cannot open {path.name}: it is not UTF-8 text (Ghostpen opens UTF-8 .txt and .md)."
        ) from error


@dataclass(frozen=True)
class Recovery:
    """Text an earlier session autosaved and never closed."""

    file: Path
    text: str
    document_path: Path | None
    saved_at: float

    @property
    def name(self) -> str:
        return self.document_path.name if self.document_path else "an untitled document"

    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))

    def amount(self) -> str:
        """How much text, as a writer counts it: "312 words (1,845 characters)"."""
        words, characters = len(self.text.split()), len(self.text)
        return (f"{words:,} word{'' if words == 1 else 's'} "
                f"({characters:,} character{'' if characters == 1 else 's'})")

    def describe(self) -> str:
        return f"{self.name}, {self.amount()}, autosaved {self.when()}"


class Autosave:
    """This window's recovery file, and the ones that crashed sessions left behind."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.session = uuid.uuid4().hex
        self.file = self.folder / f"{self.session}.json"
        self.lock = QLockFile(str(self.folder / f"{self.session}.lock"))
        self.lock.setStaleLockTime(0)  # stale only when the owning process is gone
        self.lock.tryLock(0)

    def save(self, text: str, document_path: Path | None) -> None:
        data = {
            "version": _RECOVERY_VERSION,
            "text": text,
            "path": str(document_path) if document_path else None,
            "saved_at": time.time(),
        }
        write_text_atomic(self.file, json.dumps(data, ensure_ascii=False), _PRIVATE)

    def clear(self) -> None:
        """Forget this session's autosave (after a save, or a deliberate discard)."""
        with contextlib.suppress(OSError):
            self.file.unlink()

    def close(self) -> None:
        """A clean exit: nothing to recover, and the lock goes."""
        self.clear()
        self.lock.unlock()

    def recoverable(self) -> list[Recovery]:
        """Autosaves of sessions that are no longer running, newest first. The locks of ended
        sessions that left no autosave (killed before their first) and old temporary files of
        killed autosaves are removed on the way."""
        for lock in self.folder.glob("*.lock"):
            session = lock.stem
            if (session != self.session and not (self.folder / f"{session}.json").exists()
                    and self._owner_is_gone(session)):
                with contextlib.suppress(OSError):
                    lock.unlink()
        now = time.time()
        for temp in self.folder.glob(".*.tmp"):  # autosaves killed mid-write (the folder is ours)
            with contextlib.suppress(OSError):
                if now - temp.stat().st_mtime > ABANDONED_TEMP_S:
                    temp.unlink()
        found = []
        for file in self.folder.glob("*.json"):
            if file == self.file or not self._owner_is_gone(file.stem):
                continue
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
                path = data.get("path")
                found.append(
                    Recovery(
                        file=file,
                        text=str(data["text"]),
                        document_path=Path(path) if path else None,
                        saved_at=float(data.get("saved_at", file.stat().st_mtime)),
                    )
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue  # unreadable leftovers are skipped, never fatal
        return sorted(found, key=lambda r: r.saved_at, reverse=True)

    def discard(self, recovery: Recovery) -> None:
        with contextlib.suppress(OSError):
            recovery.file.unlink()
        with contextlib.suppress(OSError):
            (self.folder / f"{recovery.file.stem}.lock").unlink()

    def _owner_is_gone(self, session: str) -> bool:
        other = QLockFile(str(self.folder / f"{session}.lock"))
        other.setStaleLockTime(0)
        if other.tryLock(0):  # free or stale: its process has ended
            other.unlock()
            return True
        return False
