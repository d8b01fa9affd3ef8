"""What a document's file held when the window last read or wrote it, to tell whether another
program (another editor, a sync client) has changed it since: a save would otherwise replace
that program's text without a word."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileStamp:
    """The file's modification time and size, and a hash of its bytes: the time and size are
    what is compared first (a stat, no read); the hash tells a file only touched (same bytes:
    a sync client, `touch`, a coarse-clocked network share) from one rewritten."""

    mtime_ns: int
    size: int
    sha256: str

    @staticmethod
    def of_bytes(stat: os.stat_result, data: bytes) -> FileStamp:
        """The stamp of a file read as `data` while it had `stat` (one read serves both)."""
        return FileStamp(stat.st_mtime_ns, stat.st_size, _digest(data))

    @staticmethod
    def of(path: Path) -> FileStamp | None:
        """The file as it is now; None when it cannot be read (gone, or no permission)."""
        try:
            with open(path, "rb") as file:
                return FileStamp.of_bytes(os.fstat(file.fileno()), file.read())
        except OSError:
            return None

    def changed_since(self, path: Path) -> FileStamp | None:
        """The file's stamp now, when `path` holds other bytes than it did; else None. A file
        gone (deleted, renamed) is not a change to keep: saving writes it anew."""
        try:
            stat = os.stat(path)
        except OSError:
            return None
        if (stat.st_mtime_ns, stat.st_size) == (self.mtime_ns, self.size):
            return None
        now = FileStamp.of(path)
        return now if now is not None and now.sha256 != self.sha256 else None
