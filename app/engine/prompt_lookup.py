"""Prompt lookup: guess the next tokens by finding where the text's last few tokens appeared
before, and copying what followed them there.

A writer's document repeats itself: names, phrases, a refrain, the structure of a list; and a
model, greedy ones especially, repeats what it has read. When the guess is right, the model
checks several tokens in one forward pass (reading its weights once) instead of one pass a
token. The guess costs no model at all, so a text with nothing to copy costs nothing: no
match, no draft (Saxena, "Prompt Lookup Decoding", 2023; transformers' prompt_lookup_num_tokens).

The guess never changes what is written: the Generator draws every token from the model's own
logits as it would without it, and a draft token is used only when it equals the drawn one.
"""

from __future__ import annotations

import numpy as np

# Longest and shortest n-gram looked up. Three tokens pin a phrase down; two still find names
# and common continuations; a single token matches almost anywhere and is usually wrong.
MAX_NGRAM = 3
MIN_NGRAM = 2


def lookup_draft(history: np.ndarray, max_tokens: int) -> list[int]:
    """Up to `max_tokens` tokens that followed the latest earlier occurrence of the longest
    n-gram (MAX_NGRAM down to MIN_NGRAM tokens) that ends `history`; [] when none occurs."""
    length = len(history)
    if max_tokens < 1:
        return []
    for n in range(MAX_NGRAM, MIN_NGRAM - 1, -1):
        if length <= n:
            continue
        tail = history[length - n :]
        # Windows starting at 0 .. length-n-1: each is followed by at least one token.
        windows = np.lib.stride_tricks.sliding_window_view(history[: length - 1], n)
        hits = np.flatnonzero((windows == tail).all(axis=1))
        if len(hits):
            start = int(hits[-1]) + n  # the most recent occurrence: the likeliest to repeat
            return [int(t) for t in history[start : start + max_tokens]]
    return []
