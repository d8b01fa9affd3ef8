"""Backslash escapes for stop and banned strings typed on one line: \\n is a line break, \\t a
tab, \\\\ a backslash; any other backslash stays as it is.

The sampling panel's one-per-line boxes and the command line's --stop/--ban read them, so a
stop string can be a blank line. Only these three are understood: Python's "unicode_escape"
codec would also read \\x41 and \\u00e9, but it decodes its input as Latin-1 and turns any
non-ASCII text into mojibake ("é" becomes "Ã©").
"""

from __future__ import annotations

ESCAPES: dict[str, str] = {"n": "\n", "t": "\t", "\\": "\\"}


def escape(text: str) -> str:
    """The one-line form of `text`; unescape(escape(text)) == text."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(ESCAPES.get(text[i + 1], text[i : i + 2]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
