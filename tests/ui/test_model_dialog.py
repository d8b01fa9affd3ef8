"""The Models dialog and the welcome, driven as a person would, against a stand-in Hub.

GHOSTPEN_DATA_DIR is tmp_path/data (tests/ui/conftest.py), HF_HOME is tmp_path/hf and the Hub
is a real HTTP server on 127.0.0.1 (tests/hub_server.py).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from app import model_store
from app.bench.quality import STANDIN_DIR
from app.model_store import InstalledModel
from app.ui.model_dialog import ModelDialog
from app.ui.model_tasks import BAR_STEPS
from app.ui.welcome import WelcomeDialog
from models import quality_gate
from tests.hub_server import GPT2_REPO, FakeHub
from tests.ui.conftest import Answers

CPU = ["CPUExecutionProvider"]
JOB_TIMEOUT_MS = 30_000


@pytest.fixture(autouse=True)
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Hugging Face cache of this test only (else huggingface_hub's, fixed at import)."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "hf"


@pytest.fixture
def make_dialog(qtbot: QtBot) -> Iterator[type[ModelDialog]]:
    dialogs: list[ModelDialog] = []

    def make(**kwargs: object) -> ModelDialog:
        dialog = ModelDialog(providers=CPU, **kwargs)  # type: ignore[arg-type]
        dialogs.append(dialog)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitExposed(dialog)
        return dialog

    yield make  # type: ignore[misc]
    for dialog in dialogs:
        assert dialog.shutdown(5000)


def rows(dialog: ModelDialog) -> list[list[str]]:
    table = dialog.table
    return [[table.item(r, c).text() for c in range(table.columnCount())]
            for r in range(table.rowCount())]


def install(tiny_model: Path, name: str) -> InstalledModel:
    return model_store.add_from_folder(tiny_model, name=name)


def test_lists_models_with_parameters_precision_and_size(make_dialog: type[ModelDialog],
                                                         tiny_model: Path) -> None:
    empty = make_dialog()
    assert empty.table.rowCount() == 0 and empty.empty.isVisible()
    assert not empty.use_button.isEnabled() and not empty.remove_button.isEnabled()

    model = install(tiny_model, "tiny")
    dialog = make_dialog(current="tiny")
    assert rows(dialog) == [["tiny", model_store.format_params(model.n_params), "fp32",
                             "reference", model_store.format_bytes(model.size_bytes),
                             "Ghostpen · in use"]]
    assert rows(dialog)[0][4].endswith("MB")
    assert not dialog.empty.isVisible()
    assert dialog.selected_name() == "tiny" and dialog.use_button.isEnabled()
    assert dialog.table.accessibleName() == "Installed models"


def test_download_from_the_hub_shows_bytes_and_lists_the_model(
        make_dialog: type[ModelDialog], hub: FakeHub, qtbot: QtBot) -> None:
    dialog = make_dialog()
    values: list[int] = []
    dialog.progress.bar.valueChanged.connect(values.append)
    formats: list[str] = []
    dialog.progress.bar.valueChanged.connect(lambda _v: formats.append(
        dialog.progress.bar.format()))

    qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    chooser = dialog.chooser
    assert chooser is not None and chooser.isVisible()
    assert chooser.models.currentItem().data(Qt.ItemDataRole.UserRole) == GPT2_REPO
    assert chooser.precision.currentData() == "int8"  # no GPU provider
    with qtbot.waitSignal(dialog.model_installed, timeout=JOB_TIMEOUT_MS) as installed:
        qtbot.mouseClick(chooser.download_button, Qt.MouseButton.LeftButton)
        assert dialog.progress.isVisible() and not dialog.download_button.isEnabled()
    assert installed.args == ["gpt2-int8"]

    assert BAR_STEPS in values  # the bar reached 100 %
    assert any(" of " in f and "MB" in f for f in formats)
    assert "block 2 of 2 (%p%)" in formats  # then the conversion, block by block
    assert [r[0] for r in rows(dialog)] == ["gpt2-int8"]
    assert dialog.selected_name() == "gpt2-int8"
    assert not dialog.progress.isVisible() and dialog.download_button.isEnabled()
    assert "Installed gpt2-int8" in dialog.status.text()
    assert not dialog.error.isVisible()


def test_cancel_a_download(make_dialog: type[ModelDialog], hub: FakeHub, qtbot: QtBot,
                           tmp_path: Path) -> None:
    hub.trickle_s = 0.01  # about two seconds for the weights
    dialog = make_dialog()
    assert dialog.start_download(GPT2_REPO, "int8")
    qtbot.waitUntil(lambda: dialog.progress.bar.maximum() == BAR_STEPS
                    and dialog.progress.bar.value() > 0, timeout=JOB_TIMEOUT_MS)
    with qtbot.waitSignal(dialog.jobs.cancelled, timeout=JOB_TIMEOUT_MS):
        qtbot.mouseClick(dialog.progress.cancel_button, Qt.MouseButton.LeftButton)
    assert dialog.table.rowCount() == 0
    assert "Cancelled" in dialog.status.text() and not dialog.error.isVisible()
    assert dialog.download_button.isEnabled() and not dialog.progress.isVisible()
    assert not any((tmp_path / "data" / "models").glob("*"))  # nothing, not even hidden work
    assert list((tmp_path / "hf").rglob("*.incomplete"))  # kept for next time


def test_closing_while_downloading_cancels_first(make_dialog: type[ModelDialog], hub: FakeHub,
                                                 qtbot: QtBot) -> None:
    hub.trickle_s = 0.01
    dialog = make_dialog()
    dialog.start_download(GPT2_REPO, "int8")
    qtbot.waitUntil(lambda: dialog.progress.bar.value() > 0, timeout=JOB_TIMEOUT_MS)
    dialog.close()
    assert dialog.isVisible()  # still stopping
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=JOB_TIMEOUT_MS)
    assert not dialog.jobs.busy and model_store.list_models() == []


def test_offline_error_is_one_line(make_dialog: type[ModelDialog], qtbot: QtBot,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dialog = make_dialog()
    with qtbot.waitSignal(dialog.jobs.failed, timeout=JOB_TIMEOUT_MS):
        dialog.start_download(GPT2_REPO)
    assert dialog.error.isVisible()
    assert "HF_HUB_OFFLINE" in dialog.error.text() and "\n" not in dialog.error.text()


def test_add_from_folder_converts_a_checkpoint(make_dialog: type[ModelDialog], qtbot: QtBot,
                                               answer: Answers, tiny_checkpoint: Path) -> None:
    answer.set(QFileDialog, "getExistingDirectory", str(tiny_checkpoint))
    dialog = make_dialog()
    with qtbot.waitSignal(dialog.model_installed, timeout=JOB_TIMEOUT_MS) as installed:
        qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    assert installed.args == [f"{tiny_checkpoint.name}-int8"]
    assert [r[0] for r in rows(dialog)] == [f"{tiny_checkpoint.name}-int8"]


def test_add_from_folder_refuses_pickles_in_one_line(make_dialog: type[ModelDialog],
                                                     qtbot: QtBot, answer: Answers,
                                                     tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    answer.set(QFileDialog, "getExistingDirectory", str(folder))
    dialog = make_dialog()
    with qtbot.waitSignal(dialog.jobs.failed, timeout=JOB_TIMEOUT_MS):
        qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    assert "pickle" in dialog.error.text() and "\n" not in dialog.error.text()


def test_remove_asks_then_removes(make_dialog: type[ModelDialog], answer: Answers,
                                  tiny_model: Path, qtbot: QtBot) -> None:
    install(tiny_model, "first")
    install(tiny_model, "second")
    dialog = make_dialog()
    dialog.table.selectRow(1)
    assert dialog.selected_name() == "second"

    answer.set(QMessageBox, "question", QMessageBox.StandardButton.No)
    qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert [r[0] for r in rows(dialog)] == ["first", "second"]

    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(dialog.model_removed) as removed:
        qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert removed.args == ["second"]
    assert [r[0] for r in rows(dialog)] == ["first"]
    assert [m.name for m in model_store.list_models()] == ["first"]
    assert "second" in answer.asked[-1][1][2]  # the question named the model


def test_use_emits_model_chosen(make_dialog: type[ModelDialog], tiny_model: Path,
                                qtbot: QtBot) -> None:
    install(tiny_model, "alpha")
    install(tiny_model, "beta")
    dialog = make_dialog(current="alpha")
    assert dialog.selected_name() == "alpha"  # the model in use is selected first
    dialog.table.selectRow(1)
    with qtbot.waitSignal(dialog.model_chosen) as chosen:
        qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert chosen.args == ["beta"]
    assert not dialog.isVisible() and dialog.current == "beta"


def test_damaged_model_can_be_removed_not_used(make_dialog: type[ModelDialog],
                                               tiny_model: Path) -> None:
    broken = install(tiny_model, "broken")
    (broken.path / "model.onnx").write_bytes(b"short")
    dialog = make_dialog()
    assert rows(dialog)[0][5] == "Damaged"
    assert dialog.remove_button.isEnabled() and not dialog.use_button.isEnabled()


QUALITY = 3  # the column of what the quality gate measured


def tooltip(dialog: ModelDialog, name: str) -> str:
    item = dialog.table.item([r[0] for r in rows(dialog)].index(name), QUALITY)
    assert item is not None
    return item.toolTip()


def test_the_quality_column_says_what_was_and_was_not_measured(
        make_dialog: type[ModelDialog], model_cache: Callable[..., Path], tiny_model: Path,
        tmp_path: Path) -> None:
    install(model_cache("tiny", "int8"), "random-int8")
    install(tiny_model, "random-fp32")
    old = shutil.copytree(model_cache("tiny", "int8"), tmp_path / "before-the-gate")
    manifest = json.loads((old / "manifest.json").read_text("utf-8"))
    del manifest["quality"]  # as the converter wrote it before the gate
    (old / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    install(old, "old-int8")

    dialog = make_dialog()
    header = dialog.table.horizontalHeaderItem(QUALITY)
    assert header is not None and header.text() == "Quality vs fp32"
    assert {r[0]: r[QUALITY] for r in rows(dialog)} == {
        "old-int8": "not measured", "random-fp32": "reference", "random-int8": "not judged"}
    assert "does not predict English" in tooltip(dialog, "random-int8")


needs_standin = pytest.mark.skipif(not (STANDIN_DIR / "model.safetensors").exists(),
                                   reason=f"the trained stand-in is not in {STANDIN_DIR}")


@needs_standin
def test_a_trained_model_shows_its_kl_and_agreement(make_dialog: type[ModelDialog],
                                                    qtbot: QtBot) -> None:
    dialog = make_dialog()
    with qtbot.waitSignal(dialog.model_installed, timeout=JOB_TIMEOUT_MS):
        assert dialog.start_add_folder(STANDIN_DIR, "int8")
    model = dialog.models()[0]
    kl, top1 = model.quality["kl"], model.quality["top1"]
    assert rows(dialog)[0][2:4] == ["int8", f"KL {kl:.1e} · top-1 {top1:.1%}"]
    assert re.fullmatch(r"KL \d\.\de-0\d · top-1 9\d\.\d%", rows(dialog)[0][QUALITY])
    assert "Against fp32 on the built-in text" in tooltip(dialog, model.name)
    assert dialog.status.text() == (f"Installed {model.name} "
                                    f"({model_store.format_bytes(model.size_bytes)}).")


@needs_standin
def test_when_the_gate_changes_the_precision_the_notice_says_why(
        make_dialog: type[ModelDialog], qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """A limit no int8 can meet stands in for a model that int8 would spoil."""
    monkeypatch.setitem(quality_gate.LIMITS, "int8", quality_gate.Limits(1e-9, 1.0))
    dialog = make_dialog()
    with qtbot.waitSignal(dialog.model_installed, timeout=JOB_TIMEOUT_MS):
        assert dialog.start_add_folder(STANDIN_DIR, "int8")
    assert rows(dialog)[0][2:4] == ["fp32", "reference"]
    notice = dialog.status.text()
    assert re.fullmatch(r"Installed \S+ \(.+\)\. int8 strayed too far from fp32 on the "
                        r"built-in text \(.+\); converted to fp32 instead\.", notice), notice
    assert "converted to fp32 instead" in tooltip(dialog, dialog.models()[0].name)
    # the folder is named for what it holds, not for what was asked
    assert [model.name for model in dialog.models()] == [f"{STANDIN_DIR.name}-fp32"]


@needs_standin
def test_the_welcome_says_when_the_gate_changed_the_precision(
        qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(quality_gate.LIMITS, "int8", quality_gate.Limits(1e-9, 1.0))
    welcome = WelcomeDialog(providers=CPU)
    qtbot.addWidget(welcome)
    with qtbot.waitSignal(welcome.model_chosen, timeout=JOB_TIMEOUT_MS) as chosen:
        assert welcome.welcome.start_add_folder(STANDIN_DIR)
    assert chosen.args == [f"{STANDIN_DIR.name}-fp32"]
    assert welcome.welcome.status.text().endswith("; converted to fp32 instead.")


def test_welcome_offers_exactly_download_and_add(qtbot: QtBot, hub: FakeHub) -> None:
    welcome = WelcomeDialog(providers=CPU)
    qtbot.addWidget(welcome)
    welcome.show()
    qtbot.waitExposed(welcome)
    offers = [b.text() for b in welcome.findChildren(QPushButton) if b.isVisible()]
    assert offers == ["Download GPT-2 (124M)", "Add from Folder…"]

    with qtbot.waitSignal(welcome.model_chosen, timeout=JOB_TIMEOUT_MS) as chosen:
        qtbot.mouseClick(welcome.welcome.download_button, Qt.MouseButton.LeftButton)
    assert chosen.args == ["gpt2-int8"]
    assert welcome.result() == WelcomeDialog.DialogCode.Accepted and not welcome.isVisible()
    assert [m.name for m in model_store.list_models()] == ["gpt2-int8"]
