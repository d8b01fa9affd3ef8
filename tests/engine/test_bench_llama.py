"""`python -m app bench` beside llama.cpp, and the memory floor its tables measure decode by."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from statistics import median

import pytest

from app.bench.common import STANDIN_DIR, STANDIN_TEXT, prepare_models
from app.bench.engine import (
    WorkerFailed,
    _median_row,
    _run_worker,
    floor_fractions,
    format_table,
)
from app.bench.llama import (
    LlamaToolsMissing,
    _run_tool,
    find_tools,
    measure_llama,
    parse_llama_bench,
    prepare_gguf,
)
from app.bench.lookup import source_checkpoint
from app.bench.memory_floor import (
    kv_bytes_per_token,
    measure_memory_read,
    weight_bytes_per_token,
)

ROOT = Path(__file__).resolve().parents[2]
LLAMA_TOOLS = Path(os.environ.get("LLAMA_TOOLS", Path.home() / ".cache" / "llama.cpp-tools"))

# Real output of llama-bench (llama.cpp 0c1e570, built by ../shared/bench/setup_llama.sh) on
# llama.cpp's q8_0 of the tiny random GPT-2:
# llama-bench -m tiny-Q8_0.gguf -t 2 -r 3 -fa on -o json -p 64 -n 16 -d 32
LLAMA_BENCH_JSON = """[
  {
    "build_commit": "0c1e570",
    "build_number": 1,
    "cpu_info": "AMD EPYC",
    "gpu_info": "",
    "backends": "CPU",
    "model_filename": "/tmp/benchtiny/tiny-gguf/tiny-Q8_0.gguf",
    "model_type": "gpt2 ?B Q8_0",
    "model_size": 3791236,
    "model_n_params": 3382080,
    "n_batch": 2048,
    "n_ubatch": 512,
    "n_threads": 2,
    "cpu_mask": "0x0",
    "cpu_strict": false,
    "poll": 50,
    "type_k": "f16",
    "type_v": "f16",
    "n_gpu_layers": -1,
    "n_cpu_moe": 0,
    "split_mode": "layer",
    "main_gpu": 0,
    "no_kv_offload": false,
    "flash_attn": 1,
    "devices": "auto",
    "tensor_split": "0.00",
    "tensor_buft_overrides": "none",
    "load_mode": "auto",
    "lazy_mode": "auto",
    "embeddings": false,
    "no_op_offload": 0,
    "no_host": false,
    "repack": true,
    "fit_target": 0,
    "fit_min_ctx": 0,
    "n_prompt": 64,
    "n_gen": 0,
    "n_depth": 32,
    "test_time": "2026-12-02T11:13:14Z",
    "avg_ns": 544875,
    "stddev_ns": 38007,
    "avg_ts": 117841.075030,
    "stddev_ts": 8241.555114,
    "samples_ns": [ 582845, 544949, 506831 ],
    "samples_ts": [ 109806, 117442, 126275 ]
  },
  {
    "build_commit": "0c1e570",
    "build_number": 1,
    "cpu_info": "AMD EPYC",
    "gpu_info": "",
    "backends": "CPU",
    "model_filename": "/tmp/benchtiny/tiny-gguf/tiny-Q8_0.gguf",
    "model_type": "gpt2 ?B Q8_0",
    "model_size": 3791236,
    "model_n_params": 3382080,
    "n_batch": 2048,
    "n_ubatch": 512,
    "n_threads": 2,
    "cpu_mask": "0x0",
    "cpu_strict": false,
    "poll": 50,
    "type_k": "f16",
    "type_v": "f16",
    "n_gpu_layers": -1,
    "n_cpu_moe": 0,
    "split_mode": "layer",
    "main_gpu": 0,
    "no_kv_offload": false,
    "flash_attn": 1,
    "devices": "auto",
    "tensor_split": "0.00",
    "tensor_buft_overrides": "none",
    "load_mode": "auto",
    "lazy_mode": "auto",
    "embeddings": false,
    "no_op_offload": 0,
    "no_host": false,
    "repack": true,
    "fit_target": 0,
    "fit_min_ctx": 0,
    "n_prompt": 0,
    "n_gen": 16,
    "n_depth": 32,
    "test_time": "2026-12-02T11:13:14Z",
    "avg_ns": 2979978,
    "stddev_ns": 40058,
    "avg_ts": 5369.811399,
    "stddev_ts": 71.890402,
    "samples_ns": [ 3023650, 2971342, 2944942 ],
    "samples_ts": [ 5291.62, 5384.77, 5433.04 ]
  }
]"""


def _llama_tools_or_skip() -> Path:
    try:
        find_tools(LLAMA_TOOLS)
    except LlamaToolsMissing:
        pytest.skip(f"llama.cpp's tools are not built in {LLAMA_TOOLS} (setup_llama.sh)")
    return LLAMA_TOOLS


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_the_memory_kernel_reads_at_a_plausible_speed_near_numpys(tmp_path: Path) -> None:
    kernel = measure_memory_read(2, tmp_path, size_mb=256)
    assert "C sum" in kernel.kernel and kernel.note == ""
    assert len(list(tmp_path.glob("memory-read-*.so"))) == 1  # built once, kept for next time
    numpy_way = measure_memory_read(2, tmp_path, size_mb=256, cc=None)
    assert "no C compiler" in numpy_way.note  # the table says its floors are the numpy way's
    assert 0.5 < kernel.gb_s < 5000  # from a slow laptop to a many-channel server
    assert 0.25 < kernel.gb_s / numpy_way.gb_s < 20


def test_a_decoded_token_reads_every_weight_but_the_position_table_plus_the_cache_so_far(
        tiny_model: Path) -> None:
    config = json.loads((tiny_model / "config.json").read_text())
    n_embd, n_layer = config["n_embd"], config["n_layer"]
    n_params = json.loads((tiny_model / "manifest.json").read_text())["n_params"]
    expected = (n_params - config["n_positions"] * n_embd) * 4  # fp32; one row of wpe is read
    assert weight_bytes_per_token(tiny_model) == pytest.approx(expected, rel=0.01)
    # fp32 keys and values of every layer, for each position before this one
    assert kv_bytes_per_token(tiny_model, 0) == 0
    assert kv_bytes_per_token(tiny_model, 100) == 2 * n_layer * 100 * n_embd * 4


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_llama_bench_not_found_is_one_line_naming_how_to_get_it(tmp_path: Path,
                                                                   where: str) -> None:
    folder = tmp_path / "tools"
    if where == "empty":
        folder.mkdir()
    cache = tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, "-m", "app", "bench", "--llama-bench", str(folder), "--cache-dir",
         str(cache)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert str(folder) in line and "setup_llama.sh" in line
    assert ("no such folder" if where == "missing" else "no llama-bench") in line
    assert not cache.exists()  # said before minutes of making models


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_crashed_llama_tool_is_named_with_its_signal_and_the_way_round_it() -> None:
    # A llama.cpp built with GGML_NATIVE died so on a VM whose CPU reports AMX it does not enable
    crashing = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"]
    with pytest.raises(RuntimeError) as raised:
        _run_tool(crashing, "llama-bench")
    (line,) = str(raised.value).splitlines()
    assert line.startswith("llama-bench crashed (SIGILL)")
    assert "-DGGML_NATIVE=OFF" in line and "AMX" in line


def test_a_failed_row_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(WorkerFailed) as raised:
        _run_worker("ours", tmp_path / "no-model-here", threads=1)
    (line,) = str(raised.value).splitlines()
    assert line.startswith("bench: the ours row failed: ")
    assert line.endswith("no-model-here is not a folder; choose a model folder.")


def test_llama_bench_json_gives_the_median_of_its_runs() -> None:
    prefill, decode = parse_llama_bench(LLAMA_BENCH_JSON)
    assert (prefill.n_prompt, prefill.n_gen, prefill.n_depth) == (64, 0, 32)
    assert (decode.n_prompt, decode.n_gen, decode.n_depth) == (0, 16, 32)
    assert prefill.median_ms == pytest.approx(0.544949)
    samples_ts = json.loads(LLAMA_BENCH_JSON)[1]["samples_ts"]
    assert decode.median_tok_s == pytest.approx(median(samples_ts), rel=1e-4)
    assert decode.model_size == 3791236  # bytes of its tensors: the floor's weights
    assert decode.build == "0c1e570 (build 1)"
    assert decode.settings == "2 threads, flash attention on, f16/f16 KV cache"
    with pytest.raises(ValueError, match="llama-bench's output"):
        parse_llama_bench("llama-bench: error: unknown argument: -d")


def test_the_table_sets_ours_beside_llama_cpp_and_the_floor() -> None:
    row = {"prefill_512_ms": 400.0, "decode_32_tok_s": 150.0, "decode_900_tok_s": 120.0,
           "peak_rss_mb": 290.0, "model_mb": 130.0, "provider": "CPUExecutionProvider",
           "memory_gb_s": 30.0}
    llama = {**row, "prefill_512_ms": 200.0, "decode_32_tok_s": 100.0,
             "decode_900_tok_s": 80.0, "provider": "llama.cpp 0c1e570 (build 1)"}
    table = format_table({"Ghostpen int8": row, "llama.cpp q8_0": llama}, 2,
                         floors={"Ghostpen int8": {"decode_32_tok_s": 100_000_000,
                                                   "decode_900_tok_s": 120_000_000}},
                         versus_llama={"Ghostpen int8": "llama.cpp q8_0"})
    header, _, ours, theirs = table.splitlines()
    assert "memory read beside it (GB/s)" in header and "ours ÷ llama.cpp" in header
    # 30 GB/s over 100 and 120 MB a token: 300 and 250 tok/s; decode is 50% and 48% of it
    assert "| 100, 120 | 30 | 300, 250 | 50%, 48% | 1.50×, 1.50×, 0.50× |" in ours
    assert theirs.startswith("| llama.cpp q8_0 | 200 | 100 | 80 |")
    assert theirs.endswith("|  |  |  |  |  |")  # no floor or ratio of its own


def test_a_rows_share_of_the_floor_is_the_median_of_its_rounds_own() -> None:
    """A round read at a fast minute and one at a slow minute: each decode set against the
    floor of its own minute, not the fastest minute's floor against every round."""
    per_token = {"decode_32_tok_s": 100_000_000, "decode_900_tok_s": 100_000_000}
    rounds = [{"decode_32_tok_s": 150.0, "decode_900_tok_s": 140.0, "memory_gb_s": 20.0,
               "provider": "CPU"},
              {"decode_32_tok_s": 270.0, "decode_900_tok_s": 250.0, "memory_gb_s": 30.0,
               "provider": "CPU"},
              {"decode_32_tok_s": 160.0, "decode_900_tok_s": 150.0, "memory_gb_s": 20.0,
               "provider": "CPU"}]
    for run in rounds:
        run.update(floor_fractions(run, per_token))
    row = _median_row(rounds)
    assert row["decode_32_of_floor"] == pytest.approx(0.80)  # 150/200, 270/300, 160/200
    assert row["decode_900_of_floor"] == pytest.approx(0.75)  # 140/200, 250/300, 150/200


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    tools = find_tools(_llama_tools_or_skip())
    cache = tmp_path_factory.mktemp("bench")
    checkpoint = prepare_models(cache, "tiny", [])["checkpoint"]
    return cache, prepare_gguf(tools, checkpoint, cache, "tiny", ["q8_0"])


