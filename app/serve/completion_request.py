"""A `POST /v1/completions` body, read and checked: OpenAI's fields plus Ghostpen's samplers.

OpenAI's fields keep OpenAI's names, defaults and ranges (temperature 0..2, penalties -2..2,
logit_bias -100..100, up to 4 stop strings); Ghostpen's other samplers go by their
SamplingParams names (top_k, min_p, typical_p, repetition_penalty, dry_*, xtc_*, mirostat*,
no_repeat_ngram_size, banned_strings, sampler_order) and SamplingParams reads and checks them
itself, so the server and the window refuse the same values with the same words. A request
starts from OpenAI's behaviour, plain sampling at temperature 1, not from the window's
defaults (top-k 40, min-p 0.05, repetition penalty 1.1): a client asks for those by name.
Everything refused is an ApiError: one line, the field it is about, status 400 (404 for a
model this server does not serve).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from app.engine.errors import InvalidParameterError
from app.engine.sampling_params import GREEDY, SamplingParams
from app.serve.api_error import ApiError

DEFAULT_MAX_TOKENS = 16  # OpenAI's default
MAX_TOKENS_LIMIT = 100_000  # SamplingParams' own bound on max_new_tokens
MAX_LOGPROBS = 20
MAX_STOPS = 4  # OpenAI's limit
MAX_RUNS = 128  # prompts × best_of in one request: each is a generation of its own
MAX_SEED = 2**63

# OpenAI's sampling fields that are SamplingParams fields of the same name and meaning.
OPENAI_SAMPLER_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty",
                         "seed", "logit_bias")
GHOSTPEN_SAMPLER_FIELDS = (
    "top_k", "min_p", "typical_p", "repetition_penalty", "repetition_penalty_range",
    "no_repeat_ngram_size", "dry_multiplier", "dry_base", "dry_allowed_length",
    "dry_penalty_last_n", "dry_sequence_breakers", "xtc_threshold", "xtc_probability",
    "mirostat", "mirostat_tau", "mirostat_eta", "banned_strings", "sampler_order",
)
OPENAI_OTHER_FIELDS = ("model", "prompt", "suffix", "max_tokens", "n", "best_of", "stream",
                       "stream_options", "logprobs", "echo", "stop", "user")
KNOWN_FIELDS = frozenset((*OPENAI_OTHER_FIELDS, *OPENAI_SAMPLER_FIELDS,
                          *GHOSTPEN_SAMPLER_FIELDS))

# Temperature 1 and every other sampler and penalty off, as OpenAI samples.
SERVE_DEFAULTS = GREEDY.replace(temperature=1.0, max_new_tokens=DEFAULT_MAX_TOKENS)


@dataclass(frozen=True)
class CompletionRequest:
    prompts: tuple[str, ...]
    params: SamplingParams  # stop strings and max_new_tokens included
    max_tokens: int  # 0: no new tokens (with echo: the prompt alone)
    n: int  # choices returned per prompt
    best_of: int  # runs per prompt; the n with the best mean log probability are returned
    logprobs: int | None  # alternatives listed per token; None: no logprobs at all
    echo: bool
    stream: bool
    include_usage: bool  # streaming: a last chunk with the token counts

    def run_params(self, run: int) -> SamplingParams:
        """The sampling of a prompt's `run`-th generation. With a seed, run k draws with
        seed + k: the n choices differ from each other, and the same request gives them all
        again (choice k is what a request with n = 1 and seed + k gives)."""
        if self.params.seed is None:
            return self.params
        return self.params.replace(seed=(self.params.seed + run) % MAX_SEED)


def parse_completion_request(body: bytes, model_id: str,
                             vocab_size: int | None = None) -> CompletionRequest:
    data = _json_object(body)
    for name in data:
        if name not in KNOWN_FIELDS:
            raise ApiError(400, f"Unrecognized request argument supplied: {_clipped(name)} "
                                "(Ghostpen's samplers go by their own names: top_k, min_p, "
                                "repetition_penalty, …).", param=name, code="unknown_parameter")
    # null stands for the default, as in OpenAI's API.
    fields = {name: value for name, value in data.items() if value is not None}
    _check_model(fields, model_id)
    if fields.get("suffix", "") != "":
        raise ApiError(400, "suffix is not supported: GPT-2 only continues text, it cannot fill "
                            "in between; send the text before the cursor as the prompt.",
                       param="suffix")
    if "user" in fields and not isinstance(fields["user"], str):
        _refuse("user", fields["user"], "must be a string")
    n = _whole(fields, "n", 1, 1, MAX_RUNS)
    best_of = _whole(fields, "best_of", n, 1, MAX_RUNS)
    if best_of < n:
        raise ApiError(400, f"best_of = {best_of} must be at least n = {n}.", param="best_of")
    prompts = _prompts(fields)
    if len(prompts) * best_of > MAX_RUNS:
        raise ApiError(400, f"{len(prompts)} prompts × {best_of} completions is more than "
                            f"{MAX_RUNS} in one request; split it into several requests.",
                       param="n")
    max_tokens = _whole(fields, "max_tokens", DEFAULT_MAX_TOKENS, 0, MAX_TOKENS_LIMIT)
    logprobs = _whole(fields, "logprobs", 0, 0, MAX_LOGPROBS) if "logprobs" in fields else None
    echo, stream = _flag(fields, "echo"), _flag(fields, "stream")
    if stream and best_of > n:
        raise ApiError(400, "best_of cannot be used with stream: the best completions are "
                            "known only once all are written.", param="best_of")
    include_usage = _stream_options(fields, stream)
    stops = _stops(fields)
    _check_openai_ranges(fields, vocab_size)
    sampler_values = {name: fields[name] for name in (*OPENAI_SAMPLER_FIELDS,
                                                      *GHOSTPEN_SAMPLER_FIELDS) if name in fields}
    try:
        params = SamplingParams.from_json({**SERVE_DEFAULTS.to_json(), **sampler_values,
                                           "stop_strings": list(stops),
                                           "max_new_tokens": max(1, max_tokens)})
    except InvalidParameterError as error:
        # SamplingParams' messages start with the field's name: "top_k = -1 must be ...".
        named = str(error).split(" = ", 1)[0]
        raise ApiError(400, str(error), param=named if named in KNOWN_FIELDS else None) \
            from error
    return CompletionRequest(prompts, params, max_tokens, n, best_of, logprobs, echo, stream,
                             include_usage)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise ApiError(400, "The request body is not UTF-8 text; send a JSON object.") \
            from None
    except ValueError as error:  # json.JSONDecodeError, and a number too long to read
        raise ApiError(400, f"The request body is not valid JSON ({error}); send a JSON "
                            'object such as {"prompt": "Once upon a time"}.') from None
    if not isinstance(data, dict):
        raise ApiError(400, f"The request body is {_shown(data)}; send a JSON object such as "
                            '{"prompt": "Once upon a time"}.')
    return data


def _check_model(fields: Mapping[str, Any], model_id: str) -> None:
    if "model" not in fields:
        return
    model = fields["model"]
    if not isinstance(model, str):
        _refuse("model", model, "must be a string")
    if model != model_id:
        raise ApiError(404, f"The model {_clipped(model)!r} does not exist here: this server "
                            f"serves {model_id!r} (GET /v1/models).", param="model",
                       code="model_not_found")


def _prompts(fields: Mapping[str, Any]) -> tuple[str, ...]:
    # No prompt: the model starts a new document, as OpenAI's API did ("" is read as GPT-2's
    # <|endoftext|>, its document separator).
    prompt = fields.get("prompt", "")
    if isinstance(prompt, str):
        return (prompt,)
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return tuple(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(p, (int, list)) for p in prompt):
        raise ApiError(400, "A prompt of token ids is not supported; send the text.",
                       param="prompt")
    _refuse("prompt", prompt, "must be a string or a non-empty list of strings")


def _whole(fields: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    if name not in fields:
        return default
    value = fields[name]
    whole = None
    if isinstance(value, int) and not isinstance(value, bool):
        whole = value
    elif isinstance(value, float) and value.is_integer():
        whole = int(value)
    if whole is None or not low <= whole <= high:
        _refuse(name, value, f"must be a whole number from {low} to {high}")
    return whole


def _flag(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name, False)
    if not isinstance(value, bool):
        _refuse(name, value, "must be true or false")
    return value


def _stream_options(fields: Mapping[str, Any], stream: bool) -> bool:
    if "stream_options" not in fields:
        return False
    options = fields["stream_options"]
    if not stream:
        raise ApiError(400, "stream_options is only allowed when stream is true.",
                       param="stream_options")
    if not isinstance(options, dict):
        _refuse("stream_options", options, 'must be an object such as {"include_usage": true}')
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        _refuse("stream_options.include_usage", include_usage, "must be true or false")
    return include_usage


def _stops(fields: Mapping[str, Any]) -> tuple[str, ...]:
    stop = fields.get("stop", [])
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        _refuse("stop", stop, "must be a string or a list of strings")
    if len(stops) > MAX_STOPS:
        _refuse("stop", stop, f"may hold at most {MAX_STOPS} strings")
    # An empty stop string would end every completion before it starts: no client means that.
    return tuple(s for s in stops if s)


def _check_openai_ranges(fields: Mapping[str, Any], vocab_size: int | None) -> None:
    """OpenAI's ranges for OpenAI's fields; SamplingParams checks its own rules after."""
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1),
                            ("presence_penalty", -2, 2), ("frequency_penalty", -2, 2)):
        if name in fields:
            value = fields[name]
            number = value if isinstance(value, (int, float)) \
                and not isinstance(value, bool) else None
            if number is None or not math.isfinite(number):
                _refuse(name, value, "must be a number")
            if not low <= number <= high:
                _refuse(name, value, f"must be between {low} and {high}")
    bias = fields.get("logit_bias", {})
    if not isinstance(bias, dict):
        _refuse("logit_bias", bias, 'must map token ids to numbers, e.g. {"198": -100}')
    for key, value in bias.items():
        if not (key.isascii() and key.isdigit()):
            _refuse("logit_bias", {key: value}, "keys must be token ids such as \"198\"")
        if vocab_size is not None and int(key) >= vocab_size:
            _refuse("logit_bias", {key: value},
                    f"keys must be token ids below the vocabulary's {vocab_size}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not -100 <= value <= 100:
            _refuse("logit_bias", {key: value}, "values must be numbers from -100 to 100")


def _refuse(name: str, value: object, rule: str) -> NoReturn:
    raise ApiError(400, f"{name} = {_shown(value)} {rule}.", param=name.split(".")[0])


def _shown(value: object) -> str:
    return _clipped(json.dumps(value, ensure_ascii=False))


def _clipped(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
