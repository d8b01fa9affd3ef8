"""`python -m app` and the `ghostpen` command: set up Qt, logging and the error hook, open the
window. Nothing here imports onnxruntime: the model loads on the worker thread after the
window is shown."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable
from logging.handlers import RotatingFileHandler
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app import LAUNCHED_AT
from app.engine.errors import GhostpenError
from app.paths import log_path

log = logging.getLogger("app")

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], None]


def run_gui(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ghostpen", description="Write with GPT-2, locally.")
    parser.add_argument("file", nargs="?", type=Path, help="a .txt or .md file to open")
    parser.add_argument("--smoke-test", action="store_true", help=argparse.SUPPRESS)
    options, qt_args = parser.parse_known_args(args)

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(
        [sys.argv[0], *qt_args])
    app.setApplicationName("Ghostpen")
    app.setOrganizationName("Ghostpen")
    app.setApplicationDisplayName("Ghostpen")
    setup_logging(log_path())
    install_excepthook(log_path())

    from app.ui.main_window import MainWindow  # after QApplication: widgets need it
    from app.ui.settings import Settings

    window = MainWindow(Settings())
    app.aboutToQuit.connect(lambda: window.shutdown(keep_unsaved=True))  # no-op after a close
    window.show()
    if options.file is not None:
        window.document.open(options.file)
    if options.smoke_test:  # build_installer.py --smoke: show the window for a second, quit
        shown_after = time.perf_counter() - LAUNCHED_AT
        QTimer.singleShot(0, lambda: print(f"window shown {shown_after:.2f} s after launch",
                                           flush=True))
        QTimer.singleShot(1000, app.quit)  # aboutToQuit runs window.shutdown
    return app.exec()


def setup_logging(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = RotatingFileHandler(path, maxBytes=1_000_000, backupCount=2,
                                                       encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def install_excepthook(path: Path) -> ExceptHook:
    """No traceback reaches a person: it goes to the log, and they see one line."""
    showing = threading.Lock()

    def hook(kind: type[BaseException], error: BaseException,
             traceback: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, traceback)
            return
        log.error("unhandled error", exc_info=(kind, error, traceback))
        message = one_line(error, path)
        app = QApplication.instance()
        on_gui_thread = threading.current_thread() is threading.main_thread()
        if app is not None and on_gui_thread and showing.acquire(blocking=False):
            try:
                QMessageBox.critical(None, "Ghostpen", message)
            finally:
                showing.release()
        elif sys.stderr is not None:  # None in a windowed (frozen) build
            print(message, file=sys.stderr)

    sys.excepthook = hook
    threading.excepthook = lambda a: hook(a.exc_type, a.exc_value or a.exc_type(),
                                          a.exc_traceback)
    return hook


def one_line(error: BaseException, path: Path) -> str:
    if isinstance(error, GhostpenError) and str(error):
        return str(error).splitlines()[0]
    summary = f"{type(error).__name__}: {error}".splitlines()[0][:200]
    return f"Something went wrong ({summary}). The details were written to {path}."
