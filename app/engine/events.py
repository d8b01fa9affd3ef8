"""What the engine hands back: token events, suggestions, candidates and run statistics.

Plain frozen dataclasses, so they cross threads (the UI worker emits them as signal payloads)
and serialise to JSON without surprises.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Alternative:
    token_id: int
    text: str
    p: float  # the model's probability (softmax of raw logits, temperature 1)
    # After the sampler chain at this step (0: cut); None from an engine that does not record it.
    p_final: float | None = None


@dataclass(frozen=True)
class TokenEvent:
    token_id: int
    text: str  # the decoded piece; "" while a UTF-8 character is still incomplete
    p: float  # the model's probability of this token (softmax of raw logits)
    alternatives: tuple[Alternative, ...] = ()  # most likely tokens at this step, best first


@dataclass(frozen=True)
class Suggestion:
    """One ghost-text alternative: its text and the tokens that made it."""

    text: str
    events: tuple[TokenEvent, ...]


@dataclass(frozen=True)
class Candidate:
    """One bar of the distribution view: a next token before and after the sampler chain."""

    token_id: int
    text: str
    p_model: float  # softmax of raw logits
    p_final: float  # probability after the whole sampler chain (0 when cut)
    kept: bool


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    new_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens served from the KV cache, not run again
    prefill_ms: float = 0.0
    decode_tok_s: float = 0.0
    stop_reason: str = ""  # max_new_tokens | eos | stop_string | cancelled | suggested
    # Prompt lookup: tokens guessed and checked in a pass with the token before them, and how
    # many of those the model then wrote (each one a forward pass saved).
    draft_tokens: int = 0
    accepted_draft_tokens: int = 0


@dataclass(frozen=True)
class EngineInfo:
    model_name: str
    precision: str  # fp32 | fp16 | int8 | int4 | foreign
    provider: str  # CPUExecutionProvider, CUDAExecutionProvider, ...
    n_ctx: int = 1024
    n_params: int = 0
    fallback_reason: str = ""  # why a requested GPU provider was not used; "" when none
    notes: tuple[str, ...] = field(default_factory=tuple)
