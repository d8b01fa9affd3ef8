"""The benchmark's bookkeeping: what it times must be what the current code makes."""

from __future__ import annotations

from pathlib import Path

from app.bench import _exporter_fingerprint, _median_row, _prepare


def test_a_cached_export_is_reused_only_by_the_converter_that_made_it(tmp_path: Path) -> None:
    folders = _prepare(tmp_path, "tiny", ["fp32"])
    graph = folders["fp32"] / "model.onnx"
    stamp = folders["fp32"] / ".exported-by"
    assert stamp.read_text() == _exporter_fingerprint()
    made = graph.stat().st_mtime_ns
    assert _prepare(tmp_path, "tiny", ["fp32"])["fp32"] == folders["fp32"]
    assert graph.stat().st_mtime_ns == made  # same converter: reused
    stamp.write_text("an older converter")
    _prepare(tmp_path, "tiny", ["fp32"])
    assert graph.stat().st_mtime_ns != made  # made again
    assert stamp.read_text() == _exporter_fingerprint()


def test_each_figure_is_the_median_of_the_rounds() -> None:
    rounds = [{"decode_32_tok_s": v, "peak_rss_mb": r, "provider": "CPU"}
              for v, r in ((200.0, 290.0), (150.0, 300.0), (220.0, 280.0))]
    assert _median_row(rounds) == {"decode_32_tok_s": 200.0, "peak_rss_mb": 290.0,
                                   "provider": "CPU"}
