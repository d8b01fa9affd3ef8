"""Which tokens the model reads: the window of a long text, and what a cache already holds."""

from __future__ import annotations

from collections.abc import Sequence

ROOM_STEP = 64  # see context_window


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def context_window(ids: Sequence[int], n_ctx: int, room: int) -> list[int]:
    """The tail of `ids` that fits with `room` tokens to spare.

    The start moves in steps of a quarter context, so while a person types at the end of a long
    document the window (and with it the KV cache) stays the same for a few hundred tokens.
    Rooms are rounded up to ROOM_STEP, so the preview (room 1) and suggestions (room ~9), which
    alternate while a person types, always agree on the window and share the cache.
    """
    room = max(room, min(-(-room // ROOM_STEP) * ROOM_STEP, n_ctx // 4))
    limit = n_ctx - room
    if len(ids) <= limit:
        return list(ids)
    step = max(1, n_ctx // 4)
    start = -(-(len(ids) - limit) // step) * step
    return list(ids[start:])
