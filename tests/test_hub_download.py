"""Downloads from a stand-in Hugging Face Hub, converted into installed models.

The Hub is a real HTTP server on 127.0.0.1 (tests/hub_server.py) speaking what huggingface_hub
2.4 asks for; HF_ENDPOINT points at it and HF_HOME at tmp_path, so nothing leaves the machine.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from pathlib import Path

import pytest

from app import hub_download, model_store
from app.engine.sampling_params import SamplingParams
from app.hub_download import DownloadCancelled, HubUnavailable, HubUnreachable
from app.model_store import TaskProgress
from models.checkpoint import load_checkpoint
from tests.hub_server import GPT2_REPO, FakeHub, go_online
from tests.test_model_store import leftovers

pytestmark = pytest.mark.usefixtures("isolated_dirs")


def partial_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "hf").rglob("*.incomplete"))


def test_download_converts_into_a_model_that_writes(hub: FakeHub, tiny_checkpoint: Path,
                                                    tmp_path: Path) -> None:
    seen: list[TaskProgress] = []
    model = hub_download.download_and_convert(GPT2_REPO, "int8", seen.append)

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
    hub_download.download_and_convert(GPT2_REPO, "fp32")
    hub.log.clear()
    model = hub_download.download_and_convert(GPT2_REPO, "fp16")
    assert model.name == "gpt2-fp16"
    assert [e for e in hub.log if e.method == "GET"] == []  # metadata only
    assert [m.name for m in model_store.list_models()] == ["gpt2-fp16", "gpt2-fp32"]


def test_dropped_connection_resumes_with_a_range_request(hub: FakeHub, tiny_checkpoint: Path,
                                                         tmp_path: Path) -> None:
    hub.drop("model.safetensors", 5_000_000)
    model = hub_download.download_and_convert(GPT2_REPO, "int8")

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
        hub_download.download_and_convert(GPT2_REPO, "int8")
    assert "503" in str(failure.value) and "\n" not in str(failure.value)
    assert model_store.list_models() == []
    [partial] = partial_files(tmp_path)
    kept = partial.stat().st_size
    assert 0 < kept <= 6_000_000

    model = hub_download.download_and_convert(GPT2_REPO, "int8")
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
        hub_download.download_and_convert(GPT2_REPO, "int8")
    assert partial_files(tmp_path)
    hub.honour_range = False
    hub_download.download_and_convert(GPT2_REPO, "int8")
    assert hub.gets("model.safetensors")[-1].range is not None  # asked, answered with 200
    blob = next((tmp_path / "hf").rglob("snapshots/*/model.safetensors"))
    assert blob.read_bytes() == (tiny_checkpoint / "model.safetensors").read_bytes()


def test_damaged_bytes_are_caught_by_the_checksum(hub: FakeHub, tmp_path: Path) -> None:
    hub.garble("model.safetensors", 1000)
    with pytest.raises(HubUnavailable) as failure:
        hub_download.download_and_convert(GPT2_REPO, "int8")
    assert "checksum" in str(failure.value) and "\n" not in str(failure.value)
    assert partial_files(tmp_path) == [] and model_store.list_models() == []
    sha256 = hub.repos[GPT2_REPO]["model.safetensors"].sha256
    assert list((tmp_path / "hf").rglob(f"blobs/{sha256}*")) == []  # neither blob nor partial
    assert hub_download.download_and_convert(GPT2_REPO, "int8").usable  # the next try is clean


def test_cancel_mid_download_leaves_no_model_and_resumes_later(hub: FakeHub,
                                                               tmp_path: Path) -> None:
    cancel = threading.Event()

    def progress(p: TaskProgress) -> None:
        if p.stage == "download" and p.done > 1_000_000:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        hub_download.download_and_convert(GPT2_REPO, "int8", progress, cancel)
    root = tmp_path / "data" / "models"
    assert leftovers(root) == []
    assert model_store.list_models() == []
    [partial] = partial_files(tmp_path)
    kept = partial.stat().st_size
    assert kept > 1_000_000

    hub_download.download_and_convert(GPT2_REPO, "int8")
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
        hub_download.download_and_convert(GPT2_REPO, "int8", progress, cancel)
    assert blocks == [(1, 2)]
    assert leftovers(tmp_path / "data" / "models") == []


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
    hub_download.download_and_convert(GPT2_REPO, "int8")
    assert [e.path for e in hub.log if "/api/" in e.path] == ["/api/agent-harnesses"]


def test_offline_mode_is_one_line_and_asks_nothing(hub: FakeHub,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable) as failure:
        hub_download.download_and_convert(GPT2_REPO, "int8")
    message = str(failure.value)
    assert "HF_HUB_OFFLINE" in message and "Add from Folder" in message and "\n" not in message
    assert hub.log == []


def test_offline_mode_converts_what_the_cache_holds(hub: FakeHub,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    hub_download.download_and_convert(GPT2_REPO, "fp32")
    hub.log.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = hub_download.download_and_convert(GPT2_REPO, "int8")
    assert model.name == "gpt2-int8" and hub.log == []


def test_unreachable_hub_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with FakeHub() as gone:  # a port that was just closed: connection refused
        go_online(gone, monkeypatch, tmp_path / "hf")
    with pytest.raises(HubUnreachable) as failure:
        hub_download.download_and_convert(GPT2_REPO, "int8")
    message = str(failure.value)
    assert message.startswith("Could not reach the Hugging Face Hub (")
    assert "check the connection or use Add from Folder" in message and "\n" not in message


def test_missing_repo_and_pickle_only_repo(hub: FakeHub, tiny_checkpoint: Path,
                                           tmp_path: Path) -> None:
    with pytest.raises(HubUnavailable, match="not on the Hugging Face Hub"):
        hub_download.download_and_convert("someone/nothing", "int8")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(tiny_checkpoint / "config.json", pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    hub.add_repo("someone/pickled", pickled)
    with pytest.raises(HubUnavailable, match="only safetensors"):
        hub_download.download_and_convert("someone/pickled", "int8")


def test_tokenizer_json_is_preferred_to_vocab_and_merges(hub: FakeHub, tiny_checkpoint: Path,
                                                         tmp_path: Path) -> None:
    from app.engine.tokenizer import Tokenizer

    folder = tmp_path / "with-tokenizer-json"
    shutil.copytree(tiny_checkpoint, folder)
    Tokenizer.from_dir(tiny_checkpoint).save(folder / "tokenizer.json")
    hub.add_repo("distilbert/distilgpt2", folder)
    model = hub_download.download_and_convert("distilbert/distilgpt2", "int8")
    assert model.name == "distilgpt2-int8"
    fetched = {e.filename for e in hub.log if e.method == "GET" and e.role == "hub"}
    assert fetched == {"config.json", "tokenizer.json"}


def test_a_sharded_repo_downloads_its_index_and_every_shard(
        hub: FakeHub, tiny_sharded_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("someone/gpt2-finetuned", tiny_sharded_checkpoint)
    model = hub_download.download_and_convert("someone/gpt2-finetuned", "int8")
    shards = {p.name for p in tiny_sharded_checkpoint.glob("model-*.safetensors")}
    fetched = {e.filename for e in hub.log if e.method == "GET" and e.role == "hub"}
    assert fetched == {"config.json", "model.safetensors.index.json", "vocab.json",
                       "merges.txt", *shards}
    from app.engine.engine import load_engine

    assert len(list(load_engine(model.path, "cpu").generate(
        "Hi", SamplingParams(max_new_tokens=3)))) == 3
    hub.log.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the cached snapshot is complete
    again = hub_download.download_and_convert("someone/gpt2-finetuned", "fp32")
    assert again.name == "gpt2-finetuned-fp32" and hub.log == []



# --- what the server says is checked -------------------------------------------------------

HOSTILE = "../../../../escaped"  # from the cache's blobs/ folder up to tmp_path


def escaped(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.rglob("escaped*"))


@pytest.mark.parametrize("filename", ["config.json", "model.safetensors"])
def test_an_etag_that_is_a_path_is_refused_and_nothing_is_written(
        hub: FakeHub, tmp_path: Path, filename: str) -> None:
    """The blob's file name in the cache is the server's ETag (X-Linked-Etag for an LFS file):
    one that leads out of the cache is refused before any byte is fetched."""
    hub.etags[filename] = HOSTILE
    with pytest.raises(HubUnavailable) as refused:
        hub_download.download_and_convert(GPT2_REPO, "int8")
    message = str(refused.value)
    assert HOSTILE in message and filename in message and "\n" not in message
    assert escaped(tmp_path) == [] and model_store.list_models() == []
    assert hub.gets(filename) == []


def test_a_commit_that_is_a_path_is_refused(hub: FakeHub, tmp_path: Path) -> None:
    """The snapshot folder's name is the commit the server gives (X-Repo-Commit)."""
    hub.commits["config.json"] = HOSTILE
    with pytest.raises(HubUnavailable) as refused:
        hub_download.download_and_convert(GPT2_REPO, "int8")
    assert HOSTILE in str(refused.value) and "\n" not in str(refused.value)
    assert escaped(tmp_path) == [] and model_store.list_models() == []


