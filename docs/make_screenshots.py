"""Screenshots of the real window for the README: `python docs/make_screenshots.py [--src DIR]`.

The model is the trained stand-in (a small GPT-2 trained on English; ../shared/standin beside
the repository unless --src names another Hugging Face GPT-2 folder), converted with
models.export at the CPU's default precision into a temporary folder, so the pictures show
English-like text and probabilities that mean something; the surprise lens and find shots show
held-out English the model never trained on. Every run is seeded, so the same model writes the
same text each time (only clock times, speeds and the temporary folder's name change).

Run it under a real X server (the xcb platform, as on a person's desktop): with DISPLAY set it
uses that display (`Xvfb :99 -screen 0 1400x900x24 &`, then `DISPLAY=:99 python
docs/make_screenshots.py`), else it starts Xvfb itself. Each picture is the whole X screen,
popups included, grabbed by Qt, then compressed by optipng where it is installed.
"""

from __future__ import annotations

import argparse
import json
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
DEFAULT_SRC = ROOT.parent / "shared" / "standin"
MODEL_NAME = "gpt2-standin-16M"
SIZE = (1400, 900)

# In the stand-in's domain (its corpus is Python documentation prose, fortunes and the Debian
# Reference), so what it writes after this reads as English of that kind.
PARAGRAPH = (
    "The json module encodes Python objects as JSON text and decodes them again. A dictionary "
    "becomes a JSON object, a list becomes an array, and None becomes null."
)
TEXT = PARAGRAPH + "\n\nThe function returns"
# Seeds picked once by reading what the stand-in writes with them (temperature 0.6).
TEMPERATURE = 0.6
LIGHT_SEED, DARK_SEED = 4, 3
# Three takes of the same spot, then a continuation (its seed re-picked on 2026-12-02, when
# SmoothQuant's int8 weights made seed 6 start the continuation with a lone ".", which the
# Takes list then showed as the take's name).
TAKE_SEEDS = (1, 5, 2, 9)
SUMMARY_SEED = 2
GHOST_SEED = 6  # ghost text draws a fresh seed per request unless its preset has one
GHOST_PRESET = "Suggestions, seeded"
GHOST_TYPED = " the"  # typed before the ghost text: its suggestions read well here
# Held-out English for the surprise lens (from the stand-in's val-dev.txt, the Python logging
# cookbook; the model never trained on it): a heading and two paragraphs that repeat
# themselves ("to a single file from multiple processes"), as a writer's draft might, with a
# blank line between paragraphs as in TEXT.
LENS_TEXT = (
    "Logging to a single file from multiple processes\n\n"
    "Although logging is thread-safe, and logging to a single file from multiple threads in a "
    "single process is supported, logging to a single file from multiple processes is not "
    "supported, because there is no standard way to serialize access to a single file across "
    "multiple processes in Python. If you need to log to a single file from multiple processes, "
    "one way of doing this is to have all the processes log to a SocketHandler, and have a "
    "separate process which implements a socket server which reads from the socket and logs to "
    "file.\n\n"
    "You could also write your own handler which uses the Lock class from the multiprocessing "
    "module to serialize access to the file from your processes. The existing FileHandler and "
    "subclasses do not make use of multiprocessing at present, though they may do so in the "
    "future. Note that at present, the multiprocessing module does not provide working lock "
    "functionality on all platforms."
)
LENS_HOVERED = "on all platforms"  # the lens's popup is for "all": it expected "the", "a"…
FIND_TEXT, REPLACE_TEXT = "single file", "one file"
ZOOM_STEPS = 2  # the find shot's text, two steps larger (View ▸ Larger Text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC,
                        help="a Hugging Face GPT-2 checkpoint folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT,
                        help="where the PNG files go (default: %(default)s)")
    return parser.parse_args(argv)


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


def convert_model(src: Path, models: Path) -> None:
    """The checkpoint as an installed model, at the precision the window picks on a CPU."""
    from app.model_store import default_precision
    from models.export import export_model

    precision = default_precision(["CPUExecutionProvider"])
    export_model(src, models / f"{MODEL_NAME}-{precision}", precision, check=True,
                 progress=lambda _: None)


