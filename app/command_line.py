"""What the headless commands (`generate`, `act`, `serve`) share: a parser whose mistakes are one
line, the engine flags, and the wrapper that turns an error into one line and exit status 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from app.engine.errors import GhostpenError
from app.engine.providers import DEVICES


class ArgumentError(GhostpenError):
    """A flag or argument a command cannot take."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and status 2, like every other error
        raise ArgumentError(f"{message} (see `{self.prog} --help`)")


def command_parser(prog: str, description: str | None) -> OneLineParser:
    return OneLineParser(prog=prog, description=description,
                         formatter_class=argparse.RawDescriptionHelpFormatter)


def thread_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a thread count; give 1 or more")
    return value


def add_engine_flags(parser: argparse.ArgumentParser) -> None:
    """--device and --threads, as load_engine takes them."""
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where to run (default auto: CUDA or DirectML when present, "
                             "else the CPU)")
    parser.add_argument("--threads", type=thread_count, default=None, metavar="N",
                        help="CPU threads, 1 or more (default: the physical cores, or "
                             "GHOSTPEN_THREADS)")


def add_draft_model_flag(parser: argparse.ArgumentParser) -> None:
    """--draft-model, for the commands that write text token by token."""
    parser.add_argument("--draft-model", type=Path, default=None, metavar="PATH",
                        help="a smaller model with the same vocabulary that guesses the next "
                             "tokens for the model to check several at a time (gpt2 for "
                             "gpt2-large or gpt2-xl); the text written is the model's own")


SIGPIPE_STATUS = 141  # 128 + SIGPIPE: what `yes | head` leaves in the shell


def run_command(body: Callable[[list[str]], int], argv: list[str],
                interrupted_status: int = 130) -> int:
    """Run a command's `body`: a GhostpenError is one line on stderr and status 2 (with
    --debug, the traceback instead); Ctrl+C ends it with `interrupted_status`; a reader that
    leaves (`... | head`) ends it quietly with SIGPIPE_STATUS, as `yes | head` does."""
    try:
        return body(argv)
    except BrokenPipeError:
        # Python would flush stdout again at exit and complain: point it at nowhere first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return SIGPIPE_STATUS
    except GhostpenError as error:
        if "--debug" in argv:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return interrupted_status