def test_llama_bench_times_the_same_weights_converted_once(
        tiny_gguf: tuple[Path, dict[str, Path]]) -> None:
    cache, files = tiny_gguf
    tools = find_tools(LLAMA_TOOLS)
    made = files["q8_0"].stat().st_mtime_ns
    checkpoint = cache / "tiny-checkpoint"
    assert prepare_gguf(tools, checkpoint, cache, "tiny", ["q8_0"]) == files
    assert files["q8_0"].stat().st_mtime_ns == made  # same checkpoint: not converted again
    row = measure_llama(tools.bench, files["q8_0"], 2, 1, 16, {"decode_8_tok_s": (8, 4)})
    assert row["prefill_16_ms"] > 0 and row["decode_8_tok_s"] > 0
    assert 1 < row["peak_rss_mb"] < 2000
    assert row["model_mb"] == files["q8_0"].stat().st_size / 1e6
    assert row["provider"].startswith("llama.cpp ")


def test_a_changed_checkpoint_is_converted_again(tiny_gguf: tuple[Path, dict[str, Path]]) -> None:
    cache, files = tiny_gguf
    checkpoint = cache / "tiny-checkpoint"
    made = files["q8_0"].stat().st_mtime_ns
    config = json.loads((checkpoint / "config.json").read_text())
    config["layer_norm_epsilon"] = 1e-6
    (checkpoint / "config.json").write_text(json.dumps(config))
    prepare_gguf(find_tools(LLAMA_TOOLS), checkpoint, cache, "tiny", ["q8_0"])
    assert files["q8_0"].stat().st_mtime_ns != made


