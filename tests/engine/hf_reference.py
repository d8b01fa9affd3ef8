"""transformers' GPT2LMHeadModel on the same weights: the parity reference (test-only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def load_hf_model(checkpoint: Path) -> Any:  # a GPT2LMHeadModel
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(**json.loads((checkpoint / "config.json").read_text()))
    model = GPT2LMHeadModel.from_pretrained(str(checkpoint), config=config,
                                            dtype=torch.float32)
    model.eval()
    return model


def hf_logits(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def hf_greedy(model: Any, ids: list[int], n: int) -> list[int]:
    """Greedy decoding with transformers' own KV cache, one token at a time."""
    import torch

    out: list[int] = []
    with torch.no_grad():
        result = model(torch.tensor([ids]), use_cache=True)
        for _ in range(n):
            token = int(result.logits[0, -1].argmax())
            out.append(token)
            result = model(torch.tensor([[token]]), past_key_values=result.past_key_values,
                           use_cache=True)
    return out
