"""Text entries of the sampling panel read into values: escaped lines, JSON lists, token bias.

In the one-per-line boxes a line break is written \\n (and a tab \\t, a backslash \\\\: see
app/engine/text_escapes.py), so a stop string can be a blank line. Bad entries raise
InvalidParameterError with a one-line hint.
"""

from __future__ import annotations

import json

from app.engine.errors import InvalidParameterError
from app.engine.text_escapes import escape, unescape

# escape is re-exported: the panel writes stop strings back into its boxes with it.
__all__ = ["escape", "read_bias", "read_json_strings", "read_lines", "unescape"]


def read_lines(text: str) -> tuple[str, ...]:
    return tuple(unescape(line) for line in text.splitlines() if line.strip())


def read_json_strings(text: str) -> tuple[str, ...]:
    if not text.strip():
        return ()
    try:
        value = json.loads(text)
    except ValueError as error:
        raise InvalidParameterError(
            "DRY breakers must be a JSON list of strings, e.g. [\"\\n\", \":\"]."
        ) from error
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameterError("DRY breakers must be a JSON list of strings.")
    return tuple(value)


def read_bias(text: str) -> dict[int, float]:
    bias: dict[int, float] = {}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition(":")
        try:
            bias[int(key)] = float(value)
        except ValueError as error:
            raise InvalidParameterError(
                f"Logit bias “{part.strip()}” should look like 198: -5 (token id: bias)."
            ) from error
        if not sep:
            raise InvalidParameterError("Logit bias entries look like 198: -5 (token id: bias).")
    return bias
