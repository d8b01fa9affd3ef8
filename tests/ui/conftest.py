"""GUI test setup: settings and data dirs in tmp_path, no real dialogs, windows closed cleanly.

Every test gets its own config and data folders through GHOSTPEN_CONFIG_DIR and
GHOSTPEN_DATA_DIR. A modal dialog would hang an offscreen test, so the static dialog helpers
fail loudly unless a test answers them (the `answer` fixture).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QFileDialog, QFontDialog, QInputDialog, QMessageBox
from pytestqt.qtbot import QtBot

from app.engine.fake import FakeEngine
from app.engine.protocol import TextEngine
from app.ui.engines import EngineFactory
from app.ui.main_window import MainWindow
from app.ui.settings import Settings

DIALOGS = [
    (QMessageBox, "question"), (QMessageBox, "warning"), (QMessageBox, "critical"),
    (QMessageBox, "information"), (QMessageBox, "about"),
    (QFileDialog, "getOpenFileName"), (QFileDialog, "getSaveFileName"),
    (QInputDialog, "getText"), (QFontDialog, "getFont"),
]


@pytest.fixture(autouse=True)
def own_folders(isolated_dirs: Path) -> Path:
    """Every GUI test in its own folders (isolated_dirs, tests/conftest.py)."""
    return isolated_dirs


class Answers:
    """Canned replies for the static dialog helpers; any other dialog fails the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.asked: list[tuple[str, tuple[Any, ...]]] = []
        for owner, name in DIALOGS:
            monkeypatch.setattr(owner, name, self._refuse(name))

    def _refuse(self, name: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"unexpected dialog {name}{args[1:3]}")

        return staticmethod(refuse)

    def set(self, owner: type, name: str, reply: Any) -> None:
        def answer(*args: Any, **kwargs: Any) -> Any:
            self.asked.append((name, args))
            return reply

        self._monkeypatch.setattr(owner, name, staticmethod(answer))


@pytest.fixture(autouse=True)
def answer(monkeypatch: pytest.MonkeyPatch) -> Answers:
    return Answers(monkeypatch)


def factory_of(engine: Callable[[], TextEngine]) -> EngineFactory:
    return lambda device: engine()


@pytest.fixture
def make_window(qtbot: QtBot) -> Iterator[Callable[..., MainWindow]]:
    """Build a real MainWindow, shown, with its engine loaded (FakeEngine unless told)."""
    windows: list[MainWindow] = []

    def make(engine: Callable[[], TextEngine] | None = FakeEngine,
             factory: EngineFactory | None = None, wait_for_engine: bool = True) -> MainWindow:
        window = MainWindow(Settings(), factory or (factory_of(engine) if engine else None))
        windows.append(window)  # closed below, not by qtbot: unsaved text must not ask
        window.show()
        qtbot.waitExposed(window)
        if wait_for_engine:
            qtbot.waitUntil(lambda: window.engine_info is not None, timeout=5000)
        return window

    yield make
    for window in windows:
        window.editor.document().setModified(False)
        window.close()
        window.shutdown()
        window.deleteLater()


@pytest.fixture
def window(make_window: Callable[..., MainWindow]) -> MainWindow:
    return make_window()


def set_number(window: MainWindow, name: str, value: float) -> None:
    """Type a value into a sampler's number box, as a person would."""
    from PySide6.QtWidgets import QSpinBox

    box = window.panel.rows[name].box
    if isinstance(box, QSpinBox):
        box.setValue(int(value))
    else:
        box.setValue(value)


def set_max_tokens(window: MainWindow, n: int) -> None:
    set_number(window, "max_new_tokens", n)


def generate_and_wait(qtbot: QtBot, window: MainWindow) -> None:
    """Press Ctrl+Enter as a person would and wait for the run to end."""
    from PySide6.QtCore import Qt

    qtbot.keyClick(window.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert window.generation.running or window.editor.toPlainText()
    qtbot.waitUntil(lambda: not window.generation.running, timeout=5000)
