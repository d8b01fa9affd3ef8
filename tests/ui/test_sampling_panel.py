"""The sampling panel: a control for every setting, presets, and the distribution view."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox
from pytestqt.qtbot import QtBot

from app.engine.sampling_params import SAMPLER_STEPS, SamplingParams
from app.ui.main_window import MainWindow

from .conftest import Answers, set_number

SPECIAL = {"mirostat", "seed", "sampler_order", "stop_strings", "banned_strings",
           "dry_sequence_breakers", "logit_bias"}


def test_every_sampling_setting_has_a_control_with_a_tooltip(window: MainWindow) -> None:
    panel = window.panel
    fields = {f.name for f in dataclasses.fields(SamplingParams)}
    assert fields == set(panel.rows) | SPECIAL
    for row in panel.rows.values():
        assert len(row.slider.toolTip()) > 20 and row.box.accessibleName()
    for widget in (panel.mirostat_box, panel.seed_box, panel.order_list, panel.stop_edit,
                   panel.banned_edit, panel.breakers_edit, panel.bias_edit):
        assert widget.toolTip() and widget.accessibleName()


def test_the_slider_and_the_number_box_move_together(qtbot: QtBot, window: MainWindow) -> None:
    row = window.panel.rows["temperature"]
    row.slider.setValue(150)
    assert row.box.value() == 1.5 and window.panel.params().temperature == 1.5
    set_number(window, "temperature", 0.25)
    assert row.slider.value() == 25
    assert window.panel.modified_label.text() == "modified"


def test_sampler_order_can_be_changed_and_steps_left_out(window: MainWindow) -> None:
    panel = window.panel
    panel.order_list.setCurrentRow(3)  # temperature
    panel.order_list.setFocus()
    QTest.keyClick(panel.order_list, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    order = panel.params().sampler_order
    assert order[2] == "temperature" and order[3] == "logit_bias"
    panel.order_list.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert "penalties" not in panel.params().sampler_order
    assert set(panel.params().sampler_order) == set(SAMPLER_STEPS) - {"penalties"}


def test_stop_strings_banned_words_and_bias_are_read(window: MainWindow) -> None:
    panel = window.panel
    panel.stop_edit.setPlainText("\\n\\n\nTHE END")
    panel.banned_edit.setPlainText("suddenly")
    panel.bias_edit.setText("198: -5, 50256: -100")
    params = panel.params()
    assert params.stop_strings == ("\n\n", "THE END")
    assert params.banned_strings == ("suddenly",)
    assert params.logit_bias == {198: -5.0, 50256: -100.0}


def test_a_bad_entry_is_explained_and_the_last_good_values_stay(window: MainWindow) -> None:
    panel = window.panel
    good = panel.params()
    panel.bias_edit.setText("newline: lots")
    assert panel.params() == good
    assert not panel.error_label.isHidden()
    assert "198: -5" in panel.error_label.text()


def test_the_seed_is_fresh_each_run_unless_locked(window: MainWindow) -> None:
    panel = window.panel
    seeds = {panel.params_for_run().seed for _ in range(5)}
    assert len(seeds) > 1 and panel.seed_box.value() in seeds
    window.panel.lock_seed_action.trigger()  # Ctrl+L
    assert panel.seed_lock.isChecked()
    panel.seed_box.setValue(42)
    assert {panel.params_for_run().seed for _ in range(3)} == {42}


def test_built_in_presets_load(window: MainWindow) -> None:
    panel = window.panel
    assert panel.preset_box.count() >= 3
    assert [panel.preset_box.itemText(i) for i in range(3)] == ["Precise", "Balanced",
                                                                 "Creative"]
    panel.preset_box.setCurrentText("Precise")
    assert panel.rows["temperature"].box.value() == 0.35
    assert not panel.rename_preset_action.isEnabled()
    panel.preset_box.setCurrentText("Creative")
    assert panel.params().xtc_probability == 0.3


def test_a_saved_preset_loads_again_and_survives_a_restart(
        make_window: Callable[..., MainWindow], answer: Answers) -> None:
    window = make_window()
    panel = window.panel
    set_number(window, "temperature", 1.23)
    set_number(window, "top_k", 7)
    answer.set(QInputDialog, "getText", ("My noir", True))
    panel.save_preset_action.trigger()
    assert panel.current_preset() == "My noir" and panel.modified_label.text() == ""
    panel.preset_box.setCurrentText("Balanced")
    assert panel.params().temperature == 0.8
    panel.preset_box.setCurrentText("My noir")
    assert (panel.params().temperature, panel.params().top_k) == (1.23, 7)
    window.close()

    again = make_window()
    assert again.panel.current_preset() == "My noir"
    assert again.panel.params().temperature == 1.23
    again.panel.preset_box.setCurrentText("Precise")
    again.panel.preset_box.setCurrentText("My noir")
    assert again.panel.params().top_k == 7


def test_rename_and_delete_a_preset(window: MainWindow, answer: Answers) -> None:
    panel = window.panel
    answer.set(QInputDialog, "getText", ("Draft", True))
    panel.save_preset_action.trigger()
    answer.set(QInputDialog, "getText", ("Final", True))
    panel.rename_preset_action.trigger()
    names = [panel.preset_box.itemText(i) for i in range(panel.preset_box.count())]
    assert "Final" in names and "Draft" not in names
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Yes)
    panel.delete_preset_action.trigger()
    names = [panel.preset_box.itemText(i) for i in range(panel.preset_box.count())]
    assert "Final" not in names and panel.current_preset() == "Balanced"


def test_a_built_in_preset_name_cannot_be_taken(window: MainWindow, answer: Answers) -> None:
    answer.set(QInputDialog, "getText", ("Precise", True))
    window.panel.save_preset_action.trigger()
    assert "built-in" in window.statusBar().currentMessage()


def test_presets_export_and_import_as_json(window: MainWindow, answer: Answers,
                                           tmp_path: Path) -> None:
    panel = window.panel
    set_number(window, "min_p", 0.2)
    answer.set(QInputDialog, "getText", ("Sharp", True))
    panel.save_preset_action.trigger()
    file = tmp_path / "sharp.json"
    answer.set(QFileDialog, "getSaveFileName", (str(file), "Preset files (*.json)"))
    panel.export_preset_action.trigger()
    data = json.loads(file.read_text())
    assert data["presets"]["Sharp"]["min_p"] == 0.2
    answer.set(QMessageBox, "question", QMessageBox.StandardButton.Yes)
    panel.delete_preset_action.trigger()
    answer.set(QFileDialog, "getOpenFileName", (str(file), ""))
    panel.import_presets_action.trigger()
    assert panel.current_preset() == "Sharp" and panel.params().min_p == 0.2


def test_a_broken_preset_file_gives_one_line(window: MainWindow, answer: Answers,
                                             tmp_path: Path) -> None:
    file = tmp_path / "broken.json"
    file.write_text('{"temperature": -3}')
    answer.set(QFileDialog, "getOpenFileName", (str(file), ""))
    window.panel.import_presets_action.trigger()
    assert window.statusBar().currentMessage() == "temperature = -3 must be 0 or more."


def test_the_distribution_follows_the_sliders(qtbot: QtBot, window: MainWindow) -> None:
    view = window.panel.distribution
    qtbot.waitUntil(lambda: len(view.candidates()) == 12, timeout=3000)
    assert view.kept_count() == 12
    set_number(window, "top_k", 5)
    qtbot.waitUntil(lambda: view.kept_count() == 5, timeout=3000)
    assert "5 of the 12" in view.accessibleDescription()
    window.panel.rows["temperature"].slider.setValue(0)
    qtbot.waitUntil(lambda: view.kept_count() == 1, timeout=3000)


def test_the_distribution_can_be_hidden(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.keyClick(window.editor, Qt.Key.Key_D,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert not window.panel.distribution.isVisible()
    window.panel_action.trigger()  # F9 hides the whole panel
    assert not window.dock.isVisible()
