"""Settings: one defaults dict, typed read-back, a redirected folder, and a real restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.ui.main_window import MainWindow
from app.ui.settings import DEFAULTS, Settings
from app.ui.theme import is_dark

from .conftest import set_number


def test_settings_live_in_the_redirected_config_dir(isolated_dirs: Path) -> None:
    settings = Settings()
    assert settings.path == isolated_dirs / "config" / "settings.json"
    assert settings.get("theme") == DEFAULTS["theme"]


def test_a_value_of_the_wrong_type_is_ignored(isolated_dirs: Path) -> None:
    path = isolated_dirs / "config" / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"font_size": "huge", "theme": "dark", "unknown": 1}))
    settings = Settings()
    assert settings.get("font_size") == DEFAULTS["font_size"]
    assert settings.get("theme") == "dark"


def test_a_corrupt_file_falls_back_to_defaults_and_says_so(isolated_dirs: Path) -> None:
    path = isolated_dirs / "config" / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    settings = Settings()
    assert settings.get("theme") == "system"
    assert "could not be read" in settings.load_error


def test_settings_survive_a_restart(qtbot: QtBot, make_window: Callable[..., MainWindow]
                                    ) -> None:
    seen_devices: list[str] = []

    def factory(device: str) -> object:
        from app.engine.fake import FakeEngine

        seen_devices.append(device)
        return FakeEngine()

    window = make_window(factory=factory)
    window.resize(700, 520)  # the offscreen screen is 800 x 600
    next(a for a in window.menus.theme_group.actions() if a.data() == "dark").trigger()
    window.zoom_in_action.trigger()
    window.token_view_action.trigger()
    set_number(window, "temperature", 1.4)
    next(a for a in window.menus.device_group.actions() if a.data() == "cpu").trigger()
    qtbot.waitUntil(lambda: seen_devices[-1:] == ["cpu"] and window.engine_info is not None)
    window.close()
    QApplication.setPalette(QApplication.style().standardPalette())  # forget the dark one

    again = make_window(factory=factory)
    assert (again.width(), again.height()) == (700, 520)
    assert is_dark(QApplication.palette())
    assert again.editor.font().pointSize() == DEFAULTS["font_size"] + 1
    assert again.token_view_action.isChecked() and again.editor.token_view()
    assert again.panel.params().temperature == 1.4
    assert again.panel.modified_label.text() == "modified"
    assert seen_devices[-1] == "cpu"
    assert [a.data() for a in again.menus.device_group.actions() if a.isChecked()] == ["cpu"]
