"""What the window says about its model, its errors, and how every command is reached."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox, QTabBar
from pytestqt.qtbot import QtBot

from app.engine.errors import GhostpenError
from app.engine.events import EngineInfo, TokenEvent
from app.engine.fake import FakeEngine
from app.engine.sampling_params import SamplingParams
from app.ui.main import install_excepthook
from app.ui.main_window import MainWindow

from .conftest import Answers

ROOT = Path(__file__).resolve().parents[2]


class CpuFallbackEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.info = EngineInfo(model_name="gpt2", precision="fp16",
                               provider="CPUExecutionProvider",
                               fallback_reason="CUDA did not start (libcudnn.so.9 is missing); "
                                               "running on the CPU")


def test_a_device_fallback_is_shown_in_the_status_bar(
        make_window: Callable[..., MainWindow]) -> None:
    window = make_window(CpuFallbackEngine)
    assert window.fallback_label.isVisible()
    assert "libcudnn.so.9 is missing" in window.fallback_label.text()
    assert window.model_label.text() == "gpt2 · fp16 · CPU"


def test_a_new_window_shows_the_sampling_panel_in_front(window: MainWindow) -> None:
    """The Takes and Write panes are tabs beside it; the one added last was in front."""
    bars = [bar for bar in window.findChildren(QTabBar) if bar.isVisible()]
    assert [bar.tabText(bar.currentIndex()) for bar in bars] == ["Sampling"]


def test_without_a_model_the_window_says_how_to_add_one(
        qtbot: QtBot, make_window: Callable[..., MainWindow], isolated_dirs: Path) -> None:
    window = make_window(engine=None, wait_for_engine=False)  # the default: look for models
    qtbot.waitUntil(lambda: window.welcome is not None and window.welcome.isVisible(),
                    timeout=3000)
    assert window.welcome is not None
    # The welcome's two offers, and where a folder converted by hand goes; no second notice
    # above it saying the same
    assert str(isolated_dirs / "data" / "models") in window.welcome.folder_hint.text()
    assert window.notice.isHidden()
    assert window.model_label.text() == "No model"
    window.generate_action.trigger()  # pressable: it says what to do rather than greying out
    assert window.statusBar().currentMessage() == (
        "No model to write with yet: choose Download GPT-2 or Add from Folder above.")


def test_a_model_that_fails_to_load_is_explained(qtbot: QtBot,
                                                 make_window: Callable[..., MainWindow]) -> None:
    def broken(device: str) -> FakeEngine:
        raise GhostpenError("gpt2/model.onnx was made by an older converter; run "
                            "python -m models.export again.")

    window = make_window(factory=broken, wait_for_engine=False)
    qtbot.waitUntil(window.notice.isVisible, timeout=3000)
    assert window.notice.title.text() == "The model could not be loaded"
    assert "older converter" in window.notice.body.text()


class FailingEngine(FakeEngine):
    def generate(self, prompt: str, params: SamplingParams,
                 cancel: threading.Event | None = None) -> Iterator[TokenEvent]:
        raise GhostpenError("The model ran out of memory; try a smaller model.")
        yield  # pragma: no cover


def test_a_generation_error_is_one_line_in_the_status_bar(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window(FailingEngine)
    window.generate_action.trigger()
    qtbot.waitUntil(lambda: not window.generation.running, timeout=3000)
    assert window.statusBar().currentMessage() == (
        "⚠ The model ran out of memory; try a smaller model.")
    assert not window.editor.isReadOnly()


def test_every_menu_command_has_a_shortcut_and_none_is_shared(window: MainWindow) -> None:
    menus = window.menus
    menus.fill_recent()
    menus.fill_presets()
    # The recent files and presets are lists of the person's own things, not commands.
    choices = {*menus.recent_menu.actions(), *menus.presets_menu.actions()}
    commands = [(menu, a) for menu, a in menus.commands() if a not in choices]
    assert len(commands) > 30
    missing = [f"{menu} ▸ {a.text()}" for menu, a in commands if a.shortcut().isEmpty()]
    assert missing == []
    keys = [k.toString() for _, a in commands for k in a.shortcuts()]
    assert len(keys) == len(set(keys)), sorted(keys)
    chord_prefixes = {k.split(",")[0] for k in keys if "," in k}
    assert not chord_prefixes & set(keys), "a chord's first key may not be a shortcut itself"
    clear = window.clear_recent_action
    assert clear in menus.recent_menu.actions() and not clear.shortcut().isEmpty()


def test_widgets_have_accessible_names(window: MainWindow) -> None:
    for widget in (window.editor, window.panel.distribution, window.model_label,
                   window.speed_label, window.context_label, window.panel.preset_box):
        assert widget.accessibleName(), widget
    assert window.editor.accessibleDescription()
    assert "kept" in window.panel.distribution.accessibleDescription() or \
        window.panel.distribution.accessibleDescription()


def test_an_unexpected_error_shows_one_line_and_logs_the_traceback(
        tmp_path: Path, answer: Answers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    log_file = tmp_path / "ghostpen.log"
    import logging

    from app.ui.main import setup_logging

    setup_logging(log_file)
    answer.set(QMessageBox, "critical", QMessageBox.StandardButton.Ok)
    hook = install_excepthook(log_file)
    try:
        raise KeyError("settings")
    except KeyError as error:
        hook(type(error), error, error.__traceback__)
    for handler in logging.getLogger("app").handlers:
        handler.flush()
    message = answer.asked[0][1][2]
    assert message.startswith("Something went wrong (KeyError: 'settings').")
    assert "\n" not in message and str(log_file) in message
    assert "Traceback" in log_file.read_text()
    for handler in list(logging.getLogger("app").handlers):
        logging.getLogger("app").removeHandler(handler)
        handler.close()


def test_the_app_starts_and_closes_in_a_fresh_process(isolated_dirs: Path) -> None:
    """QApplication is one per process, so `python -m app`'s start-up runs in its own."""
    script = (
        "import sys\n"
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication(sys.argv)\n"
        "tries = 0\n"
        "def close():\n"
        "    global tries\n"
        "    tries += 1\n"
        "    if tries > 500:\n"
        "        print('the window never loaded its engine')\n"
        "        app.exit(3)\n"
        "        return\n"
        "    windows = [w for w in app.topLevelWidgets() if w.objectName() == 'main-window']\n"
        "    if windows and windows[0].engine_info is not None:\n"
        "        print('loaded', windows[0].model_label.text())\n"
        "        windows[0].close()\n"
        "    else:\n"
        "        QTimer.singleShot(20, close)\n"
        "QTimer.singleShot(0, close)\n"
        "from app.__main__ import main\n"
        "sys.exit(main([]))\n"
    )
    env = {**os.environ, "GHOSTPEN_FAKE_ENGINE": "1", "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "loaded fake · fp32 · Fake" in result.stdout
    assert "Traceback" not in result.stderr
