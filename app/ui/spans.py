"""Where generated text sits in the document, kept in step with every edit.

Positions are plain character offsets moved by hand on each `contentsChange`, not QTextCursors:
a cursor's selection grows when text is typed at its end, and a token must not.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engine.events import TokenEvent


@dataclass
class TokenSpan:
    """A generated token: characters [start, end), what the model said, and which run made it."""

    start: int
    end: int
    event: TokenEvent
    generation: int


def shift_token(span: TokenSpan, pos: int, removed: int, added: int) -> bool:
    """Move `span` for an edit at `pos`; False when the edit touched the token (it is dropped)."""
    if pos >= span.end or (removed == 0 and added == 0):
        return True
    if pos + removed <= span.start:
        span.start += added - removed
        span.end += added - removed
        return True
    return False


def shift_range(
    bounds: tuple[int, int], pos: int, removed: int, added: int
) -> tuple[int, int] | None:
    """Move a generation's [start, end) for an edit; edits inside keep it, deleting it ends it."""
    start, end = bounds
    delta = added - removed
    if pos >= end or (removed == 0 and added == 0):
        return bounds
    if pos + removed <= start:
        return start + delta, end + delta
    if pos < start:  # the edit took the generation's beginning
        start = pos + added
        end = end + delta
    elif pos + removed > end:  # the edit took its end
        end = pos
    else:
        end += delta
    return (start, end) if end > start else None
