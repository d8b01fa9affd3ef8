"""`python -m app` and the `ghostpen` command: set up Qt, logging and the error hook, open the
window. Nothing here imports onnxruntime: the model loads on the worker thread after the
window is shown."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from logging.handlers import RotatingFileHandler
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app import LAUNCHED_AT, model_store
from app.engine.errors import GhostpenError, first_line, user_message
from app.paths import log_path, models_dir

log = logging.getLogger("app")

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], None]

# Qt's xcb plugin links this library, which Qt's wheels do not carry. Without it Qt aborts
# the process (exit 134) with a message about its plugin; Ghostpen says what to install.
XCB_CURSOR_LIBRARY = "libxcb-cursor.so.0"
MISSING_XCB_CURSOR = (
    "Ghostpen's window needs the system library libxcb-cursor0: install it with "
    "`sudo apt install libxcb-cursor0` (Debian/Ubuntu) or `sudo dnf install xcb-util-cursor` "
    "(Fedora), then start Ghostpen again.")


def run_gui(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ghostpen", description="Write with GPT-2, locally.")
    parser.add_argument("file", nargs="?", type=Path, help="a .txt or .md file to open")
    parser.add_argument("--smoke-test", action="store_true", help=argparse.SUPPRESS)
    options, qt_args = parser.parse_known_args(args)

    existing = QApplication.instance()
    if (existing is None and xcb_platform_expected(os.environ, qt_args)
            and not can_load_library(XCB_CURSOR_LIBRARY)):
        print(MISSING_XCB_CURSOR, file=sys.stderr)
        return 2
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
    # What killed downloads / conversions left in the models folder (up to a model's size), off
    # the GUI thread: deleting gigabytes takes a while.
    threading.Thread(target=model_store.remove_abandoned_work, args=(models_dir(),),
                     name="remove-abandoned-work", daemon=True).start()
    if options.file is not None:
        window.document.open(options.file)
    if options.smoke_test:  # build_installer.py --smoke: show the window for a second, quit
        shown_after = time.perf_counter() - LAUNCHED_AT
        QTimer.singleShot(0, lambda: print(f"window shown {shown_after:.2f} s after launch",
                                           flush=True))
        QTimer.singleShot(1000, app.quit)  # aboutToQuit runs window.shutdown
    return app.exec()


def xcb_platform_expected(environ: Mapping[str, str], qt_args: Sequence[str]) -> bool:
    """Qt will start its xcb (X11) plugin: on Linux with an X display, unless another platform
    is asked for or a Wayland session is found (Qt tries Wayland before xcb then)."""
    if not sys.platform.startswith("linux") or "-platform" in qt_args:
        return False
    if not environ.get("DISPLAY"):
        return False
    requested = environ.get("QT_QPA_PLATFORM", "")
    if requested:  # "xcb", "wayland;xcb" (tried in order), "xcb:option=value"
        return requested.split(";")[0].split(":")[0] == "xcb"
    return not (environ.get("WAYLAND_DISPLAY") or environ.get("XDG_SESSION_TYPE") == "wayland")


def can_load_library(name: str) -> bool:
    """The dynamic loader finds and loads `name`, searching as it will for Qt's plugin."""
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


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
        if isinstance(error, GhostpenError):
            message = user_message(error, "Something went wrong")
        else:
            summary = first_line(f"{type(error).__name__}: {error}")
            message = f"Something went wrong ({summary}). The details were written to {path}."
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

