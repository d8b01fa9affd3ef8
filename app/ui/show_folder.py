"""Showing one of Ghostpen's folders in the system's file manager, and a link to it."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices


def show_folder(folder: Path) -> None:
    """Open `folder` in the file manager, made first if it is not there yet (a first run has
    no models folder until the first model is installed)."""
    folder.mkdir(parents=True, exist_ok=True)
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def folder_link(folder: Path) -> str:
    """Rich text: the folder's path, a link to it."""
    return f'<a href="{QUrl.fromLocalFile(str(folder)).toString()}">{html.escape(str(folder))}</a>'
