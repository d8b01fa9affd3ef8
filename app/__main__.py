"""`python -m app` opens the window; `python -m app generate|act|score|serve|bench ...` run
headless."""

from __future__ import annotations

import sys
from pathlib import Path

COMMANDS = ("generate", "act", "score", "serve", "bench")
USAGE = """\
usage:
  python -m app [FILE]                                 open the window (FILE: a .txt or .md)
  python -m app generate --model PATH --prompt TEXT    continue TEXT on stdout, no window
  python -m app act ACTION --model PATH FILE           summarise|translate|ask|continue|
                                                       rephrase FILE's text (--to LANGUAGE,
                                                       --question TEXT, --json)
  python -m app score --model PATH FILE                each token of FILE's text: its
                                                       probability, rank and the model's
                                                       choices; perplexity, repeats (--json)
  python -m app serve --model PATH                     OpenAI-compatible completions server
                                                       for editor plugins (127.0.0.1:8089)
  python -m app bench [autocomplete|gui|quality|serve]  measure Ghostpen on this machine

`python -m app generate --help`, `act --help`, `score --help`, `serve --help` and `bench --help`
list their flags."""
# A first word that is none of the commands still opens the window when it is a file to open
# (one that exists, a path, or a .txt/.md to be) or an option the window or Qt reads
# (-platform ...).
DOCUMENT_SUFFIXES = (".txt", ".md")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    _ensure_std_streams()
    first = args[0] if args else None
    if first in ("-h", "--help"):  # before Qt is imported: this needs no window
        print(USAGE)
        return 0
    if first == "generate":
        from app.cli import generate_main

        return generate_main(args[1:])
    if first == "act":
        from app.act_cli import act_main

        return act_main(args[1:])
    if first == "score":
        from app.score_cli import score_main

        return score_main(args[1:])
    if first == "serve":
        from app.serve.main import serve_main

        return serve_main(args[1:])
    if first == "bench":
        from app.bench import bench_main

        return bench_main(args[1:])
    if first is not None and not opens_window(first):
        print(f"unknown command {first!r}; the commands are: {', '.join(COMMANDS)} "
              "(or no command for the window)", file=sys.stderr)
        return 2
    from app.ui.main import run_gui

    return run_gui(args)


def opens_window(word: str) -> bool:
    """Whether a first argument that names no command is one for the window to read."""
    path = Path(word)
    return (word.startswith("-") or path.suffix.lower() in DOCUMENT_SUFFIXES
            or len(path.parts) > 1 or path.exists())


def _ensure_std_streams() -> None:
    """A windowed frozen build has no console: sys.stdout and sys.stderr are None there, and
    the first print would raise. Send them nowhere instead."""
    import os

    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the app
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115


if __name__ == "__main__":
    sys.exit(main())
