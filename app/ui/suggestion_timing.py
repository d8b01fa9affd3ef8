"""When to start computing a suggestion so that it is ready as the typing pause ends.

The pause before a suggestion (default 250 ms) is there so that grey text does not flicker
while someone types; nothing requires the computer to sit idle through it. A suggestion takes
tens of milliseconds (8 tokens × 3 alternatives on GPT-2 124M: about 80 ms on a 2-core laptop
CPU), so the controller starts it that long before the pause ends and shows it at the end of
the pause: what was "pause + compute" becomes "pause". Starting at the keystroke itself would
hide the compute too, but would run (and throw away) a suggestion for every key of a fast
typist; starting one compute-time early wastes work only when a pause ends just short of the
delay. No Qt here: the benchmark uses it too.
"""

from __future__ import annotations

from collections import deque
from statistics import median

# How many recent suggestions the estimate looks at: enough that one slow outlier (a re-read of
# the whole context window after a jump) does not move it, few enough to follow a model change.
HISTORY = 9
# Median compute time × this: the spread of suggestion times at one document length is about
# ±20% (p95 / p50 = 1.05–1.3 in `python -m app bench autocomplete` runs).
MARGIN = 1.25


class SuggestionLead:
    """How long before the end of the pause to start: recent compute times with a margin."""

    def __init__(self) -> None:
        self._recent_ms: deque[float] = deque(maxlen=HISTORY)

    def record(self, compute_ms: float) -> None:
        """A suggestion took `compute_ms` from request to answer."""
        self._recent_ms.append(max(0.0, compute_ms))

    def forget(self) -> None:
        """A new model: its speed is unknown until it has made a suggestion."""
        self._recent_ms.clear()

    def lead_ms(self, delay_ms: int) -> int:
        """Start this many ms before the pause of `delay_ms` ends (never before the keystroke);
        0 until a suggestion has been timed."""
        if not self._recent_ms:
            return 0
        return min(delay_ms, round(MARGIN * median(self._recent_ms)))