def seeded_summary(config: Path) -> None:
    """A copy of the built-in Summarise with a fixed seed, where a person's own actions go (it
    replaces the built-in one by file name): its sampling is random otherwise."""
    from app.writing_actions import builtin_actions_dir

    action = json.loads((builtin_actions_dir() / "summarise.json").read_text(encoding="utf-8"))
    action["sampling"]["seed"] = SUMMARY_SEED
    folder = config / "actions"
    folder.mkdir(parents=True)
    (folder / "summarise.json").write_text(json.dumps(action), encoding="utf-8")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    src = args.src.resolve()
    if not (src / "config.json").is_file():
        print(f"error: {src} is not a GPT-2 checkpoint folder (no config.json); give one with "
              "--src.", file=sys.stderr)
        return 2
    xvfb = start_display()
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    sandbox = Path(tempfile.mkdtemp(prefix="ghostpen-shots-"))
    os.environ["GHOSTPEN_CONFIG_DIR"] = str(sandbox / "config")
    os.environ["GHOSTPEN_DATA_DIR"] = str(sandbox / "data")
    try:
        convert_model(src, sandbox / "data" / "models")
        seeded_summary(sandbox / "config")
        args.out.mkdir(parents=True, exist_ok=True)
        written = shoot(args.out)
        compress(written)
        return 0
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
        if xvfb is not None:
            xvfb.terminate()


def compress(paths: list[Path]) -> None:
    """Smaller PNG files, the same pixels, where optipng is installed (Qt's own compression
    leaves them about a fifth larger)."""
    optipng = shutil.which("optipng")
    if optipng is not None and paths:
        subprocess.run([optipng, "-quiet", "-o2", *map(str, paths)], check=True)


