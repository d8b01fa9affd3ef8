"""`python -m app serve --model PATH`: an OpenAI-compatible completions server for other tools.

Editor plugins that speak OpenAI's API (base URL http://127.0.0.1:8089/v1) get continuations
from the model on this machine. It listens on 127.0.0.1 unless --host says otherwise; a host
other machines can reach needs --api-key (or GHOSTPEN_API_KEY), which every request must then
send as "Authorization: Bearer KEY". Errors are one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from pathlib import Path

from app.command_line import (
    ArgumentError,
    add_draft_model_flag,
    add_engine_flags,
    command_parser,
    run_command,
)
from app.engine.errors import GhostpenError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8089
API_KEY_VARIABLE = "GHOSTPEN_API_KEY"


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port; give 1 to 65535 "
                                         "(0: any free port)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m app serve", __doc__)
    parser.add_argument("--model", type=Path, required=True, metavar="PATH",
                        help="model folder: a Ghostpen conversion or a GPT-2 ONNX export; its "
                             "folder name is the model id clients send")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine "
                             "only); any other needs --api-key")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_VARIABLE), metavar="KEY",
                        help="require 'Authorization: Bearer KEY' on every request (default: "
                             f"${API_KEY_VARIABLE}, which keeps the key out of process lists)")
    add_engine_flags(parser)
    add_draft_model_flag(parser)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


def serve_main(argv: list[str]) -> int:
    # uvicorn re-raises the Ctrl+C it caught once it has stopped: a clean end.
    return run_command(_serve, argv, interrupted_status=0)


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name other than localhost: it may resolve anywhere
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse a server other machines can reach without a key, before anything is loaded."""
    if api_key is not None and not api_key.strip():
        raise ArgumentError("--api-key is empty; give the key clients will send.")
    if api_key is None and not is_loopback(host):
        raise ArgumentError(f"--host {host} can be reached from other machines, so it needs "
                             "--api-key KEY too (clients send 'Authorization: Bearer KEY'); "
                             f"or leave --host at {DEFAULT_HOST}.")


def require_serve_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise GhostpenError('Serving needs Starlette and uvicorn: pip install -e ".[serve]" in '
                            "Ghostpen's folder (or pip install starlette uvicorn).") from None


def _serve(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    check_exposure(args.host, args.api_key)
    require_serve_extra()

    from app.engine.engine import load_engine
    from app.serve.api import LOOPBACK_NAMES, ServedModel, build_app
    from app.serve.engine_queue import EngineQueue
    from app.serve.server import bind_socket, run_server, socket_url

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sock = bind_socket(args.host, args.port)
    try:
        engine = load_engine(args.model, args.device, args.threads, args.draft_model)
        if engine.info.fallback_reason:
            print(f"note: {engine.info.fallback_reason}", file=sys.stderr)
        # The queue's thread is the engine's only caller from here on; this thread closes it
        # only after that one has stopped.
        queue = EngineQueue(lambda call: call(engine))
        queue.start()
        try:
            model = ServedModel.of(args.model, engine)
            allowed_hosts = {*LOOPBACK_NAMES, args.host} if is_loopback(args.host) else None
            app = build_app(queue, model, args.api_key, allowed_hosts)
            print(f"Ghostpen serves {model.id} ({engine.info.precision}, "
                  f"{engine.info.provider}) at {socket_url(sock)}/v1; Ctrl+C stops.",
                  file=sys.stderr, flush=True)
            run_server(app, sock)
        finally:
            queue.close()
            engine.close()
    finally:
        sock.close()
    return 0
