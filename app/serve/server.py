"""uvicorn on a socket bound beforehand: in the foreground for the command, or in a thread.

Binding first means a port in use is one clear line before the model loads, and port 0 lets
the system pick a free port (the tests and the benchmark read it back from the socket).
"""

from __future__ import annotations

import socket
import sys
import threading
import time

import uvicorn
from starlette.applications import Starlette

from app.engine.errors import GhostpenError

MAX_CONNECTIONS = 100  # open at once; more are answered 503 by uvicorn
GRACEFUL_SHUTDOWN_S = 2  # then open streams are cut: their generations are cancelled


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or a GhostpenError saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError) as error:
        raise GhostpenError(f"--host {host} is not an address of this machine ({error}); "
                            "give an IP address such as 127.0.0.1.") from None
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform != "win32":  # restarting right away reuses the port (Windows: shares)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise GhostpenError(f"Cannot listen on {host}:{port} ({reason}); choose another port "
                            "with --port, or stop the program using it.") from None
    return sock


def socket_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _server(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False,
                            lifespan="off", ws="none", limit_concurrency=MAX_CONNECTIONS,
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, server_header=False)
    return uvicorn.Server(config)


def run_server(app: Starlette, sock: socket.socket) -> None:
    """Serve until Ctrl+C (or SIGTERM)."""
    _server(app).run(sockets=[sock])


class BackgroundServer:
    """uvicorn serving `app` on `sock` from a daemon thread."""

    def __init__(self, app: Starlette, sock: socket.socket) -> None:
        self.url = socket_url(sock)
        self._server = _server(app)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="ghostpen-serve-http", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise GhostpenError(f"The server at {self.url} did not start.")
            time.sleep(0.01)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
