"""The benchmark's bookkeeping: what it times must be what the current code makes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.bench.common import exporter_fingerprint, prepare_models
from app.bench.engine import _median_row

ROOT = Path(__file__).resolve().parents[2]


def test_a_cached_export_is_reused_only_by_the_converter_that_made_it(tmp_path: Path) -> None:
    folders = prepare_models(tmp_path, "tiny", ["fp32"])
    graph = folders["fp32"] / "model.onnx"
    stamp = folders["fp32"] / ".exported-by"
    assert stamp.read_text() == exporter_fingerprint()
    made = graph.stat().st_mtime_ns
    assert prepare_models(tmp_path, "tiny", ["fp32"])["fp32"] == folders["fp32"]
    assert graph.stat().st_mtime_ns == made  # same converter: reused
    stamp.write_text("an older converter")
    prepare_models(tmp_path, "tiny", ["fp32"])
    assert graph.stat().st_mtime_ns != made  # made again
    assert stamp.read_text() == exporter_fingerprint()


def test_a_row_with_the_prompt_graph_is_int8_converted_with_it(tmp_path: Path) -> None:
    folders = prepare_models(tmp_path, "tiny", ["int8", "int8+prompt"])
    assert (folders["int8+prompt"] / "prompt.onnx").exists()
    assert not (folders["int8"] / "prompt.onnx").exists()
    result = subprocess.run(
        [sys.executable, "-m", "app", "bench", "--precisions", "int4+prompt", "--no-torch",
         "--cache-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: int4+prompt: only int8 has a prompt graph (int8+prompt)"


def test_each_figure_is_the_median_of_the_rounds() -> None:
    rounds = [{"decode_32_tok_s": v, "peak_rss_mb": r, "provider": "CPU"}
              for v, r in ((200.0, 290.0), (150.0, 300.0), (220.0, 280.0))]
    assert _median_row(rounds) == {"decode_32_tok_s": 200.0, "peak_rss_mb": 290.0,
                                   "provider": "CPU"}


def test_the_headless_benchmarks_run_without_qt(tiny_model: Path) -> None:
    """`python -m app bench` and `bench autocomplete --no-window` must work where Qt cannot
    load (a server, a CI box without display libraries): they never import PySide6."""
    code = (
        "import contextlib, io, sys\n"
        "from app.bench import bench_main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert bench_main(['--worker', 'ours', '--folder', {str(tiny_model)!r}]) == 0\n"
        "    assert bench_main(['autocomplete', '--no-window', '--keystrokes', '3',\n"
        f"                       '--model', {str(tiny_model)!r}]) == 0\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('PySide6'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"Qt imported by a headless benchmark: {result.stdout}"
