"""The installed models and the ways to add one: folders, and downloads from a stand-in Hub.

The Hub is a real HTTP server on 127.0.0.1 (tests/hub_server.py) speaking what huggingface_hub
2.4 asks for; HF_ENDPOINT points at it and HF_HOME at tmp_path, so nothing leaves the machine.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from app import model_store
from app.engine.errors import GhostpenError, ModelLoadError
from app.engine.sampling_params import SamplingParams
from app.model_store import (
    Cancelled,
    DownloadCancelled,
    HubUnavailable,
    HubUnreachable,
    TaskProgress,
)
from models.checkpoint import load_checkpoint
from tests.hub_server import GPT2_REPO, FakeHub, go_online


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GHOSTPEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path


def partial_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "hf").rglob("*.incomplete"))


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# --- downloads -------------------------------------------------------------------------------


def test_download_converts_into_a_model_that_writes(hub: FakeHub, tiny_checkpoint: Path,
                                                    tmp_path: Path) -> None:
    seen: list[TaskProgress] = []
    model = model_store.download_and_convert(GPT2_REPO, "int8", seen.append)

    assert (model.name, model.precision, model.foreign) == ("gpt2-int8", "int8", False)
    assert model.source == f"hf://{GPT2_REPO}@{hub.commit}"
    assert model.n_params == load_checkpoint(tiny_checkpoint)[0].n_params
    assert model_store.list_models() == [model]
    from app.engine.engine import load_engine

    engine = load_engine(model.path, "cpu")
    events = list(engine.generate("Once upon a time", SamplingParams(seed=1, max_new_tokens=5)))
    assert len(events) == 5

    downloads = [p for p in seen if p.stage == "download" and p.total]
    total = sum(f.stat().st_size for f in tiny_checkpoint.iterdir())
    assert downloads[-1].done == downloads[-1].total == total
    assert all(a.done <= b.done for a, b in itertools.pairwise(downloads))
    assert any(p.stage == "convert" for p in seen)
    # Exactly these files were fetched, and nothing but /resolve/ was asked.
    fetched = {e.filename for e in hub.log if e.method == "GET" and e.role == "hub"}
    assert fetched == {"config.json", "vocab.json", "merges.txt"}
    assert len(hub.gets("model.safetensors")) == 1
    assert all("/resolve/" in e.path for e in hub.log if e.role == "hub")  # no /api/ calls
    assert partial_files(tmp_path) == []


def test_a_second_download_comes_from_the_cache(hub: FakeHub) -> None:
    model_store.download_and_convert(GPT2_REPO, "fp32")
    hub.log.clear()
    model = model_store.download_and_convert(GPT2_REPO, "fp16")
    assert model.name == "gpt2-fp16"
    assert [e for e in hub.log if e.method == "GET"] == []  # metadata only
    assert [m.name for m in model_store.list_models()] == ["gpt2-fp16", "gpt2-fp32"]


def test_dropped_connection_resumes_with_a_range_request(hub: FakeHub, tiny_checkpoint: Path,
                                                         tmp_path: Path) -> None:
    hub.drop("model.safetensors", 5_000_000)
    model = model_store.download_and_convert(GPT2_REPO, "int8")

    first, second = hub.gets("model.safetensors")
    assert first.range is None
    assert second.range is not None and second.range.startswith("bytes=")
    offset = int(second.range.removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= 5_000_000
    blob = next((tmp_path / "hf").rglob("snapshots/*/model.safetensors"))
    assert blob.read_bytes() == (tiny_checkpoint / "model.safetensors").read_bytes()
    assert model.usable


def test_interrupted_download_resumes_in_the_next_call(hub: FakeHub, tiny_checkpoint: Path,
                                                       tmp_path: Path) -> None:
    """The connection breaks after 6 MB and the retry is refused: the call fails with one line
    and keeps the bytes; the next call asks only for the rest."""
    hub.drop("model.safetensors", 6_000_000)
    hub.refuse("model.safetensors", 503)
    with pytest.raises(HubUnreachable) as failure:
        model_store.download_and_convert(GPT2_REPO, "int8")
    assert "503" in str(failure.value) and "\n" not in str(failure.value)
    assert model_store.list_models() == []
    [partial] = partial_files(tmp_path)
    kept = partial.stat().st_size
    assert 0 < kept <= 6_000_000

    model = model_store.download_and_convert(GPT2_REPO, "int8")
    last = hub.gets("model.safetensors")[-1]
    assert last.range == f"bytes={kept}-"
    blob = next((tmp_path / "hf").rglob("snapshots/*/model.safetensors"))
    assert blob.read_bytes() == (tiny_checkpoint / "model.safetensors").read_bytes()
    assert partial_files(tmp_path) == []
    assert model.name == "gpt2-int8"


def test_a_server_that_ignores_range_starts_the_file_again(hub: FakeHub, tiny_checkpoint: Path,
                                                          tmp_path: Path) -> None:
    hub.drop("model.safetensors", 6_000_000)
    hub.refuse("model.safetensors", 503)
    with pytest.raises(HubUnreachable):
        model_store.download_and_convert(GPT2_REPO, "int8")
    assert partial_files(tmp_path)
    hub.honour_range = False
    model_store.download_and_convert(GPT2_REPO, "int8")
    assert hub.gets("model.safetensors")[-1].range is not None  # asked, answered with 200
    blob = next((tmp_path / "hf").rglob("snapshots/*/model.safetensors"))
    assert blob.read_bytes() == (tiny_checkpoint / "model.safetensors").read_bytes()


def test_damaged_bytes_are_caught_by_the_checksum(hub: FakeHub, tmp_path: Path) -> None:
    hub.garble("model.safetensors", 1000)
    with pytest.raises(HubUnavailable) as failure:
        model_store.download_and_convert(GPT2_REPO, "int8")
    assert "checksum" in str(failure.value) and "\n" not in str(failure.value)
    assert partial_files(tmp_path) == [] and model_store.list_models() == []
    sha256 = hub.repos[GPT2_REPO]["model.safetensors"].sha256
    assert list((tmp_path / "hf").rglob(f"blobs/{sha256}*")) == []  # neither blob nor partial
    assert model_store.download_and_convert(GPT2_REPO, "int8").usable  # the next try is clean


def test_cancel_mid_download_leaves_no_model_and_resumes_later(hub: FakeHub,
                                                               tmp_path: Path) -> None:
    cancel = threading.Event()

    def progress(p: TaskProgress) -> None:
        if p.stage == "download" and p.done > 1_000_000:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        model_store.download_and_convert(GPT2_REPO, "int8", progress, cancel)
    root = tmp_path / "data" / "models"
    assert leftovers(root) == []
    assert model_store.list_models() == []
    [partial] = partial_files(tmp_path)
    kept = partial.stat().st_size
    assert kept > 1_000_000

    model_store.download_and_convert(GPT2_REPO, "int8")
    assert hub.gets("model.safetensors")[-1].range == f"bytes={kept}-"
    assert leftovers(root) == ["gpt2-int8"]


def test_cancel_while_converting_leaves_nothing_behind(hub: FakeHub, tmp_path: Path) -> None:
    cancel = threading.Event()
    blocks: list[tuple[int, int]] = []

    def progress(p: TaskProgress) -> None:
        if p.stage == "convert" and p.total:
            blocks.append((p.done, p.total))
            cancel.set()  # after the first block: the second must not be converted

    with pytest.raises(DownloadCancelled):
        model_store.download_and_convert(GPT2_REPO, "int8", progress, cancel)
    assert blocks == [(1, 2)]
    assert leftovers(tmp_path / "data" / "models") == []


def test_conversion_reports_each_block(tiny_checkpoint: Path) -> None:
    seen: list[TaskProgress] = []
    model_store.add_from_folder(tiny_checkpoint, "fp32", seen.append)
    counted = [(p.done, p.total) for p in seen if p.stage == "convert" and p.total]
    assert counted == [(1, 2), (2, 2)]


def test_telemetry_can_be_turned_back_on(hub: FakeHub,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Off by default (above); HF_HUB_DISABLE_TELEMETRY=0 lets huggingface_hub's user agent
    ask for its agent registry, which shows the stand-in catches such calls."""
    from huggingface_hub.utils import _detect_agent

    if not hasattr(_detect_agent, "_registry"):
        pytest.skip("this huggingface_hub has no agent registry to fetch")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "0")
    monkeypatch.setattr(_detect_agent, "_registry", None)
    monkeypatch.setattr(_detect_agent.constants, "AGENT_HARNESSES_PATH",
                        str(Path(os.environ["HF_HOME"]) / ".agent_harnesses.json"))
    model_store.download_and_convert(GPT2_REPO, "int8")
    assert [e.path for e in hub.log if "/api/" in e.path] == ["/api/agent-harnesses"]


