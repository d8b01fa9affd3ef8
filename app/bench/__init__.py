"""`python -m app bench [autocomplete|gui|quality|serve]`: Ghostpen measured on this machine.

engine.py times generation against transformers + torch, autocomplete.py the wait for a
suggestion, gui.py the window's stalls while the model writes, ghost.py a suggestion's wait in
the real window, quality.py perplexity / KL / top-1 against fp32 on trained weights, serve.py
the server under concurrent clients; common.py holds what they share (the random models they
time, the machine's description). Each bench is imported only when its subcommand runs, so the
headless ones never load Qt.
"""

from __future__ import annotations


def bench_main(argv: list[str]) -> int:
    if argv[:1] == ["autocomplete"]:
        from app.bench.autocomplete import autocomplete_bench_main

        return autocomplete_bench_main(argv[1:])
    if argv[:1] == ["quality"]:
        from app.bench.quality import quality_bench_main

        return quality_bench_main(argv[1:])
    if argv[:1] == ["serve"]:
        from app.bench.serve import serve_bench_main

        return serve_bench_main(argv[1:])
    if argv[:1] == ["gui"]:
        from app.bench.gui import gui_bench_main

        return gui_bench_main(argv[1:])
    from app.bench.engine import engine_bench_main

    return engine_bench_main(argv)
