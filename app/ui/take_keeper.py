"""The takes of the document in the window: recorded as runs end, put back, and kept on disk.

Every run that wrote something becomes a take (app/takes.py says where in the tree). The tree
is written after each take, so a crash loses at most the run in progress: beside a saved
document (`.novel.txt.takes.json`), and for an untitled one in the data folder under the
autosave's session, so the recovery of its text finds its takes too.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app.engine.errors import GhostpenError
from app.engine.events import TokenEvent
from app.engine.sampling_params import SamplingParams
from app.paths import data_dir
from app.takes import (
    Take,
    TakeToken,
    TakeTree,
    new_take,
    prompt_hash,
    read_takes,
    sidecar_path,
)
from app.ui.document_session import DocumentSession
from app.ui.documents import Recovery, write_text_atomic
from app.ui.editor import Editor, utf16_len
from app.ui.generation import GenerationController, WrittenRun


def takes_dir() -> Path:
    """Where the takes of untitled documents are kept, one file per window session."""
    return data_dir() / "takes"


def params_summary(params: SamplingParams) -> str:
    """The settings a writer tells runs apart by, in one short line."""
    if params.greedy:
        parts = ["greedy"]
    else:
        parts = [f"temperature {params.temperature:g}"]
        if params.mirostat:
            parts.append(f"mirostat τ {params.mirostat_tau:g}")
        else:
            if params.top_k:
                parts.append(f"top-k {params.top_k}")
            if params.top_p < 1:
                parts.append(f"top-p {params.top_p:g}")
            if params.min_p > 0:
                parts.append(f"min-p {params.min_p:g}")
    if params.repetition_penalty != 1:
        parts.append(f"repetition {params.repetition_penalty:g}")
    return " · ".join(parts)


class TakeKeeper(QObject):
    changed = Signal()  # the tree, or which take is in the document, changed
    message = Signal(str)  # one line for the status bar

    def __init__(self, document: DocumentSession, generation: GenerationController,
                 editor: Editor, model_name: Callable[[], str],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._document = document
        self._generation = generation
        self._editor = editor
        self._model_name = model_name
        self.tree = TakeTree()
        self.current: str | None = None  # the take whose text is the last generation
        self.file = self._untitled_file(document.autosave.session)
        self._loading = False  # the document's text is being replaced: its takes follow
        generation.run_written.connect(self._record)
        document.replacing.connect(self._on_replacing)
        document.path_changed.connect(self._on_path_changed)
        document.restored.connect(self._on_restored)
        document.discarded.connect(self._on_discarded)

    # --- what the window asks -----------------------------------------------------------------

    def use(self, take_id: str) -> None:
        """Put `take_id`'s text in the document as one undo step, its tokens coloured;
        Regenerate then rerolls it. Where the text before it (or before the take it grew from)
        is still as it was, it goes at its own spot, with what it grew from, in place of the
        takes written there; elsewhere it takes the place of the last generation, or goes in at
        the cursor."""
        take = self.tree.get(take_id)
        if self._generation.running:
            self._generation.stop()
        editor = self._editor
        start, end, lead = self._place_for(take)
        editor.begin_generation(start, end if end > start else None)
        editor.append_tokens([TokenEvent(token.token_id, token.text, token.p)
                              for token in (*lead, *take.tokens)])
        editor.end_generation()
        self.current = take_id
        self.changed.emit()

    def _place_for(self, take: Take) -> tuple[int, int, tuple[TakeToken, ...]]:
        """The document range (Qt positions) that `take` replaces, and the tokens to write
        before its own: those of the takes it grew from that the document no longer has."""
        editor = self._editor
        text = editor.text_before(editor.document().characterCount() - 1)
        last = editor.last_generation()
        path = self.tree.path_to_root(take.id)
        for depth, anchor in enumerate(path):
            spot = anchor.prompt_length
            if spot > len(text) or prompt_hash(text[:spot]) != anchor.prompt_hash:
                continue
            lead = self._lead(take, path[1:depth + 1], text[:spot])
            if lead is None:
                continue
            qt_spot = utf16_len(text[:spot])
            end = self._takes_written_at(text, spot, anchor)
            if end > spot:
                return qt_spot, qt_spot + utf16_len(text[spot:end]), lead
            if last is not None and last.end >= qt_spot and self._current_passes(anchor):
                return qt_spot, last.end, lead  # the takes there, as the writer edited them
            if last is not None and last.end == qt_spot:  # it continues the last generation
                return qt_spot, qt_spot, lead
        if last is not None:
            return last.start, last.end, ()
        at = editor.insertion_point()
        return at, at, ()

    def _current_passes(self, anchor: Take) -> bool:
        """Whether the take in the document grew from one written at `anchor`'s spot."""
        if self.current is None or self.current not in self.tree:
            return False
        return any(t.prompt_length == anchor.prompt_length
                   and t.prompt_hash == anchor.prompt_hash
                   for t in self.tree.path_to_root(self.current))

    def _lead(self, take: Take, ancestors: list[Take],
              before: str) -> tuple[TakeToken, ...] | None:
        """What comes between `before` and `take`: the text of `ancestors` (nearest first) as
        `take`'s prompt had it, edits included; None when its prompt cannot be rebuilt."""
        gap = take.prompt_length - len(before)
        if gap < 0 or gap > len(take.prompt_tail):
            return None
        between = take.prompt_tail[len(take.prompt_tail) - gap:]
        if prompt_hash(before + between) != take.prompt_hash:
            return None
        tokens = tuple(token for a in reversed(ancestors) for token in a.tokens)
        if "".join(t.text for t in tokens) == between:
            return tokens
        return (TakeToken(-1, between, 1.0),) if between else ()  # the writer's edits in it

    def _takes_written_at(self, text: str, spot: int, take: Take) -> int:
        """Where the takes in `text` from `spot` end: one of `take`'s siblings (or itself) as
        it was written, then its children as they were written, and so on; `spot` if none."""
        end = spot
        candidates = [t for t in self.tree.children(take.parent)
                      if t.prompt_length == spot and t.prompt_hash == take.prompt_hash]
        while True:
            found = max((t for t in candidates if t.text and text.startswith(t.text, end)),
                        key=lambda t: len(t.text), default=None)
            if found is None:
                return end
            end += len(found.text)
            candidates = [t for t in self.tree.children(found.id) if t.prompt_length == end]

    def continue_from(self, take_id: str) -> None:
        """Put `take_id` in place, then let the model write after it: the new take is its
        child."""
        self.use(take_id)
        self._generation.generate()

    def close(self, keep_unsaved: bool) -> None:
        """The window closes. An untitled document's takes go with its text, unless that text
        is kept for recovery."""
        if self._document.path is None and not keep_unsaved:
            self._delete(self.file)

    # --- recording ----------------------------------------------------------------------------

    def _record(self, run: WrittenRun) -> None:
        take = new_take(self._parent_of(run), run.prompt,
                        (TakeToken(e.token_id, e.text, e.p) for e in run.tokens),
                        params_summary(run.params), run.params.seed, time.time(),
                        self._model_name())
        self.tree.add(take)
        self.current = take.id
        self._write()
        self.changed.emit()

    def _parent_of(self, run: WrittenRun) -> str | None:
        """Regenerating a take from its start makes a sibling; writing right after it, or
        regenerating after the writer's edit inside it, continues it: a child. Anything else
        starts afresh."""
        previous, current = run.previous, self.current
        if previous is None or current is None or current not in self.tree:
            return None
        if run.replaced and run.start == previous.start:
            return self.tree.get(current).parent
        if run.replaced and previous.start < run.start <= previous.end:
            return current
        if not run.replaced and run.start == previous.end:
            return current
        return None

    # --- files --------------------------------------------------------------------------------

    def _untitled_file(self, session: str) -> Path:
        return takes_dir() / f"{session}.json"

    def _write(self) -> None:
        if len(self.tree) == 0:
            return
        try:
            write_text_atomic(self.file, json.dumps(self.tree.to_json(), ensure_ascii=False))
        except GhostpenError as error:
            self.message.emit(f"The takes were not saved: {error}")

    def _delete(self, file: Path) -> None:
        with contextlib.suppress(OSError):
            file.unlink()

    def _load(self, file: Path) -> TakeTree:
        """The takes in `file`; a damaged file is kept aside (`….damaged`) and said in one
        line, and the document goes on with no takes."""
        try:
            return read_takes(file)
        except GhostpenError as error:
            with contextlib.suppress(OSError):
                os.replace(file, file.with_name(file.name + ".damaged"))
            # After the window's own "Opened …", which would otherwise hide it at once.
            QTimer.singleShot(0, lambda line=str(error): self.message.emit(line))
            return TakeTree()

    def _on_replacing(self) -> None:
        self._generation.stop()  # a run cut short here is a take of the text that is going
        self._loading = True
        if self._document.path is None:  # the untitled text is going: so are its takes
            self._delete(self.file)

    def _on_path_changed(self) -> None:
        path = self._document.path
        if self._loading:  # opened, new or restored: the takes of what is there now
            self._loading = False
            self.file = (sidecar_path(path) if path
                         else self._untitled_file(self._document.autosave.session))
            self.tree = self._load(self.file) if path else TakeTree()
            self.current = None
            self.changed.emit()
            return
        if path is not None and sidecar_path(path) != self.file:  # saved under a new name
            old, self.file = self.file, sidecar_path(path)
            self._write()
            if old.parent == takes_dir():
                self._delete(old)
            self.changed.emit()

    def _on_restored(self, recovery: Recovery) -> None:
        """An untitled document's text came back from a crash: so do its takes."""
        if recovery.document_path is not None:
            return  # they were loaded from beside the document
        left = self._untitled_file(recovery.file.stem)
        self.tree = self._load(left)
        self.current = None
        self._write()
        if left != self.file and self.file.exists():
            self._delete(left)
        self.changed.emit()

    def _on_discarded(self, recovery: Recovery) -> None:
        """An untitled document's text from a crash was deleted: its takes go too."""
        if recovery.document_path is None:
            self._delete(self._untitled_file(recovery.file.stem))

    def take(self, take_id: str) -> Take:
        return self.tree.get(take_id)