def shoot(out: Path) -> list[Path]:
    """Drive the window through each feature; the PNG files written."""
    from PySide6.QtCore import QEvent, QEventLoop, QPoint, Qt, QTimer
    from PySide6.QtGui import QHelpEvent, QTextCursor
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QToolTip

    from app.engine.sampling_params import SamplingParams
    from app.ui.ghost_text import SUGGESTION_PARAMS
    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings
    from app.ui.spans import TokenSpan

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

    written: list[Path] = []

    def capture(name: str) -> None:
        pause(0.5)  # the last repaints, and the distribution view's throttled update
        path = out / f"{name}.png"
        if not app.primaryScreen().grabWindow(0).save(str(path)):  # 0: the whole screen
            raise OSError(f"could not write {path}")
        written.append(path)
        print(f"wrote {path}")

    def generate(seed: int, regenerate: bool = False) -> None:
        window.panel.set_params(SamplingParams(seed=seed, max_new_tokens=60,
                                               temperature=TEMPERATURE))
        (window.regenerate_action if regenerate else window.generate_action).trigger()
        wait_for(lambda: window.generation.running)
        wait_for(lambda: not window.generation.running)

    def move_cursor(position: int | QTextCursor.MoveOperation) -> None:
        cursor = window.editor.textCursor()
        if isinstance(position, int):
            cursor.setPosition(position)
        else:
            cursor.movePosition(position)
        window.editor.setTextCursor(cursor)

    def select(start: int, end: int) -> None:
        cursor = window.editor.textCursor()
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        window.editor.setTextCursor(cursor)

    def line_y(position: int) -> int:
        at = QTextCursor(window.editor.document())
        at.setPosition(position)
        return window.editor.cursorRect(at).y()

    def starts_line(span: TokenSpan) -> bool:
        # A token whose leading space ends the line above: its popup would open up there.
        return line_y(span.start + 1) != line_y(span.start)

    def undecided_token() -> TokenSpan:
        """A word of the last line the model drew from several likely ones (not its first
        choice), so its alternatives show a real choice and their popup, opening below the
        word, covers none of the text (an early word where the last line has none)."""
        spans = window.editor.tokens()
        last_y = max(line_y(span.end) for span in spans)
        words = [span for span in spans
                 if span.event.text.strip().isalpha() and len(span.event.text.strip()) > 2
                 and not starts_line(span)]
        words = [span for span in words if line_y(span.end) == last_y] or words[:25]
        drawn = [span for span in words
                 if span.event.token_id in [a.token_id for a in span.event.alternatives[1:]]]
        return max(drawn, key=lambda span: span.event.p) if drawn else words[0]

    def show_sampling_panel() -> None:
        window.dock.show()
        window.dock.raise_()

    def hover(position: int) -> None:
        """What resting the mouse on the character at `position` shows: Qt's tooltip event,
        sent where the character is drawn."""
        viewport = window.editor.viewport()
        at = QTextCursor(window.editor.document())
        at.setPosition(position)
        rect = window.editor.cursorRect(at)
        point = QPoint(rect.x() + 3, rect.center().y())
        QApplication.sendEvent(viewport, QHelpEvent(QEvent.Type.ToolTip, point,
                                                   viewport.mapToGlobal(point)))
        wait_for(QToolTip.isVisible)

    def new_document(text: str) -> None:
        window.editor.document().setModified(False)  # nothing to save: no question
        window.document.new()
        window.editor.setPlainText(text)
        window.statusBar().clearMessage()  # the last generation's line is not about this one

    wait_for(lambda: window.engine_info is not None)
    window.editor.setPlainText(TEXT)
    move_cursor(QTextCursor.MoveOperation.End)
    window.set_token_view(True)
    show_sampling_panel()

    window.set_theme("light")
    generate(LIGHT_SEED)
    capture("light-generation")
    move_cursor(undecided_token().end)
    window.show_alternatives()
    capture("light-alternatives")
    window.editor.popup.hide()
    window.editor.undo()

    window.set_theme("dark")
    move_cursor(QTextCursor.MoveOperation.End)
    generate(DARK_SEED)
    capture("dark-generation")
    window.editor.undo()
    window.statusBar().clearMessage()  # its line is about a generation that is now undone
    window.set_theme("light")

    # The next-token chances after the paragraph, with the sampler's cuts.
    move_cursor(QTextCursor.MoveOperation.End)
    window.set_token_view(False)
    pause(0.5)
    capture("light-distribution")

    # Ghost text: type at the end and let the pause pass, with the built-in suggestion
    # sampler given a seed through a preset of its own (Suggestion Settings offer presets).
    window.panel.presets.save(GHOST_PRESET, SUGGESTION_PARAMS.replace(seed=GHOST_SEED))
    window.autocomplete.apply_settings({"suggestion_preset": GHOST_PRESET})
    window.editor.setFocus()
    window.editor.insertPlainText(GHOST_TYPED)
    window.autocomplete.request_now()
    wait_for(lambda: window.editor.ghost is not None)
    capture("light-ghost-text")
    window.editor.dismiss_ghost()
    window.editor.undo()

    # The Write pane: Summarise the selected first paragraph (the status bar counts the
    # selection).
    select(0, len(PARAGRAPH))
    window.statusBar().clearMessage()  # the last generation's line is not about this
    window.actions_pane.run("summarise")
    wait_for(lambda: window.actions_pane.running)
    wait_for(lambda: not window.actions_pane.running)
    select(0, len(PARAGRAPH))
    capture("light-write")
    window.write_dock.hide()
    show_sampling_panel()

    # Takes, in a new document: a generation, two regenerations of it (its siblings), and a
    # continuation of the second (its child).
    new_document(TEXT)
    move_cursor(QTextCursor.MoveOperation.End)
    window.set_token_view(True)
    generate(TAKE_SEEDS[0])
    for seed in TAKE_SEEDS[1:-1]:
        generate(seed, regenerate=True)
    window.takes_dock.show()
    window.takes_dock.raise_()
    second = window.takes_pane.items()[1].data(0, Qt.ItemDataRole.UserRole)
    window.panel.set_params(SamplingParams(seed=TAKE_SEEDS[-1], max_new_tokens=40,
                                           temperature=TEMPERATURE))
    window.takes.continue_from(second)
    wait_for(lambda: not window.generation.running)
    capture("light-takes")

    # The surprise lens on held-out English, the pointer resting on a word of the last line
    # (its popup opens below, over no text), the cursor at the end of that paragraph.
    new_document(LENS_TEXT)
    window.set_token_view(False)
    show_sampling_panel()
    window.lens.set_enabled(True)
    wait_for(lambda: bool(window.lens.scores())
             and not window.lens.legend.progress_label.text())
    move_cursor(QTextCursor.MoveOperation.End)
    hover(LENS_TEXT.index(LENS_HOVERED) + len("on "))
    capture("light-lens")
    QToolTip.hideText()
    window.lens.set_enabled(False)

    # Find and replace on the same text, two steps larger: the bar counts the matches and
    # selects the first after the cursor; the status bar counts the selection.
    for _ in range(ZOOM_STEPS):
        window.zoom_in_action.trigger()
    move_cursor(QTextCursor.MoveOperation.Start)
    window.replace_action.trigger()
    QTest.keyClicks(window.find_bar.find_edit, FIND_TEXT)
    window.find_bar.replace_edit.setText(REPLACE_TEXT)
    window.find_bar.find_next()  # past the heading's match, to one in the paragraph
    capture("light-find")
    window.find_bar.close_bar()
    window.zoom_reset_action.trigger()

    show_sampling_panel()
    window.open_models_dialog()
    capture("light-models")
    window.shutdown(keep_unsaved=False)
    return written


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
