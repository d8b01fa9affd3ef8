"""Models ▸ Serve on 127.0.0.1:8089: the local completions server, inside the window.

The same server as `python -m app serve` (app/serve), on the window's engine: its queue hands
each request to the window's EngineWorker (`run_on_engine`), so the worker's thread stays the
engine's only caller, and the window's own work goes first when both wait. Off at every start:
serving is something a person switches on. While it runs, the status bar shows the address.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSignalBlocker
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMenu

from app.engine.errors import GhostpenError
from app.engine.events import EngineInfo
from app.ui.worker import EngineWorker

if TYPE_CHECKING:  # imported when serving starts: Starlette and uvicorn are an optional extra
    from starlette.applications import Starlette

    from app.serve.api import ServedModel
    from app.serve.engine_queue import EngineQueue
    from app.serve.server import BackgroundServer

HOST = "127.0.0.1"
PORT = 8089
SHORTCUT = "Ctrl+K, P"  # with the device and theme chords of the Models and View menus
STOP_WAIT_S = 2.0  # how long closing waits for a request the worker has not reached yet


@dataclass(frozen=True)
class _Serving:
    server: BackgroundServer
    queue: EngineQueue
    app: Starlette
    sock: socket.socket


class ServeToggle(QObject):
    def __init__(self, window: QMainWindow, worker: EngineWorker,
                 show_message: Callable[[str], None]) -> None:
        super().__init__(window)
        self.port = PORT
        self._worker = worker
        self._show_message = show_message
        self._engine_info: EngineInfo | None = None
        self._loaded_at = int(time.time())
        self._running: _Serving | None = None
        self.action = QAction(f"&Serve on {HOST}:{PORT}", window)
        self.action.setCheckable(True)
        self.action.setShortcut(QKeySequence(SHORTCUT))
        window.addAction(self.action)  # the shortcut works with the menu closed
        self.action.setStatusTip("Let editor plugins on this machine use the model through an "
                                 "OpenAI-compatible completions API")
        self.action.toggled.connect(self._toggled)
        self.label = QLabel(window)
        self.label.setAccessibleName("Serving")
        self.label.setContentsMargins(6, 0, 6, 0)
        self.label.hide()
        window.statusBar().addPermanentWidget(self.label)
        worker.engine_loaded.connect(self._on_engine_loaded)
        menu = _models_menu(window)
        menu.addSeparator()
        menu.addAction(self.action)

    @property
    def url(self) -> str | None:
        """Where it serves (http://127.0.0.1:8089), or None when off."""
        return None if self._running is None else self._running.server.url

    def shutdown(self) -> None:
        """Stop serving (the window is closing): before the worker stops."""
        with QSignalBlocker(self.action):
            self.action.setChecked(False)
        self._stop()

    def _toggled(self, on: bool) -> None:
        if on:
            self._start()
        else:
            self._stop()

    def _start(self) -> None:
        from app.serve.main import require_serve_extra

        try:
            require_serve_extra()
            from app.serve.api import LOOPBACK_NAMES, build_app
            from app.serve.engine_queue import EngineQueue
            from app.serve.server import BackgroundServer, bind_socket

            sock = bind_socket(HOST, self.port)
        except GhostpenError as error:
            self._refuse(str(error))
            return
        queue = EngineQueue(self._worker.run_on_engine, name="ghostpen-window-serve")
        queue.start()
        app = build_app(queue, self._served_model(), None, LOOPBACK_NAMES)
        server = BackgroundServer(app, sock)
        try:
            server.start()
        except GhostpenError as error:
            queue.close(STOP_WAIT_S)
            sock.close()
            self._refuse(str(error))
            return
        self._running = _Serving(server, queue, app, sock)
        self.label.setText(f"Serving on {server.url}/v1")
        self.label.setToolTip("Editor plugins can use the model at this address (OpenAI's "
                              "completions API); Models ▸ Serve stops it")
        self.label.show()

    def _stop(self) -> None:
        if self._running is None:
            return
        running, self._running = self._running, None
        running.queue.close(STOP_WAIT_S)  # its waiting requests end, the running one stops
        running.server.stop()
        running.sock.close()
        self.label.hide()

    def _refuse(self, message: str) -> None:
        with QSignalBlocker(self.action):
            self.action.setChecked(False)
        self._show_message(f"Cannot serve: {message}")

    def _on_engine_loaded(self, info: EngineInfo) -> None:
        self._engine_info = info
        self._loaded_at = int(time.time())
        if self._running is not None:
            from app.serve.api import set_served_model

            set_served_model(self._running.app, self._served_model())

    def _served_model(self) -> ServedModel:
        from app.serve.api import ServedModel

        info = self._engine_info
        if info is None:  # no model yet: requests get the worker's "no model" answer
            return ServedModel(id="none", created=self._loaded_at, fingerprint="ghostpen",
                               vocab_size=None)
        return ServedModel(id=info.model_name, created=self._loaded_at,
                           fingerprint=f"ghostpen-{info.precision}-{info.provider}",
                           vocab_size=None)


def _models_menu(window: QMainWindow) -> QMenu:
    for menu in window.menuBar().findChildren(QMenu):
        if menu.title() == "&Models":
            return menu
    raise LookupError("the window has no Models menu")
