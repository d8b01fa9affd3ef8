"""Reading and saving documents, and the autosave that brings text back after a crash.

A save writes a temporary file beside the target and renames it over the target, so a crash
or a full disk never leaves a half-written document. Autosaves are small JSON files, one per
running window, each guarded by a QLockFile: a file whose lock nobody holds belongs to a
session that ended without closing cleanly, and is offered back.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QLockFile

from app.engine.errors import GhostpenError

FILE_FILTER = ";;".join(("Text and Markdown (*.txt *.md *.markdown)", "Text (*.txt)",
                         "Markdown (*.md)", "All files (*)"))
_RECOVERY_VERSION = 1


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` as UTF-8 to `path` all at once: a temp file, then a rename over the target."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise GhostpenError(f"Cannot save {path.name}: {error.strerror or error}.") from error
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise GhostpenError(f"Cannot save {path.name}: {error.strerror or error}.") from error


def read_text(path: Path) -> str:
    """The text of a UTF-8 file (a byte-order mark is dropped); one-line errors otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise GhostpenError(f"Cannot open {path.name}: {error.strerror or error}.") from error
    try:
        return data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
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

    def describe(self) -> str:
        name = self.document_path.name if self.document_path else "an untitled document"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))
        return f"{name}, autosaved {when}"


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
        write_text_atomic(self.file, json.dumps(data, ensure_ascii=False))

    def clear(self) -> None:
        """Forget this session's autosave (after a save, or a deliberate discard)."""
        with contextlib.suppress(OSError):
            self.file.unlink()

    def close(self) -> None:
        """A clean exit: nothing to recover, and the lock goes."""
        self.clear()
        self.lock.unlock()

    def recoverable(self) -> list[Recovery]:
        """Autosaves of sessions that are no longer running, newest first."""
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
