"""How a token's text is shown on its own, where spaces and line breaks would be invisible."""

from __future__ import annotations


def visible_token(text: str) -> str:
    """'·' for a space, '↵' for a line break, '⇥' for a tab; '∅' for an empty piece."""
    if text == "":
        return "∅"
    return text.replace(" ", "·").replace("\n", "↵").replace("\t", "⇥")


def percent(p: float) -> str:
    if p >= 0.1:
        return f"{p * 100:.0f} %"
    if p >= 0.001:
        return f"{p * 100:.1f} %"
    return "<0.1 %"
