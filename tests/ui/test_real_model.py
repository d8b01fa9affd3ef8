"""The window with a real (tiny, random) GPT-2 through the real loader: no fake in the loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.ui.main_window import MainWindow

from .conftest import generate_and_wait, set_max_tokens

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose models/ holds a tiny random GPT-2, converted by our own exporter."""
    from models.export import export_model
    from models.random import write_random_checkpoint

    root = tmp_path_factory.mktemp("tiny")
    write_random_checkpoint("tiny", root / "checkpoint", seed=0)
    export_model(root / "checkpoint", root / "data" / "models" / "tiny")
    return root / "data"


@pytest.fixture
def real_window(qtbot: QtBot, tiny_model: Path, monkeypatch: pytest.MonkeyPatch,
                make_window: Callable[..., MainWindow]) -> MainWindow:
    monkeypatch.setenv("GHOSTPEN_DATA_DIR", str(tiny_model))
    window = make_window(engine=None, wait_for_engine=False)  # the default factory
    qtbot.waitUntil(lambda: window.engine_info is not None, timeout=20000)
    return window


def test_the_installed_model_loads_and_writes(qtbot: QtBot, real_window: MainWindow) -> None:
    window = real_window
    assert window.model_label.text() == "tiny · fp32 · CPU"
    assert window.notice.isHidden()
    set_max_tokens(window, 8)
    qtbot.keyClicks(window.editor, "Once upon a time")
    qtbot.waitUntil(lambda: len(window.panel.distribution.candidates()) == 12, timeout=5000)
    generate_and_wait(qtbot, window)
    text = window.editor.toPlainText()
    assert text.startswith("Once upon a time")
    # every written character is in a token span; a token holding only the first byte of a
    # character has no text of its own (the seed is random: ~3% of runs write one), so up to 8
    spans = window.editor.tokens()
    assert "".join(s.event.text for s in spans) == text[len("Once upon a time"):]
    assert 6 <= len(spans) <= 8
    assert all(len(s.event.alternatives) == 10 for s in spans)
    assert window.context_label.text() == "Context 12 / 1024"  # 4 prompt + 8 new tokens
    window.editor.undo()
    assert window.editor.toPlainText() == "Once upon a time"


def test_a_gpu_that_is_not_there_falls_back_and_says_why(qtbot: QtBot,
                                                         real_window: MainWindow) -> None:
    window = real_window
    cuda = next(a for a in window.menus.device_group.actions() if a.data() == "cuda")
    cuda.trigger()
    qtbot.waitUntil(lambda: window.engine_info is not None and window.fallback_label.isVisible(),
                    timeout=20000)
    assert "CUDAExecutionProvider is not in this onnxruntime build" in (
        window.fallback_label.text())
    assert window.model_label.text() == "tiny · fp32 · CPU"


def test_stop_with_a_real_model(qtbot: QtBot, real_window: MainWindow) -> None:
    window = real_window
    set_max_tokens(window, 1000)
    qtbot.keyClicks(window.editor, "The")
    qtbot.keyClick(window.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(window.editor.tokens()) >= 3, timeout=10000)
    with qtbot.waitSignal(window.worker.generation_finished, timeout=10000):
        qtbot.keyClick(window.editor, Qt.Key.Key_Escape)
        at_stop = window.editor.toPlainText()
    assert window.editor.toPlainText() == at_stop
