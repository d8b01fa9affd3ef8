"""The take tree and its file, headless: where a take goes, and what survives a round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.engine.errors import GhostpenError
from app.takes import (
    Take,
    TakeToken,
    TakeTree,
    new_take,
    prompt_hash,
    read_takes,
    sidecar_path,
)


def take(parent: str | None, text: str, prompt: str = "Once upon a time") -> Take:
    tokens = [TakeToken(i, piece, 0.5) for i, piece in enumerate(text.split("|"))]
    return new_take(parent, prompt, tokens, "temperature 0.8 · top-k 40", 7, 1764660000.0,
                    "gpt2")


def test_siblings_children_and_the_path_to_the_root() -> None:
    tree = TakeTree()
    first = tree.add(take(None, " there| was"))
    second = tree.add(take(None, " a| cat"))
    child = tree.add(take(first.id, " a| dog", "Once upon a time there was"))
    grandchild = tree.add(take(child.id, "."))
    assert [t.id for t in tree.roots()] == [first.id, second.id]
    assert [t.id for t in tree.siblings(first.id)] == [second.id]
    assert [t.id for t in tree.children(first.id)] == [child.id]
    assert tree.siblings(child.id) == []
    assert [t.id for t in tree.path_to_root(grandchild.id)] == [grandchild.id, child.id,
                                                                  first.id]
    assert child.text == " a dog" and child.preview() == "a dog"


def test_a_take_needs_its_parent_in_the_tree() -> None:
    with pytest.raises(ValueError, match="parent"):
        TakeTree([take("missing", "x")])


def test_the_tree_survives_json_as_it_was() -> None:
    tree = TakeTree()
    first = tree.add(take(None, " Ünïcode| 🙂"))
    tree.add(take(first.id, "\nA new| line"))
    again = TakeTree.from_json(json.loads(json.dumps(tree.to_json())))
    assert again.all() == tree.all()
    assert again.get(first.id).prompt_hash == prompt_hash("Once upon a time")
    assert again.get(first.id).prompt_length == len("Once upon a time")


def test_a_missing_file_is_no_takes(tmp_path: Path) -> None:
    assert len(read_takes(tmp_path / ".novel.txt.takes.json")) == 0


@pytest.mark.parametrize("content", ["{not json", '{"version": 99, "takes": []}',
                                     '{"version": 1, "takes": [{"id": "a"}]}', "[]"])
def test_a_damaged_file_is_one_line_that_names_it(tmp_path: Path, content: str) -> None:
    file = tmp_path / ".novel.txt.takes.json"
    file.write_text(content, encoding="utf-8")
    with pytest.raises(GhostpenError) as raised:
        read_takes(file)
    message = str(raised.value)
    assert "\n" not in message and ".novel.txt.takes.json" in message
    assert "damaged" in message and "opens without them" in message


def test_the_sidecar_sits_beside_the_document_hidden(tmp_path: Path) -> None:
    assert sidecar_path(tmp_path / "novel.txt") == tmp_path / ".novel.txt.takes.json"


@pytest.mark.parametrize(("text", "label"), [
    (".\nThe rain had stopped.", ". The rain had stopped."),  # not just "."
    ("\n\n   \nShe  waited\tby the\n\ndoor. ", "She waited by the door."),
    (" \n \t", "(blank)"),
])
def test_a_take_is_named_by_its_text_on_one_line(text: str, label: str) -> None:
    assert take(None, text).preview() == label


def test_a_long_take_is_shortened_at_a_word_boundary() -> None:
    text = ".\nThe rain had stopped, and the street below the window shone like a river at night"
    label = take(None, text).preview(limit=40)
    assert label == ". The rain had stopped, and the street…"
    assert len(label) <= 40
    one_long_word = take(None, "\n" + "x" * 100).preview(limit=40)
    assert one_long_word == "x" * 39 + "…"
