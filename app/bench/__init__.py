"""`python -m app bench [autocomplete|gui|lens|lookup|quality|serve]`: Ghostpen measured on
this machine.

engine.py times generation against transformers + torch (and llama.cpp, llama.py), with the
memory floor (memory_floor.py); autocomplete.py the wait for a suggestion; gui.py the window's
stalls while the model writes, lens.py while the surprise lens colours a long document; ghost.py
a suggestion's wait in the real window; lookup.py what speculative decoding saves on real text;
quality.py perplexity / KL / top-1 against fp32 on trained weights; serve.py the server under
concurrent clients; common.py holds what they share (the random models they time, the
machine's description). Each bench is imported only when its subcommand runs, so the headless
ones never load Qt.
"""

from __future__ import annotations

import importlib

# subcommand -> (module, its main function); anything else is the engine bench's arguments.
SUBCOMMANDS = {
    "autocomplete": ("app.bench.autocomplete", "autocomplete_bench_main"),
    "gui": ("app.bench.gui", "gui_bench_main"),
    "lens": ("app.bench.lens", "lens_bench_main"),
    "lookup": ("app.bench.lookup", "lookup_bench_main"),
    "quality": ("app.bench.quality", "quality_bench_main"),
    "serve": ("app.bench.serve", "serve_bench_main"),
    "speculate": ("app.bench.speculate", "speculate_bench_main"),
}


def bench_main(argv: list[str]) -> int:
    if argv[:1] and argv[0] in SUBCOMMANDS:
        module, function = SUBCOMMANDS[argv[0]]
        return int(getattr(importlib.import_module(module), function)(argv[1:]))
    from app.bench.engine import engine_bench_main

    return engine_bench_main(argv)
