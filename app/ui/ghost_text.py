"""What ghost text is, as plain data: the suggestions shown after the cursor and how keys act on
them. No Qt here, so the benchmark and tests use it without a window.

A GhostText belongs to one place in one version of the document: the cursor position and the
editor's edit count when it was asked for. The editor paints it; it is never in the document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from app.engine.sampling_params import SamplingParams

# Suggestions are short and should read as the obvious next words: cooler than generation.
SUGGESTION_PARAMS = SamplingParams(temperature=0.5, top_k=40, top_p=0.9, min_p=0.05,
                                   repetition_penalty=1.1)

_NEXT_WORD = re.compile(r"\s*\S+|\s+")


@dataclass(frozen=True)
class GhostText:
    position: int  # the cursor position it follows (UTF-16 units, as QTextDocument counts)
    revision: int  # the editor's edit count it was made for
    alternatives: tuple[str, ...]  # never empty, no empty strings
    index: int = 0

    @property
    def text(self) -> str:
        return self.alternatives[self.index]

    @property
    def indicator(self) -> str:
        """"2/3": which alternative is shown, of how many."""
        return f"{self.index + 1}/{len(self.alternatives)}"

    def cycled(self, step: int) -> GhostText:
        return replace(self, index=(self.index + step) % len(self.alternatives))

    def next_word(self) -> str:
        """What Ctrl+Right takes: leading spaces and the word after them, with its punctuation."""
        match = _NEXT_WORD.match(self.text)
        return match.group(0) if match else self.text

    def after_typing(self, typed: str, position: int, revision: int) -> GhostText | None:
        """The ghost left once `typed` was entered at its start; None when nothing is left.

        Alternatives that do not begin with `typed` are dropped; the one shown stays shown if
        it still applies, else the first that does.
        """
        if not typed:
            return self
        kept = [a[len(typed):] for a in self.alternatives if a.startswith(typed)]
        shown = self.text[len(typed):] if self.text.startswith(typed) else None
        rest = [a for a in dict.fromkeys(kept) if a]
        if not rest:
            return None
        index = rest.index(shown) if shown in rest else 0
        return GhostText(position, revision, tuple(rest), index)


def usable_alternatives(texts: list[str]) -> tuple[str, ...]:
    """Suggestion texts worth showing: not blank, each once, in the engine's order."""
    return tuple(dict.fromkeys(t for t in texts if t.strip()))
