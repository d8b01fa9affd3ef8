"""The Qt-free parts: token spans following edits, and the preset store."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.engine.errors import GhostpenError
from app.engine.events import Alternative, TokenEvent
from app.engine.fake import FakeEngine
from app.engine.sampling_params import SamplingParams
from app.ui.main_window import MainWindow
from app.ui.presets import BUILTIN, PresetStore
from app.ui.spans import TokenSpan, shift_range, shift_token

from .conftest import generate_and_wait

EVENT = TokenEvent(1, "ab", 0.5)


@pytest.mark.parametrize(("pos", "removed", "added", "expected"), [
    (10, 0, 3, (5, 7)),  # typing after the token
    (7, 0, 3, (5, 7)),  # typing right at its end does not grow it
    (5, 0, 3, (8, 10)),  # typing right at its start moves it
    (0, 2, 0, (3, 5)),  # deleting before it
    (6, 0, 1, None),  # typing inside it: edited, so no longer marked
    (4, 2, 0, None),  # deleting across its start
])
def test_a_token_follows_edits(pos: int, removed: int, added: int,
                               expected: tuple[int, int] | None) -> None:
    span = TokenSpan(5, 7, EVENT, 1)
    kept = shift_token(span, pos, removed, added)
    assert ((span.start, span.end) if kept else None) == expected


@pytest.mark.parametrize(("pos", "removed", "added", "expected"), [
    (12, 0, 2, (5, 10)),
    (7, 1, 3, (5, 12)),  # an edit inside stretches it
    (3, 4, 0, (3, 6)),  # cutting its beginning
    (8, 5, 0, (5, 8)),  # cutting its end
    (4, 7, 0, None),  # deleting it whole
])
def test_a_generation_range_follows_edits(pos: int, removed: int, added: int,
                                          expected: tuple[int, int] | None) -> None:
    assert shift_range((5, 10), pos, removed, added) == expected


def test_presets_save_rename_delete_and_refuse_built_ins() -> None:
    store = PresetStore()
    store.save("  Night   shift ", SamplingParams(temperature=1.2))
    assert "Night shift" in store.names() and store.get("Night shift").temperature == 1.2
    store.rename("Night shift", "Day shift")
    assert store.user_json().keys() == {"Day shift"}
    with pytest.raises(GhostpenError, match="built-in"):
        store.save("Balanced", SamplingParams())
    with pytest.raises(GhostpenError, match="built-in"):
        store.delete("Creative")
    store.delete("Day shift")
    assert store.names() == list(BUILTIN)


def test_preset_files_round_trip_and_a_bare_values_file_imports(tmp_path: Path) -> None:
    store = PresetStore()
    store.save("Terse", SamplingParams(max_new_tokens=16, stop_strings=("\n",)))
    store.export_file(["Terse", "Precise"], tmp_path / "mine.json")
    other = PresetStore()
    assert other.import_file(tmp_path / "mine.json") == ["Terse", "Precise (imported)"]
    assert other.get("Terse").stop_strings == ("\n",)
    (tmp_path / "warm.json").write_text('{"temperature": 1.3}')
    assert other.import_file(tmp_path / "warm.json") == ["warm"]
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(GhostpenError, match="holds no presets"):
        other.import_file(tmp_path / "list.json")


class WideCharacterEngine(FakeEngine):
    """Tokens beyond the BMP, and one that is half a character: QTextDocument counts UTF-16."""

    PIECES = ("é", "", "😀", " ok")

    def generate(self, prompt: str, params: SamplingParams,
                 cancel: threading.Event | None = None) -> Iterator[TokenEvent]:
        alternatives = (Alternative(1, "🙂", 0.4), Alternative(2, "x", 0.1))
        for piece in self.PIECES:
            yield TokenEvent(0, piece, 0.3, alternatives)


def test_wide_characters_keep_tokens_in_place(qtbot: QtBot,
                                              make_window: Callable[..., MainWindow]) -> None:
    window = make_window(WideCharacterEngine)
    window.editor.insertPlainText("🌊 ")  # QTest types ASCII only
    generate_and_wait(qtbot, window)
    assert window.editor.toPlainText() == "🌊 é😀 ok"
    spans = window.editor.tokens()
    assert [(s.start, s.end) for s in spans] == [(3, 4), (4, 6), (6, 9)]  # UTF-16 units
    window.editor.replace_token(spans[1], Alternative(2, "x", 0.1))
    assert window.editor.toPlainText() == "🌊 éx ok"
    assert [(s.start, s.end) for s in window.editor.tokens()] == [(3, 4), (4, 5), (5, 8)]
    assert window.editor.text_before(5) == "🌊 éx"
