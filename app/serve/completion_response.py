"""Token events -> OpenAI's legacy completions JSON, whole or as streamed chunks.

logprobs follows OpenAI's shape: per token its text (`tokens`), its log probability under the
model (`token_logprobs`: the softmax of raw logits, before temperature and the samplers, as the
window's colours show it), the `logprobs` most likely tokens at that step with theirs
(`top_logprobs`; the chosen token is added when it is not among them) and where it starts
(`text_offset`, counted from the start of the prompt, as OpenAI counts). A token that holds
part of a character has the text "", and the token that completes the character holds it, so
the tokens always join to the text. With echo the prompt's tokens come first, their logprobs
null: the engine computes logits for the last prompt position only, so scoring the prompt
would take one model run per prompt token.
"""

from __future__ import annotations

import math
from typing import Any

from app.engine.events import TokenEvent

# A token whose probability rounds to 0 in float32: JSON has no -Infinity, and OpenAI reports
# such tokens as -9999.
NO_LOGPROB = -9999.0


def logprob(p: float) -> float:
    return math.log(p) if p > 0 else NO_LOGPROB


def empty_logprobs() -> dict[str, list[Any]]:
    return {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}


class ChoiceBuilder:
    """One choice as its updates come: its text, OpenAI's logprobs lists when asked, and the
    sum of its tokens' log probabilities (best_of ranks by their mean)."""

    def __init__(self, prompt: str, echo: bool, n_logprobs: int | None) -> None:
        self.prompt = prompt
        self.echo = echo
        self.n_logprobs = n_logprobs
        self.text = ""
        self.logprobs = empty_logprobs() if n_logprobs is not None else None
        self.finish_reason: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.logprob_sum = 0.0
        self.n_tokens = 0
        self._offset = len(prompt)  # where the next token starts, from the prompt's start

    def start(self, prompt_tokens: int,
              prompt_pieces: tuple[str, ...] | None) -> tuple[str, dict[str, list[Any]] | None]:
        """The echo (the prompt's text, and its tokens with null logprobs); ("", None) without
        echo. Returns what the choice gained, as a stream chunk carries it."""
        self.prompt_tokens = prompt_tokens
        if not self.echo:
            return "", None
        self.text += self.prompt
        if self.logprobs is None:
            return self.prompt, None
        gained = empty_logprobs()
        offset = 0
        for piece in prompt_pieces or ():
            _append(gained, piece, None, None, offset)
            offset += len(piece)
        _extend(self.logprobs, gained)
        return self.prompt, gained

    def add(self, event: TokenEvent) -> tuple[str, dict[str, list[Any]] | None]:
        """One generated token: returns the text and logprobs it adds."""
        token_logprob = logprob(event.p)
        self.logprob_sum += token_logprob
        self.n_tokens += 1
        self.text += event.text
        offset, self._offset = self._offset, self._offset + len(event.text)
        if self.logprobs is None or self.n_logprobs is None:
            return event.text, None
        # The chosen token's entry is its token_logprob (the alternatives' probabilities are
        # float32, its own float64), so that a client finds the same number in both places.
        top: dict[str, float] = {}
        listed = False
        for alternative in event.alternatives[: self.n_logprobs]:
            chosen = alternative.token_id == event.token_id
            top[alternative.text] = token_logprob if chosen else logprob(alternative.p)
            listed = listed or chosen
        if not listed:
            top[event.text] = token_logprob
        gained = empty_logprobs()
        _append(gained, event.text, token_logprob, top, offset)
        _extend(self.logprobs, gained)
        return event.text, gained

    def finish(self, finish_reason: str, completion_tokens: int) -> None:
        self.finish_reason = finish_reason
        self.completion_tokens = completion_tokens

    @property
    def mean_logprob(self) -> float:
        """What best_of ranks by; a completion of no tokens ranks last."""
        return self.logprob_sum / self.n_tokens if self.n_tokens else -math.inf

    def to_json(self, index: int) -> dict[str, Any]:
        return {"text": self.text, "index": index, "logprobs": self.logprobs,
                "finish_reason": self.finish_reason}


def _append(lists: dict[str, list[Any]], token: str, token_logprob: float | None,
            top: dict[str, float] | None, offset: int) -> None:
    lists["tokens"].append(token)
    lists["token_logprobs"].append(token_logprob)
    lists["top_logprobs"].append(top)
    lists["text_offset"].append(offset)


def _extend(lists: dict[str, list[Any]], more: dict[str, list[Any]]) -> None:
    for key, values in more.items():
        lists[key].extend(values)


def completion_json(completion_id: str, created: int, model: str, fingerprint: str,
                    choices: list[dict[str, Any]],
                    usage: dict[str, int] | None) -> dict[str, Any]:
    """A whole completion, or (with the choices it adds) one streamed chunk of one."""
    body: dict[str, Any] = {"id": completion_id, "object": "text_completion",
                            "created": created, "model": model,
                            "system_fingerprint": fingerprint, "choices": choices}
    if usage is not None:
        body["usage"] = usage
    return body


def usage_json(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
