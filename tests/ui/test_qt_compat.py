"""PySide6 6.12's emit() drops a reference to True on every call; the guard keeps us alive."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QPlainTextEdit
from pytestqt.qtbot import QtBot

from app.ui import qt_compat


class _Emitter(QObject):
    ping = Signal(str)


def test_many_emits_do_not_use_up_true() -> None:
    emitter = _Emitter()
    before = sys.getrefcount(True)
    for _ in range(20_000):  # more than True's own count on CPython 3.11 without the guard
        emitter.ping.emit("x")
    assert before - sys.getrefcount(True) <= 20_000
    if qt_compat.pin_booleans() or sys.version_info < (3, 12):
        assert sys.getrefcount(True) > qt_compat.EXTRA_REFERENCES // 2


def test_many_repaints_of_token_colours_do_not_use_up_none(qtbot: QtBot) -> None:
    """setExtraSelections loses a reference to None per call in PySide6 6.12."""
    editor = QPlainTextEdit()
    qtbot.addWidget(editor)
    for _ in range(5_000):
        editor.setExtraSelections([])
    if qt_compat.pin_booleans() or sys.version_info < (3, 12):
        assert sys.getrefcount(None) > qt_compat.EXTRA_REFERENCES // 2