def test_the_etags_are_asked_once_so_a_changed_answer_cannot_move_a_file(
        hub: FakeHub, tmp_path: Path) -> None:
    """Once the bytes are in, the files are filed into the cache from the answers that were
    checked: a server that answers a path the second time it is asked writes nothing there."""

    def progress(p: TaskProgress) -> None:
        if p.message == "Downloaded":
            hub.etags.update({"config.json": HOSTILE, "model.safetensors": HOSTILE})

    model = hub_download.download_and_convert(GPT2_REPO, "int8", progress)
    assert model.usable and escaped(tmp_path) == []


def test_a_mirror_etag_that_is_no_hash_is_checked_by_size(hub: FakeHub, tiny_checkpoint: Path,
                                                         tmp_path: Path) -> None:
    hub.etags["model.safetensors"] = "mirror-7f3a"
    model = hub_download.download_and_convert(GPT2_REPO, "int8")
    assert model.usable
    blob = next((tmp_path / "hf").rglob("snapshots/*/model.safetensors"))
    assert blob.read_bytes() == (tiny_checkpoint / "model.safetensors").read_bytes()


@pytest.mark.parametrize("announced", [-10, 10], ids=["fewer", "more"])
@pytest.mark.parametrize("filename", ["config.json", "model.safetensors"])
def test_a_file_of_another_size_than_announced_is_refused(
        hub: FakeHub, tmp_path: Path, filename: str, announced: int) -> None:
    """With an ETag that is no hash the size is all there is to check: a file longer or
    shorter than the server announced is refused (and, shorter, not asked for forever)."""
    hub.etags[filename] = "mirror-7f3a"
    hub.sizes[filename] = len(hub.repos[GPT2_REPO][filename].data) + announced
    with pytest.raises(HubUnavailable) as refused:
        hub_download.download_and_convert(GPT2_REPO, "int8")
    message = str(refused.value)
    assert filename in message and "bytes" in message and "\n" not in message
    assert partial_files(tmp_path) == [] and model_store.list_models() == []


@pytest.mark.parametrize("filename", ["config.json", "model.safetensors"])
def test_a_file_with_neither_hash_nor_size_is_refused_unfetched(
        hub: FakeHub, tmp_path: Path, filename: str) -> None:
    hub.etags[filename] = "mirror-7f3a"
    hub.sizes[filename] = None
    with pytest.raises(HubUnavailable) as refused:
        hub_download.download_and_convert(GPT2_REPO, "int8")
    message = str(refused.value)
    assert filename in message and "mirror-7f3a" in message and "\n" not in message
    assert hub.gets(filename) == [] and model_store.list_models() == []
