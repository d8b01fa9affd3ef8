"""What a writer waits for in the real window: from the end of the typing pause to grey text.

`python -m app bench autocomplete` times `engine.suggest` itself (the compute). Here the real
MainWindow, with the model on its worker thread and the autocomplete controller's own timers,
gets one key at a time; after each, the clock runs from the end of the configured pause (the
key's time + the delay) to the moment the editor shows the suggestion. Because the controller
starts the work inside the pause (app/ui/suggestion_timing.py), this is what remains of the
compute once the pause has hidden what it can. Esc dismisses each suggestion before the next
key, so that every key asks for a new one (typing the suggestion's own next letter would keep
it instead).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

SETTLE_KEYS = 2  # the first suggestions time the model; the lead is known after them


def measure_after_pause(document: str, keystrokes: str, timeout_s: float = 10.0) -> list[float]:
    """ms from the end of each key's pause to its suggestion on screen, in a real window whose
    model comes from the data folder (GHOSTPEN_DATA_DIR); the first SETTLE_KEYS are left out."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtGui import QTextCursor
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    window = MainWindow(Settings())
    window.show()
    editor = window.editor
    loop = QEventLoop()
    deadline = QTimer(singleShot=True)
    deadline.timeout.connect(loop.quit)
    editor.ghost_changed.connect(lambda: loop.quit() if editor.ghost is not None else None)

    def wait_for(condition: Callable[[], bool], what: str) -> None:
        deadline.start(round(timeout_s * 1000))
        while not condition() and deadline.isActive():
            loop.exec()
        if not condition():
            raise RuntimeError(f"{what} within {timeout_s:.0f} s")

    engine_loaded = QTimer(interval=10)
    engine_loaded.timeout.connect(lambda: loop.quit() if window.engine_info else None)
    engine_loaded.start()
    wait_for(lambda: window.engine_info is not None, "the model did not load")
    engine_loaded.stop()
    editor.setPlainText(document)
    editor.moveCursor(QTextCursor.MoveOperation.End)
    editor.setFocus()
    delay_s = window.autocomplete.setting("suggestion_delay_ms") / 1000
    after_pause = []
    for typed in keystrokes:
        QTest.keyClick(editor, typed)
        pause_ends = time.monotonic() + delay_s
        wait_for(lambda: editor.ghost is not None, "no suggestion appeared")
        after_pause.append((time.monotonic() - pause_ends) * 1000)  # < 0: shown too early
        QTest.keyClick(editor, Qt.Key.Key_Escape)
    window.shutdown(keep_unsaved=False)
    window.hide()  # not close(): that would ask whether to save the typed text
    window.deleteLater()
    app.processEvents()
    return after_pause[SETTLE_KEYS:]