def test_the_lookup_bench_finds_each_models_checkpoint_for_llama_cpp(
        tiny_model: Path, tmp_path: Path) -> None:
    assert source_checkpoint(tiny_model) == tiny_model.parent / "tiny-checkpoint"
    moved = tmp_path / "model"
    shutil.copytree(tiny_model, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["source"] = str(tmp_path / "gone")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    assert source_checkpoint(moved) is None
    (moved / "manifest.json").unlink()  # a foreign export has none
    assert source_checkpoint(moved) is None


def test_the_lookup_bench_sets_its_decode_beside_llama_cpps(tiny_model: Path,
                                                             tmp_path: Path) -> None:
    tools = _llama_tools_or_skip()
    if not (STANDIN_DIR / STANDIN_TEXT).exists():
        pytest.skip(f"its prompts come from {STANDIN_DIR / STANDIN_TEXT}")
    result = subprocess.run(
        [sys.executable, "-m", "app", "bench", "lookup", "--model", str(tiny_model),
         "--prompts", "1", "--tokens", "8", "--rounds", "1", "--llama-bench", str(tools),
         "--cache-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-400:]
    header = next(line for line in result.stdout.splitlines() if line.startswith("| model"))
    assert header.endswith("| llama.cpp q8_0 (tok/s) | lookup on ÷ q8_0 |")
    rows = [line for line in result.stdout.splitlines() if line.startswith(f"| {tiny_model.name}")]
    assert len(rows) == 2  # greedy and sampled
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        q8, ratio = float(cells[-2]), float(cells[-1].rstrip("×"))
        ours = float(cells[3])
        assert q8 > 0 and ratio == pytest.approx(ours / q8, abs=0.01 + 0.01 * ours / q8)
