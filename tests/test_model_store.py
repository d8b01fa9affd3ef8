"""The installed models and the ways to add one from a folder: converted or copied, listed,
removed (downloads: tests/test_hub_download.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app import hub_download, model_store
from app.engine.errors import GhostpenError, ModelLoadError
from app.engine.model_files import VERIFIED, sha256_of
from app.engine.sampling_params import SamplingParams
from app.model_store import Cancelled, TaskProgress
from models.checkpoint import load_checkpoint
from tests.hub_server import GPT2_REPO

pytestmark = pytest.mark.usefixtures("isolated_dirs")


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_conversion_reports_each_block(tiny_checkpoint: Path) -> None:
    seen: list[TaskProgress] = []
    model_store.add_from_folder(tiny_checkpoint, "fp32", seen.append)
    counted = [(p.done, p.total) for p in seen if p.stage == "convert" and p.total]
    assert counted == [(1, 2), (2, 2)]


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
    sources = [p for p in tiny_model.iterdir() if p.name != VERIFIED]  # a load's stamp
    assert sorted(p.name for p in first.path.iterdir()) == \
        sorted([p.name for p in sources] + [VERIFIED])  # verified as it was added
    assert seen[-1].done == seen[-1].total == sum(f.stat().st_size for f in sources)
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



@pytest.mark.parametrize("kind", ["parent", "absolute", "link"])
def test_a_manifest_naming_a_file_outside_its_folder_is_refused(tiny_model: Path, tmp_path: Path,
                                                                 kind: str) -> None:
    """Add from folder copies the files a model's manifest.json names, and loading checks them:
    a name leading out of the folder (`../`, an absolute path, a link) would copy or read any
    file of the person's. Refused by name, nothing copied, and such a folder never loads."""
    from app.engine.engine import load_engine

    secret = tmp_path / "secret.txt"
    secret.write_text("not a model file")
    folder = tmp_path / "downloads" / "evil"
    shutil.copytree(tiny_model, folder)
    name = {"parent": "../../secret.txt", "absolute": str(secret), "link": "extra.bin"}[kind]
    if kind == "link":
        (folder / name).symlink_to(secret)
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    manifest["files"][name] = {"size": secret.stat().st_size, "sha256": sha256_of(secret)}
    (folder / "manifest.json").write_text(json.dumps(manifest), "utf-8")

    with pytest.raises(ModelLoadError) as refused:
        model_store.add_from_folder(folder)
    message = str(refused.value)
    assert name in message and "\n" not in message
    assert model_store.list_models() == []
    assert list((tmp_path / "data").rglob("secret*")) == []
    with pytest.raises(ModelLoadError, match="not a file in"):
        load_engine(folder, "cpu")

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
    assert [m.key for m in hub_download.GPT2_FAMILY] == \
        ["distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"]
    assert hub_download.catalogue_entry("gpt2").repo_id == GPT2_REPO  # type: ignore[union-attr]


@pytest.mark.parametrize("module", ["app.model_store", "app.hub_download"])
def test_the_store_and_the_download_are_headless_and_offline_at_import(module: str) -> None:
    """No Qt (the store and downloads run on worker threads and in scripts) and no
    huggingface_hub until a download is asked for."""
    import subprocess
    import sys

    code = (f"import sys, {module}\n"
            "roots = {m.split('.')[0] for m in sys.modules}\n"
            "print(sorted(roots & {'PySide6', 'huggingface_hub'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# A job in the models folder that gets as far as its half-made files, then waits to be killed.
HALF_DONE_JOB = """
import sys, time
from pathlib import Path
from app import model_store
with model_store._work_folder(Path(sys.argv[1])) as work:
    (work / "model.onnx.data").write_bytes(bytes(1 << 20))
    print(work, flush=True)
    time.sleep(600)
"""


def test_what_a_killed_job_left_goes_and_a_running_jobs_folder_stays(
        tiny_model: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    jobs = [subprocess.Popen([sys.executable, "-c", HALF_DONE_JOB, str(root)],
                             stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        killed, running = (Path(job.stdout.readline().strip()) for job in jobs)  # type: ignore
        jobs[0].kill()  # SIGKILL: no finally, no clean-up of its own
        jobs[0].wait()
        assert killed.exists() and running.exists()

        assert model_store.remove_abandoned_work(root) == [killed]
        assert not killed.exists() and running.exists()
        with model_store._work_folder(root) as own:  # this process's own job is in use too
            assert model_store.remove_abandoned_work(root) == []
            assert own.exists() and running.exists()
    finally:
        for job in jobs:
            job.kill()
            job.communicate()  # and closes its pipe
    # the next job clears what the second left; the model it adds is all that remains
    model = model_store.add_from_folder(tiny_model, root=root)
    assert leftovers(root) == [model.name]


def test_a_work_folder_without_a_lock_goes_only_once_it_is_old(tmp_path: Path) -> None:
    """Folders from before the lock, or one another window made a moment ago and is locking."""
    root = tmp_path / "models"
    old, new = root / (model_store.WORK_PREFIX + "old"), root / (model_store.WORK_PREFIX + "new")
    for folder in (old, new):
        folder.mkdir(parents=True)
        (folder / "model.onnx.data").write_bytes(b"half")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert model_store.remove_abandoned_work(root) == [old]
    assert leftovers(root) == [new.name]
