"""`python -m app` opens the window; `python -m app generate|bench ...` run headless."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "generate":
        from app.cli import generate_main

        return generate_main(args[1:])
    if args and args[0] == "bench":
        from app.bench import bench_main

        return bench_main(args[1:])
    from app.ui.main import run_gui

    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())
