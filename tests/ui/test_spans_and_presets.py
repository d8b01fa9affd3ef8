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
from app.ui.spans import GenerationRange, TokenSpan, shift_generation, shift_token

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
    moved = shift_token(TokenSpan(5, 7, EVENT, 1), pos, removed, added)
    assert ((moved.start, moved.end) if moved else None) == expected


@pytest.mark.parametrize(("pos", "removed", "added", "expected"), [
    (12, 0, 2, (5, 10, 5)),
    (10, 0, 2, (5, 10, 5)),  # typing right after it is not an edit of it
    (5, 0, 2, (7, 12, 7)),  # nor is typing right before it
    (7, 1, 3, (5, 12, 10)),  # an edit inside stretches it; up to the edit is the writer's
    (3, 4, 0, (3, 6, 3)),  # cutting its beginning
    (8, 5, 0, (5, 8, 8)),  # cutting its end
    (8, 5, 1, (5, 9, 9)),  # replacing its end: what the writer typed there is theirs
    (4, 7, 0, None),  # deleting it whole
])
def test_a_generation_range_follows_edits(pos: int, removed: int, added: int,
                                          expected: tuple[int, int, int] | None) -> None:
    moved = shift_generation(GenerationRange(5, 10, 5), pos, removed, added)
    assert ((moved.start, moved.end, moved.untouched) if moved else None) == expected


@pytest.mark.parametrize(("pos", "removed", "added", "untouched"), [
    (6, 1, 1, 8),  # an edit before the last one inside it: the last one still counts
    (9, 0, 1, 10),  # a later edit moves the boundary to its end
])
def test_the_untouched_tail_starts_after_the_last_edit(pos: int, removed: int, added: int,
                                                       untouched: int) -> None:
    moved = shift_generation(GenerationRange(5, 10, 8), pos, removed, added)
    assert moved is not None and moved.untouched == untouched


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
