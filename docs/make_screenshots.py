"""Screenshots of the real window under Xvfb, for the README: `python docs/make_screenshots.py`.

Starts Xvfb when no display is set, runs the window on the xcb platform with a random 124M
model (int8) converted on the fly (cached under the platform cache dir), writes a paragraph,
generates, and captures the whole X screen with ImageMagick's `import`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
SIZE = (1440, 900)
TEXT = (
    "The lighthouse keeper climbed the hundred and twelve steps each evening, counting them "
    "under his breath, and lit the lamp that warned the ships away from the rocks.\n\n"
    "On the night of the great storm he wrote in his log:"
)


def start_display() -> subprocess.Popen[bytes] | None:
    if os.environ.get("DISPLAY"):
        return None
    display = ":97"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", f"{SIZE[0]}x{SIZE[1]}x24",
                             "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.environ["DISPLAY"] = display
    time.sleep(1.0)
    return xvfb


def model_folder() -> Path:
    from platformdirs import user_cache_dir

    from models.export import export_model
    from models.random import write_random_checkpoint

    cache = Path(user_cache_dir("ghostpen")) / "bench"
    checkpoint, model = cache / "gpt2-checkpoint", cache / "gpt2-int8"
    if not (checkpoint / "model.safetensors").exists():
        write_random_checkpoint("gpt2", checkpoint, seed=0)
    if not (model / "manifest.json").exists():
        export_model(checkpoint, model, "int8", check=True, progress=lambda _: None)
    return model


def main() -> int:
    xvfb = start_display()
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    sandbox = Path(tempfile.mkdtemp(prefix="ghostpen-shots-"))
    os.environ["GHOSTPEN_CONFIG_DIR"] = str(sandbox / "config")
    os.environ["GHOSTPEN_DATA_DIR"] = str(sandbox / "data")
    (sandbox / "data" / "models").mkdir(parents=True)
    (sandbox / "data" / "models" / "gpt2-124M-int8").symlink_to(model_folder())
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        return shoot()
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
        if xvfb is not None:
            xvfb.terminate()


def shoot() -> int:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtGui import QTextCursor
    from PySide6.QtWidgets import QApplication

    from app.engine.sampling_params import SamplingParams
    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings

    app = QApplication([sys.argv[0]])
    app.setApplicationName("Ghostpen")
    window = MainWindow(Settings())
    window.setGeometry(0, 0, *SIZE)
    window.show()

    def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
        # A nested event loop, not QTest.qWait: qWait keeps the GIL while it sleeps, which
        # slows the engine's thread several times over and would show in the status bar.
        deadline = time.monotonic() + seconds
        loop = QEventLoop()

        def check() -> None:
            if condition() or time.monotonic() > deadline:
                loop.quit()

        timer = QTimer()
        timer.timeout.connect(check)
        timer.start(20)
        loop.exec()
        timer.stop()
        if not condition():
            raise TimeoutError("the window did not get there in time")

    def pause(seconds: float) -> None:
        until = time.monotonic() + seconds
        wait_for(lambda: time.monotonic() >= until)

    def capture(name: str) -> None:
        pause(0.3)
        subprocess.run(["import", "-window", "root", str(OUT / f"{name}.png")], check=True)
        print(f"wrote {OUT / name}.png")

    wait_for(lambda: window.engine_info is not None)
    window.editor.setPlainText(TEXT)
    window.editor.moveCursor(QTextCursor.MoveOperation.End)
    window.panel.set_params(SamplingParams(seed=3, max_new_tokens=60, temperature=0.9))
    for theme in ("light", "dark"):
        window.set_theme(theme)
        window.set_token_view(True)
        window.generate_action.trigger()
        wait_for(lambda: len(window.editor.toPlainText()) > len(TEXT) + 120)
        capture(f"{theme}-generation")
        wait_for(lambda: not window.generation.running)
        if theme == "light":
            cursor = window.editor.textCursor()
            cursor.setPosition(len(TEXT) + 12)
            window.editor.setTextCursor(cursor)
            window.show_alternatives()
            capture("light-alternatives")
            window.editor.popup.hide()
        window.editor.undo()
        window.editor.moveCursor(QTextCursor.MoveOperation.End)
    window.set_theme("light")
    capture("light-distribution")

    # Ghost text: type at the end and let the pause pass.
    window.set_token_view(False)
    window.editor.setFocus()
    window.editor.moveCursor(QTextCursor.MoveOperation.End)
    window.editor.insertPlainText(" The sea")
    window.autocomplete.request_now()
    wait_for(lambda: window.editor.ghost is not None)
    capture("light-ghost-text")
    window.editor.dismiss_ghost()

    window.open_models_dialog()
    capture("light-models")
    window.shutdown(keep_unsaved=False)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
