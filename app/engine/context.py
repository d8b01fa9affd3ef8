"""Which tokens the model reads: the window of a long text, and what a cache already holds."""

from __future__ import annotations

from collections.abc import Sequence

# Tokens a held window may run past its limit before it slides (see Generator._window): as a
# word grows, retokenising it moves the text's length back and forth by a token or two.
SLIDE_SLACK = 32


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def window_step(n_ctx: int) -> int:
    """How far a window's start moves when it slides: a quarter context."""
    return max(1, n_ctx // 4)


def window_limit(n_ctx: int, room: int) -> int:
    """The most tokens of text a window holds: what leaves `room` free, and never more than
    three quarters of the context.

    The cap is what makes every job agree on the window of a long text: suggestions (room ~9),
    the preview (room 1), reading ahead and a Generate of up to a quarter context all read the
    same tokens and share the cache, so alternating between them re-reads nothing. It is also
    what keeps a suggestion fast: its three rows attend over the whole window at every step
    (docs/benchmarks.md, "Ghost text", for what the cap costs and saves).
    """
    return n_ctx - max(room, window_step(n_ctx))


def context_window(ids: Sequence[int], n_ctx: int, room: int) -> list[int]:
    """The tail of `ids` that fits in window_limit.

    The start moves in steps of a quarter context, so while a person types at the end of a long
    document the window (and with it the KV cache) stays the same for a few hundred tokens.
    """
    limit = window_limit(n_ctx, room)
    if len(ids) <= limit:
        return list(ids)
    step = window_step(n_ctx)
    start = -(-(len(ids) - limit) // step) * step
    return list(ids[start:])
