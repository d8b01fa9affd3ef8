"""Takes: every text the model wrote into a document, kept as a tree, and its file.

A take is one generation or regeneration: what the model wrote, where (the hash and length of
the text before it, and the last words of that text for showing), with which settings and
model. Regenerating at the same spot makes a sibling of the take it replaces; generating right
after a take, or regenerating after the writer's edit inside it, makes a child: the new text
continues that take. No Qt here, so the tree and its JSON are tested headless.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine.errors import GhostpenError, first_line

TAKES_VERSION = 1
PROMPT_TAIL_CHARS = 160  # enough of the text before a take to show where it went


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class TakeToken:
    """One generated token of a take: enough to colour it by probability again."""

    token_id: int
    text: str
    p: float


@dataclass(frozen=True)
class Take:
    id: str
    parent: str | None
    prompt_hash: str
    prompt_length: int  # characters of text before the take
    prompt_tail: str  # the end of that text
    tokens: tuple[TakeToken, ...]
    params: str  # the sampling settings, in short
    seed: int | None
    created_at: float  # seconds since the epoch
    model: str

    @property
    def text(self) -> str:
        return "".join(token.text for token in self.tokens)

    def preview(self, limit: int = 60) -> str:
        """The take's text on one line, as a list shows it: every run of spaces and line
        breaks made one space, shortened with "…" at a word boundary. Not just its first line,
        which can be as little as "." (a take that ends a sentence, then starts a paragraph)."""
        return one_line_preview(self.text, limit)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "parent": self.parent, "prompt_hash": self.prompt_hash,
            "prompt_length": self.prompt_length, "prompt_tail": self.prompt_tail,
            "tokens": [[t.token_id, t.text, t.p] for t in self.tokens],
            "params": self.params, "seed": self.seed, "created_at": self.created_at,
            "model": self.model,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Take:
        parent = data["parent"]
        seed = data["seed"]
        return cls(
            id=str(data["id"]), parent=None if parent is None else str(parent),
            prompt_hash=str(data["prompt_hash"]), prompt_length=int(data["prompt_length"]),
            prompt_tail=str(data["prompt_tail"]),
            tokens=tuple(TakeToken(int(i), str(text), float(p)) for i, text, p in data["tokens"]),
            params=str(data["params"]), seed=None if seed is None else int(seed),
            created_at=float(data["created_at"]), model=str(data["model"]),
        )


def one_line_preview(text: str, limit: int) -> str:
    """`text` with its whitespace runs made single spaces, at most `limit` characters: a longer
    text ends with "…" after its last whole word that fits, or inside a word when the whole
    words would fill less than half the room (one very long word); "(blank)" when there is
    nothing but whitespace."""
    line = " ".join(text.split())
    if not line:
        return "(blank)"
    if len(line) <= limit:
        return line
    room = line[:limit]  # the last character is for "…", unless it is the space after a word
    cut = room.rfind(" ")
    if cut < limit // 2:
        return line[:limit - 1] + "…"
    return line[:cut] + "…"


def new_take(parent: str | None, prompt: str, tokens: Iterable[TakeToken], params: str,
             seed: int | None, created_at: float, model: str) -> Take:
    return Take(id=uuid.uuid4().hex[:12], parent=parent, prompt_hash=prompt_hash(prompt),
                prompt_length=len(prompt), prompt_tail=prompt[-PROMPT_TAIL_CHARS:],
                tokens=tuple(tokens), params=params, seed=seed, created_at=created_at,
                model=model)


class TakeTree:
    """A document's takes, in the order they were made."""

    def __init__(self, takes: Iterable[Take] = ()) -> None:
        self._takes: dict[str, Take] = {}
        for take in takes:
            self.add(take)

    def __len__(self) -> int:
        return len(self._takes)

    def __contains__(self, take_id: object) -> bool:
        return take_id in self._takes

    def add(self, take: Take) -> Take:
        if take.id in self._takes:
            raise ValueError(f"take {take.id} is already in the tree")
        if take.parent is not None and take.parent not in self._takes:
            raise ValueError(f"take {take.id}'s parent {take.parent} is not in the tree")
        self._takes[take.id] = take
        return take

    def get(self, take_id: str) -> Take:
        return self._takes[take_id]

    def all(self) -> list[Take]:
        return list(self._takes.values())

    def roots(self) -> list[Take]:
        return [t for t in self._takes.values() if t.parent is None]

    def children(self, take_id: str | None) -> list[Take]:
        """The takes made from `take_id` (None: the takes made from no take), oldest first."""
        return [t for t in self._takes.values() if t.parent == take_id]

    def siblings(self, take_id: str) -> list[Take]:
        """The other takes at the same spot as `take_id`."""
        parent = self._takes[take_id].parent
        return [t for t in self.children(parent) if t.id != take_id]

    def path_to_root(self, take_id: str) -> list[Take]:
        """`take_id`, its parent, and so on up to a take made from no take."""
        path: list[Take] = []
        current: str | None = take_id
        while current is not None:
            take = self._takes[current]
            path.append(take)
            current = take.parent
        return path

    def to_json(self) -> dict[str, Any]:
        return {"version": TAKES_VERSION, "takes": [t.to_json() for t in self._takes.values()]}

    @classmethod
    def from_json(cls, data: object) -> TakeTree:
        """Raises ValueError, KeyError or TypeError on anything that is not a takes file."""
        if not isinstance(data, dict) or data.get("version") != TAKES_VERSION:
            raise ValueError("not a takes file of this version")
        return cls(Take.from_json(item) for item in data["takes"])


def read_takes(file: Path) -> TakeTree:
    """The takes in `file`; an empty tree when there is none. A file that cannot be read or
    understood raises a GhostpenError of one line."""
    try:
        raw = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return TakeTree()
    except OSError as error:
        raise GhostpenError(f"Cannot read the takes in {file.name}: "
                            f"{error.strerror or error}; the document opens without them.") \
            from error
    try:
        return TakeTree.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as error:
        raise GhostpenError(first_line(
            f"The takes in {file.name} are damaged ({error}); the document opens without them.",
            limit=300)) from error


def sidecar_path(document: Path) -> Path:
    """Where a saved document's takes live: `novel.txt` -> `.novel.txt.takes.json` beside it."""
    return document.with_name(f".{document.name}.takes.json")
