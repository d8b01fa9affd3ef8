"""`python -m app` opens the window; `python -m app generate|bench ...` run headless."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    _ensure_std_streams()
    if args and args[0] == "generate":
        from app.cli import generate_main

        return generate_main(args[1:])
    if args and args[0] == "bench":
        from app.bench import bench_main

        return bench_main(args[1:])
    from app.ui.main import run_gui

    return run_gui(args)


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
