"""The window with a real (tiny, random) GPT-2 through the real loader: no fake in the loop."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.ui.main_window import MainWindow
from app.ui.thread_priority import ENGINE_NICE

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


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="only Linux gives each thread its own nice value")
def test_the_engine_threads_give_way_to_the_window(real_window: MainWindow) -> None:
    """The worker, and onnxruntime's pool that it started (threads take their parent's name on
    Linux), run at a lower priority than the GUI thread, so a repaint is not kept waiting for
    a core while the model runs."""
    worker_ids: list[int] = []
    caller = threading.Thread(target=real_window.worker.run_on_engine,
                              args=(lambda engine: worker_ids.append(threading.get_native_id()),))
    caller.start()
    caller.join(10)

    def nice(thread_id: int) -> int:
        return os.getpriority(os.PRIO_PROCESS, thread_id)

    def name(thread_id: int) -> str:
        return Path(f"/proc/self/task/{thread_id}/comm").read_text().strip()

    threads = [int(entry.name) for entry in Path("/proc/self/task").iterdir()]
    engine_threads = [t for t in threads if name(t) == name(worker_ids[0])]
    assert worker_ids[0] in engine_threads
    assert {nice(t) for t in engine_threads} == {ENGINE_NICE}
    assert nice(threading.main_thread().native_id) == 0
