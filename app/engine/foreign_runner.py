"""Runs GPT-2 exports made by others: optimum / transformers.js and ONNX Runtime's own layout.

Their graphs take the past as an input and return past+new as a fresh output, so each step
copies the cache; they also compute logits for every position. They work, only slower than a
Ghostpen conversion. Shapes: B rows, S new tokens, P past, H heads, D head dim, V vocab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from app.engine.errors import ModelLoadError
from app.engine.runner import checked_logits

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


@dataclass
class ForeignCache:
    """past[i] is [B, H, P, D] per layer for keys and values (split layout)."""

    keys: list[np.ndarray]
    values: list[np.ndarray]
    max_len: int
    pos: int = 0
    tokens: list[int] = field(default_factory=list)

    @property
    def batch(self) -> int:
        return self.keys[0].shape[0]

    def reset(self) -> None:
        self.rewind(0)

    def rewind(self, pos: int) -> None:
        self.pos = min(self.pos, pos)
        self.keys = [k[:, :, : self.pos] for k in self.keys]
        self.values = [v[:, :, : self.pos] for v in self.values]
        del self.tokens[self.pos :]

    def fork_row0(self, rows: int) -> None:
        self.keys = [np.repeat(k[:1], rows, axis=0) for k in self.keys]
        self.values = [np.repeat(v[:1], rows, axis=0) for v in self.values]

    def shrink(self) -> None:
        self.fork_row0(1)


@dataclass(frozen=True)
class ForeignContract:
    layout: str  # "split" (past_key_values.N.key) or "combined" (past_N)
    n_layer: int
    n_head: int
    head_dim: int
    vocab_size: int
    ids_dtype: type
    cache_dtype: type
    has_position_ids: bool
    has_attention_mask: bool
    has_use_cache_branch: bool
    has_num_logits_to_keep: bool


def detect_contract(session: object, n_head_hint: int | None = None) -> ForeignContract:
    """Read the graph's inputs and outputs; a graph that is not GPT-2-with-past is refused."""
    inputs = {i.name: i for i in session.get_inputs()}  # type: ignore[attr-defined]
    outputs = {o.name: o for o in session.get_outputs()}  # type: ignore[attr-defined]
    if "input_ids" not in inputs or "logits" not in outputs:
        raise ModelLoadError("this ONNX graph is not a GPT-2 language model (no input_ids → "
                             "logits); convert a GPT-2 checkpoint with `python -m models.export`.")
    split = sorted(int(m.group(1)) for n in inputs
                   if (m := re.fullmatch(r"past_key_values\.(\d+)\.key", n)))
    combined = sorted(int(m.group(1)) for n in inputs if (m := re.fullmatch(r"past_(\d+)", n)))
    if split:
        layout, layers, first = "split", split, inputs["past_key_values.0.key"]
        n_head, head_dim = first.shape[1], first.shape[3]
    elif combined:
        layout, layers, first = "combined", combined, inputs["past_0"]
        n_head, head_dim = first.shape[2], first.shape[4]
    else:
        raise ModelLoadError("this ONNX graph has no past key/value inputs, so every token would "
                             "rerun the whole text; export it with past (use_cache) or convert "
                             "the checkpoint with `python -m models.export`.")
    if layers != list(range(len(layers))):
        raise ModelLoadError("this ONNX graph's past inputs skip layers; it is not a GPT-2 export.")
    if not isinstance(n_head, int):
        n_head = n_head_hint
    if not isinstance(n_head, int) or not isinstance(head_dim, int):
        raise ModelLoadError("this ONNX graph leaves the head count open and no config.json says "
                             "it; put the model's config.json beside the .onnx file.")
    vocab = outputs["logits"].shape[-1]
    if not isinstance(vocab, int):
        vocab = 50257
    return ForeignContract(
        layout=layout, n_layer=len(layers), n_head=n_head, head_dim=head_dim, vocab_size=vocab,
        ids_dtype=_ORT_TYPES.get(inputs["input_ids"].type, np.int64),
        cache_dtype=_ORT_TYPES.get(first.type, np.float32),
        has_position_ids="position_ids" in inputs,
        has_attention_mask="attention_mask" in inputs,
        has_use_cache_branch="use_cache_branch" in inputs,
        has_num_logits_to_keep="num_logits_to_keep" in inputs,
    )


class ForeignRunner:
    def __init__(self, session: object, contract: ForeignContract, n_positions: int,
                 fallback_reason: str = "") -> None:
        self.session = session
        self.contract = contract
        self.n_positions = n_positions
        self.fallback_reason = fallback_reason
        self.provider: str = session.get_providers()[0]  # type: ignore[attr-defined]
        self._mask_dtype: type = np.int64
        for i in session.get_inputs():  # type: ignore[attr-defined]
            if i.name == "attention_mask":
                self._mask_dtype = _ORT_TYPES.get(i.type, np.int64)

    @property
    def n_ctx(self) -> int:
        return self.n_positions

    def new_cache(self, batch: int = 1) -> ForeignCache:
        c = self.contract
        empty: np.ndarray = np.zeros((batch, c.n_head, 0, c.head_dim), c.cache_dtype)
        return ForeignCache([empty] * c.n_layer, [empty] * c.n_layer, self.n_positions)

    def forward(self, ids: np.ndarray, cache: ForeignCache, keep: int = 1) -> np.ndarray:
        """[B, S] -> [B, keep, V] logits; appends to the cache and advances cache.pos."""
        c = self.contract
        rows, length = ids.shape
        if cache.batch != rows:  # back from a batched suggestion: row 0 is the document
            cache.keys = [k[:1].repeat(rows, axis=0) for k in cache.keys]
            cache.values = [v[:1].repeat(rows, axis=0) for v in cache.values]
        total = cache.pos + length
        feed: dict[str, np.ndarray] = {"input_ids": ids.astype(c.ids_dtype)}
        if c.has_attention_mask:
            feed["attention_mask"] = np.ones((rows, total), self._mask_dtype)
        if c.has_position_ids:
            feed["position_ids"] = np.broadcast_to(
                np.arange(cache.pos, total, dtype=c.ids_dtype), (rows, length)).copy()
        if c.has_use_cache_branch:
            feed["use_cache_branch"] = np.array([cache.pos > 0])
        if c.has_num_logits_to_keep:
            feed["num_logits_to_keep"] = np.array(max(keep, 1), np.int64)  # 0 means all there
        names = []
        for i in range(c.n_layer):
            if c.layout == "split":
                feed[f"past_key_values.{i}.key"] = cache.keys[i]
                feed[f"past_key_values.{i}.value"] = cache.values[i]
                names += [f"present.{i}.key", f"present.{i}.value"]
            else:
                feed[f"past_{i}"] = np.stack([cache.keys[i], cache.values[i]])
                names.append(f"present_{i}")
        results = self.session.run(["logits", *names], feed)  # type: ignore[attr-defined]
        logits, presents = results[0], results[1:]
        if c.layout == "split":
            cache.keys, cache.values = list(presents[0::2]), list(presents[1::2])
        else:
            cache.keys = [p[0] for p in presents]
            cache.values = [p[1] for p in presents]
        cache.pos = total
        kept = logits[:, logits.shape[1] - keep :, :]  # keep=0: none ([B, 0, V])
        return checked_logits(np.asarray(kept, dtype=np.float32))
