"""Where generated text sits in the document, kept in step with every edit, Undo and Redo.

Positions are plain character offsets moved by hand on each `contentsChange`, not QTextCursors:
a cursor's selection grows when text is typed at its end, and a token must not. Spans and
ranges are immutable, so a snapshot of them (`MarkHistory`) is a tuple of shared objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engine.events import TokenEvent

MAX_REMEMBERED_STEPS = 500  # undo steps whose marks are kept; older ones come back unmarked


@dataclass(frozen=True)
class TokenSpan:
    """A generated token: characters [start, end), what the model said, and which run made it."""

    start: int
    end: int
    event: TokenEvent
    generation: int


@dataclass(frozen=True)
class GenerationRange:
    """The last generation, [start, end). [untouched, end) is what the model wrote there and
    the writer has not changed since: everything up to the end of the writer's last edit inside
    it (`untouched`) is the writer's now, so Regenerate keeps it and replaces only the rest."""

    start: int
    end: int
    untouched: int


@dataclass(frozen=True)
class Marks:
    """All the editor knows about the model's text at one moment."""

    spans: tuple[TokenSpan, ...]
    last_generation: GenerationRange | None
    length: int  # the document's length then: a snapshot fits only a text of that length


def shift_token(span: TokenSpan, pos: int, removed: int, added: int) -> TokenSpan | None:
    """`span` moved for an edit at `pos`; None when the edit touched the token (it is dropped)."""
    if pos >= span.end or (removed == 0 and added == 0):
        return span
    if pos + removed <= span.start:
        delta = added - removed
        return TokenSpan(span.start + delta, span.end + delta, span.event, span.generation)
    return None


def shift_generation(generation: GenerationRange, pos: int, removed: int,
                     added: int) -> GenerationRange | None:
    """Move a generation for an edit. Typing right before or right after it is not an edit of
    it; an edit inside makes everything up to the edit's end the writer's; deleting it all
    ends it (None)."""
    start, end, untouched = generation.start, generation.end, generation.untouched
    delta = added - removed
    if pos >= end or (removed == 0 and added == 0):
        return generation
    if pos + removed <= start:
        return GenerationRange(start + delta, end + delta, untouched + delta)
    edit_end = pos + added
    if pos < start:  # the edit took the generation's beginning
        start = edit_end
    if pos + removed > end:  # the edit took its end: what it wrote there is the writer's
        end = edit_end
    else:
        end += delta
    untouched = untouched + delta if untouched >= pos + removed else edit_end
    if end <= start:
        return None
    return GenerationRange(start, end, max(start, min(untouched, end)))


class MarkHistory:
    """The marks as they were at each undo step, so that Undo and Redo bring them back.

    Qt's undo stack restores text, not which of it the model wrote: an edit drops the marks of
    the tokens it touched, and undoing the edit does not add them back. A step is named by
    QTextDocument.availableUndoSteps(), which returns to the same number when Undo or Redo
    returns to the same text; a new edit forgets the steps after it, as Qt's redo stack does.
    """

    def __init__(self, limit: int = MAX_REMEMBERED_STEPS) -> None:
        self._limit = limit
        self._marks: dict[int, Marks] = {}

    def save(self, step: int, marks: Marks) -> None:
        self._marks[step] = marks
        while len(self._marks) > self._limit:
            del self._marks[min(self._marks)]

    def at(self, step: int, length: int) -> Marks | None:
        """The marks saved at `step`, if they were saved for a text of `length`."""
        marks = self._marks.get(step)
        return marks if marks is not None and marks.length == length else None

    def forget_from(self, step: int) -> None:
        for old in [s for s in self._marks if s >= step]:
            del self._marks[old]

    def clear(self) -> None:
        self._marks.clear()