def test_offline_mode_is_one_line_and_asks_nothing(hub: FakeHub,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable) as failure:
        model_store.download_and_convert(GPT2_REPO, "int8")
    message = str(failure.value)
    assert "HF_HUB_OFFLINE" in message and "Add from folder" in message and "\n" not in message
    assert hub.log == []


def test_offline_mode_converts_what_the_cache_holds(hub: FakeHub,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    model_store.download_and_convert(GPT2_REPO, "fp32")
    hub.log.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = model_store.download_and_convert(GPT2_REPO, "int8")
    assert model.name == "gpt2-int8" and hub.log == []


def test_unreachable_hub_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with FakeHub() as gone:  # a port that was just closed: connection refused
        go_online(gone, monkeypatch, tmp_path / "hf")
    with pytest.raises(HubUnreachable) as failure:
        model_store.download_and_convert(GPT2_REPO, "int8")
    message = str(failure.value)
    assert message.startswith("Could not reach the Hugging Face Hub (")
    assert "check the connection or use Add from folder" in message and "\n" not in message


def test_missing_repo_and_pickle_only_repo(hub: FakeHub, tiny_checkpoint: Path,
                                           tmp_path: Path) -> None:
    with pytest.raises(HubUnavailable, match="not on the Hugging Face Hub"):
        model_store.download_and_convert("someone/nothing", "int8")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(tiny_checkpoint / "config.json", pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    hub.add_repo("someone/pickled", pickled)
    with pytest.raises(HubUnavailable, match="only safetensors"):
        model_store.download_and_convert("someone/pickled", "int8")


def test_tokenizer_json_is_preferred_to_vocab_and_merges(hub: FakeHub, tiny_checkpoint: Path,
                                                         tmp_path: Path) -> None:
    from app.engine.tokenizer import Tokenizer

    folder = tmp_path / "with-tokenizer-json"
    shutil.copytree(tiny_checkpoint, folder)
    Tokenizer.from_dir(tiny_checkpoint).save(folder / "tokenizer.json")
    hub.add_repo("distilbert/distilgpt2", folder)
    model = model_store.download_and_convert("distilbert/distilgpt2", "int8")
    assert model.name == "distilgpt2-int8"
    fetched = {e.filename for e in hub.log if e.method == "GET" and e.role == "hub"}
    assert fetched == {"config.json", "tokenizer.json"}


def test_a_sharded_repo_downloads_its_index_and_every_shard(
        hub: FakeHub, tiny_sharded_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("someone/gpt2-finetuned", tiny_sharded_checkpoint)
    model = model_store.download_and_convert("someone/gpt2-finetuned", "int8")
    shards = {p.name for p in tiny_sharded_checkpoint.glob("model-*.safetensors")}
    fetched = {e.filename for e in hub.log if e.method == "GET" and e.role == "hub"}
    assert fetched == {"config.json", "model.safetensors.index.json", "vocab.json",
                       "merges.txt", *shards}
    from app.engine.engine import load_engine

    assert len(list(load_engine(model.path, "cpu").generate(
        "Hi", SamplingParams(max_new_tokens=3)))) == 3
    hub.log.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the cached snapshot is complete
    again = model_store.download_and_convert("someone/gpt2-finetuned", "fp32")
    assert again.name == "gpt2-finetuned-fp32" and hub.log == []


# --- the installed models ------------------------------------------------------------------


def test_add_a_checkpoint_folder_converts_it(tiny_checkpoint: Path) -> None:
    seen: list[TaskProgress] = []
    model = model_store.add_from_folder(tiny_checkpoint, "int8", seen.append)
    expected_name = f"{tiny_checkpoint.name}-int8"  # the folder's name and the precision
    assert (model.name, model.precision, model.foreign) == (expected_name, "int8", False)
    assert model.source == str(tiny_checkpoint.resolve())
    assert model.size_bytes == sum(f.stat().st_size for f in model.path.iterdir())
    assert [m.name for m in model_store.list_models()] == [f"{tiny_checkpoint.name}-int8"]
    assert any(p.stage == "convert" for p in seen)


def test_add_a_sharded_checkpoint_folder_converts_it(tiny_sharded_checkpoint: Path) -> None:
    model = model_store.add_from_folder(tiny_sharded_checkpoint, "int8")
    assert (model.precision, model.foreign) == ("int8", False)
    assert model.n_params == load_checkpoint(tiny_sharded_checkpoint)[0].n_params


def test_add_our_model_folder_copies_it(tiny_model: Path) -> None:
    seen: list[TaskProgress] = []
    first = model_store.add_from_folder(tiny_model, progress=seen.append)
    second = model_store.add_from_folder(tiny_model)
    assert (first.name, second.name) == ("tiny-fp32", "tiny-fp32-2")
    assert (first.precision, first.foreign) == ("fp32", False)
    assert sorted(p.name for p in first.path.iterdir()) == \
        sorted(p.name for p in tiny_model.iterdir())
    assert seen[-1].done == seen[-1].total == sum(f.stat().st_size for f in tiny_model.iterdir())
    from app.engine.engine import load_engine

    assert load_engine(second.path, "cpu").count_tokens("hello world") == 2


def test_add_a_foreign_onnx_folder_copies_it(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from tests.engine.foreign_export import write_foreign_export

    foreign = write_foreign_export(tiny_checkpoint, tmp_path / "optimum-gpt2", "optimum")
    (foreign / "pytorch_model.bin").write_bytes(b"not copied")
    model = model_store.add_from_folder(foreign)
    assert (model.name, model.foreign) == ("optimum-gpt2", True)
    assert (model.path / "onnx" / "model.onnx").exists()
    assert not (model.path / "pytorch_model.bin").exists()
    assert model.source == str(foreign.resolve())
    assert model.n_params == load_checkpoint(tiny_checkpoint)[0].n_params
    from app.engine.engine import load_engine

    events = list(load_engine(model.path, "cpu").generate("Hi", SamplingParams(max_new_tokens=3)))
    assert len(events) == 3


def test_add_an_export_holding_gpt2s_weights_converts_them(tiny_checkpoint: Path,
                                                          tmp_path: Path) -> None:
    """optimum's exports keep the checkpoint's weight names: converted, they run as fast as a
    checkpoint's conversion instead of as a foreign graph."""
    from app.engine.engine import load_engine
    from tests.engine.foreign_export import write_foreign_export

    export = write_foreign_export(tiny_checkpoint, tmp_path / "optimum-gpt2", "optimum",
                                  weight_names=True)
    seen: list[model_store.TaskProgress] = []
    model = model_store.add_from_folder(export, "fp32", seen.append)
    assert (model.name, model.precision, model.foreign) == ("optimum-gpt2-fp32", "fp32", False)
    assert model.source == str(export.resolve())
    assert any("export's weights" in p.message for p in seen)
    prompt, params = "The lighthouse keeper", SamplingParams(temperature=0, max_new_tokens=12)
    converted = [e.token_id for e in load_engine(model.path, "cpu").generate(prompt, params)]
    as_it_is = [e.token_id for e in load_engine(export, "cpu").generate(prompt, params)]
    assert converted == as_it_is


def test_add_an_export_with_its_own_lm_head_copies_it(tiny_checkpoint: Path,
                                                     tmp_path: Path) -> None:
    from tests.engine.foreign_export import write_foreign_export

    untied = np.ascontiguousarray(load_checkpoint(tiny_checkpoint)[1]["wte.weight"].T) * 2
    export = write_foreign_export(tiny_checkpoint, tmp_path / "untied", "optimum",
                                  weight_names=True, head=untied)
    model = model_store.add_from_folder(export)
    assert (model.name, model.foreign) == ("untied", True)


def test_a_pickle_only_folder_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_checkpoint / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelLoadError) as expected:
        load_checkpoint(folder)
    with pytest.raises(ModelLoadError) as refused:
        model_store.add_from_folder(folder, "int8")
    assert str(refused.value) == str(expected.value)
    assert "pickle" in str(refused.value) and "\n" not in str(refused.value)
    assert model_store.list_models() == []


def test_cancel_a_copy_leaves_nothing(tiny_model: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        model_store.add_from_folder(tiny_model, cancel=cancel)
    assert leftovers(tmp_path / "data" / "models") == []


def test_remove_and_damaged_models(tiny_model: Path) -> None:
    kept = model_store.add_from_folder(tiny_model, name="kept")
    broken = model_store.add_from_folder(tiny_model, name="broken")
    (broken.path / "model.onnx").write_bytes(b"short")
    listed = {m.name: m for m in model_store.list_models()}
    assert listed["kept"].usable and not listed["broken"].usable
    assert "truncated" in listed["broken"].problem

    model_store.remove("broken")
    assert [m.name for m in model_store.list_models()] == ["kept"]
    assert leftovers(kept.path.parent) == ["kept"]
    with pytest.raises(GhostpenError, match="no model called"):
        model_store.remove("broken")
    with pytest.raises(GhostpenError):
        model_store.remove("../data")


def test_default_precision_and_formats() -> None:
    assert model_store.default_precision(["CUDAExecutionProvider", "CPUExecutionProvider"]) \
        == "fp16"
    assert model_store.default_precision(["DmlExecutionProvider", "CPUExecutionProvider"]) \
        == "fp16"
    assert model_store.default_precision(["CPUExecutionProvider"]) == "int8"
    assert model_store.format_bytes(548_105_171) == "548 MB"
    assert model_store.format_bytes(1_520_000_000) == "1.52 GB"
    assert model_store.format_params(124_439_808) == "124M"
    assert model_store.format_params(1_557_611_200) == "1.6B"
    assert model_store.format_params(0) == "—"
    assert [m.key for m in model_store.GPT2_FAMILY] == \
        ["distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"]
    assert model_store.catalogue_entry("gpt2").repo_id == GPT2_REPO  # type: ignore[union-attr]


def test_the_store_is_headless_and_offline_at_import() -> None:
    """No Qt (the store runs on worker threads and in scripts) and no huggingface_hub until a
    download is asked for."""
    import subprocess
    import sys

    code = ("import sys, app.model_store\n"
            "roots = {m.split('.')[0] for m in sys.modules}\n"
            "print(sorted(roots & {'PySide6', 'huggingface_hub'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
