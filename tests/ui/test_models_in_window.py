"""Models from the window: the welcome on a first run, the Models dialog, switching model."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QDesktopServices
from pytestqt.qtbot import QtBot

from app.ui.main_window import MainWindow

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with two tiny random GPT-2s (different seeds), converted by our exporter."""
    from models.export import export_model
    from models.random import write_random_checkpoint

    root = tmp_path_factory.mktemp("two")
    for name, seed in (("alpha", 1), ("beta", 2)):
        write_random_checkpoint("tiny", root / f"ck-{name}", seed=seed)
        export_model(root / f"ck-{name}", root / "data" / "models" / name,
                     progress=lambda _: None)
    return root / "data"


def test_first_run_without_a_model_offers_download_and_add(
        qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        make_window: Callable[..., MainWindow]) -> None:
    monkeypatch.setenv("GHOSTPEN_DATA_DIR", str(tmp_path / "empty"))
    window = make_window(engine=None, wait_for_engine=False)
    qtbot.waitUntil(lambda: window.welcome is not None and window.welcome.isVisible(),
                    timeout=10000)
    welcome = window.welcome
    assert welcome is not None
    assert welcome.download_button.text().startswith("Download GPT-2")
    assert welcome.add_button.text() == "Add from Folder…"
    assert window.model_label.text() == "No model"
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()))
    models = tmp_path / "empty" / "models"
    assert not models.exists()
    welcome.folder_hint.linkActivated.emit(models.as_uri())  # the hint's link, clicked
    assert opened == [str(models)] and models.is_dir()


def test_a_model_added_while_running_is_loaded_without_restart(
        qtbot: QtBot, tmp_path: Path, two_models: Path, monkeypatch: pytest.MonkeyPatch,
        make_window: Callable[..., MainWindow]) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("GHOSTPEN_DATA_DIR", str(data))
    window = make_window(engine=None, wait_for_engine=False)
    qtbot.waitUntil(lambda: window.welcome is not None and window.welcome.isVisible(),
                    timeout=10000)
    shutil.copytree(two_models / "models" / "beta", data / "models" / "beta")
    window.open_models_dialog()
    dialog = window._models_dialog
    assert dialog is not None
    dialog.refresh()
    dialog.models_changed.emit()  # what the dialog says after an add or a download
    qtbot.waitUntil(lambda: window.engine_info is not None, timeout=20000)
    assert window.engine_info.model_name == "beta"
    assert window.welcome is not None and window.welcome.isHidden()


def test_choosing_another_model_switches_without_restart(
        qtbot: QtBot, two_models: Path, monkeypatch: pytest.MonkeyPatch,
        make_window: Callable[..., MainWindow]) -> None:
    monkeypatch.setenv("GHOSTPEN_DATA_DIR", str(two_models))
    window = make_window(engine=None, wait_for_engine=False)
    qtbot.waitUntil(lambda: window.engine_info is not None, timeout=20000)
    first = window.engine_info.model_name
    other = "beta" if first == "alpha" else "alpha"
    window.open_models_dialog()
    dialog = window._models_dialog
    assert dialog is not None and dialog.isVisible()
    assert {m.name for m in dialog.models()} == {"alpha", "beta"}
    row = next(r for r in range(dialog.table.rowCount())
               if dialog.table.item(r, 0).text().startswith(other))
    dialog.table.selectRow(row)
    qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.engine_info is not None
                    and window.engine_info.model_name == other, timeout=20000)
    assert window.model_label.text().startswith(f"{other} · fp32")
    assert window.settings.get("last_model") == other
