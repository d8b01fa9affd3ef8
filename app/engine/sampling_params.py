"""Every knob of the sampler chain in one frozen dataclass, validated, and plain JSON both ways."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from app.engine.errors import InvalidParameterError

# Names of the steps `sampling.apply_sampler_chain` knows, in the default order. Penalties act on
# raw logits, temperature rescales, the rest truncate the candidate set.
SAMPLER_STEPS: tuple[str, ...] = (
    "penalties",
    "dry",
    "logit_bias",
    "temperature",
    "top_k",
    "typical_p",
    "top_p",
    "min_p",
    "xtc",
)


# What each numeric knob does, in plain words: the sampling panel's tooltips and the CLI's
# --help both say it this way.
SAMPLER_HELP: dict[str, str] = {
    "temperature": "How adventurous the wording is. Low keeps to the likeliest words, high takes "
                   "risks. 0 always takes the single likeliest word.",
    "top_k": "Only the K likeliest next tokens can be picked. 0 turns this off.",
    "top_p": "Only the likeliest tokens whose chances add up to this share can be picked. "
             "1 turns this off.",
    "min_p": "Tokens less likely than this fraction of the top token are dropped. "
             "0 turns this off.",
    "max_new_tokens": "The most tokens one Generate adds. A token is about three quarters of a "
                      "word.",
    "repetition_penalty": "Makes tokens already in the text less likely. 1 turns this off; 1.1 "
                          "is gentle.",
    "repetition_penalty_range": "How many recent tokens the repetition penalty looks at. 0 means "
                                "the whole text.",
    "presence_penalty": "Lowers every token that has appeared at all, nudging toward new words. "
                        "0 turns this off.",
    "frequency_penalty": "Lowers a token more each time it has appeared, so overused words "
                         "fade. 0 turns this off.",
    "no_repeat_ngram_size": "Never repeats a run of this many tokens word for word. 0 turns "
                            "this off.",
    "dry_multiplier": "Penalises continuing a phrase that already appeared, to stop loops. "
                      "0 turns DRY off; 0.8 is typical.",
    "dry_base": "How fast the DRY penalty grows with the length of the repeated phrase.",
    "dry_allowed_length": "Repeated phrases up to this many tokens long are not penalised by "
                          "DRY.",
    "dry_penalty_last_n": "How many recent tokens DRY searches for repeats. 0 means the whole "
                          "text.",
    "xtc_threshold": "Tokens at least this likely count as top choices for XTC.",
    "xtc_probability": "How often XTC removes every top choice but the least likely one, for "
                       "less predictable text. 0 turns XTC off.",
    "typical_p": "Prefers tokens about as surprising as text usually is; lower is stricter. "
                 "1 turns this off.",
    "mirostat": "Mirostat v2 (2) steers every step toward a steady level of surprise. While on, "
                "it replaces top-k, top-p, min-p and typical-p. 0 turns it off.",
    "mirostat_tau": "Mirostat: the level of surprise to aim for; higher is more varied.",
    "mirostat_eta": "Mirostat: how quickly it corrects toward the target.",
    "seed": "The random seed of a run: the same seed and settings write the same text again.",
}


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.8  # 0 means greedy: always the most likely token
    top_k: int = 40  # 0 = off
    top_p: float = 0.95  # 1.0 = off
    min_p: float = 0.05  # 0.0 = off
    typical_p: float = 1.0  # 1.0 = off
    repetition_penalty: float = 1.1  # 1.0 = off
    repetition_penalty_range: int = 64  # last N tokens; 0 = the whole context
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    no_repeat_ngram_size: int = 0  # 0 = off
    dry_multiplier: float = 0.0  # 0 = off
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = 0  # 0 = the whole context
    dry_sequence_breakers: tuple[str, ...] = ("\n", ":", '"', "*")
    xtc_threshold: float = 0.1
    xtc_probability: float = 0.0  # 0 = off
    mirostat: int = 0  # 0 = off, 2 = mirostat v2 (replaces the truncation samplers)
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    banned_strings: tuple[str, ...] = ()
    stop_strings: tuple[str, ...] = ()
    max_new_tokens: int = 128
    seed: int | None = None  # None = a fresh seed each run
    sampler_order: tuple[str, ...] = SAMPLER_STEPS

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise InvalidParameterError with a one-line message for the first bad value."""
        _check(self.temperature >= 0, "temperature", self.temperature, "must be 0 or more")
        _check(self.top_k >= 0, "top_k", self.top_k, "must be 0 (off) or more")
        _check(0 < self.top_p <= 1, "top_p", self.top_p, "must be in (0, 1]")
        _check(0 <= self.min_p < 1, "min_p", self.min_p, "must be in [0, 1)")
        _check(0 < self.typical_p <= 1, "typical_p", self.typical_p, "must be in (0, 1]")
        _check(self.repetition_penalty > 0, "repetition_penalty", self.repetition_penalty,
               "must be above 0 (1.0 = off)")
        _check(self.repetition_penalty_range >= 0, "repetition_penalty_range",
               self.repetition_penalty_range, "must be 0 (all) or more")
        _check(self.no_repeat_ngram_size >= 0, "no_repeat_ngram_size",
               self.no_repeat_ngram_size, "must be 0 (off) or more")
        _check(self.dry_multiplier >= 0, "dry_multiplier", self.dry_multiplier, "must be 0 or more")
        _check(self.dry_base >= 1, "dry_base", self.dry_base, "must be 1 or more")
        _check(self.dry_allowed_length >= 1, "dry_allowed_length", self.dry_allowed_length,
               "must be 1 or more")
        _check(self.dry_penalty_last_n >= 0, "dry_penalty_last_n", self.dry_penalty_last_n,
               "must be 0 (all) or more")
        _check(0 <= self.xtc_threshold <= 0.5, "xtc_threshold", self.xtc_threshold,
               "must be in [0, 0.5]")
        _check(0 <= self.xtc_probability <= 1, "xtc_probability", self.xtc_probability,
               "must be in [0, 1]")
        _check(self.mirostat in (0, 2), "mirostat", self.mirostat, "must be 0 (off) or 2")
        _check(self.mirostat_tau > 0, "mirostat_tau", self.mirostat_tau, "must be above 0")
        _check(0 < self.mirostat_eta <= 1, "mirostat_eta", self.mirostat_eta, "must be in (0, 1]")
        _check(1 <= self.max_new_tokens <= 100_000, "max_new_tokens", self.max_new_tokens,
               "must be between 1 and 100000")
        _check(self.seed is None or 0 <= self.seed < 2**63, "seed", self.seed,
               "must be empty or a whole number 0 or more")
        for name in self.sampler_order:
            _check(name in SAMPLER_STEPS, "sampler_order", name,
                   f"is not a sampler; choose from {', '.join(SAMPLER_STEPS)}")
        _check(len(set(self.sampler_order)) == len(self.sampler_order), "sampler_order",
               self.sampler_order, "names a sampler twice")
        for token_id, bias in self.logit_bias.items():
            _check(isinstance(token_id, int) and token_id >= 0, "logit_bias", token_id,
                   "keys must be token ids (whole numbers 0 or more)")
            _check(not math.isnan(bias), "logit_bias", bias, "values must be numbers")
        for text in (*self.banned_strings, *self.stop_strings):
            _check(text != "", "banned/stop strings", repr(text), "must not be empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def replace(self, **changes: Any) -> SamplingParams:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["logit_bias"] = {str(k): v for k, v in self.logit_bias.items()}
        for key in ("dry_sequence_breakers", "banned_strings", "stop_strings", "sampler_order"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SamplingParams:
        """Build from JSON data (a preset file, the settings); unknown keys are ignored, so old
        presets keep loading. A value of the wrong type is refused here, by name, rather than
        failing later inside generation: whole-number fields take integral floats (40.0, as
        some JSON writers put it) but not 2.5, and true/false is not a number."""
        if not isinstance(data, Mapping):
            raise InvalidParameterError(
                f"sampling settings must be a JSON object of name: value, not {_shown(data)}."
            )
        kwargs: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            if spec.name in data:
                kwargs[spec.name] = _JSON_READERS[str(spec.type)](spec.name, data[spec.name])
        return cls(**kwargs)


def _shown(value: object) -> str:
    """A JSON value as it looks in the file, short enough for a one-line message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # not JSON data at all
        text = repr(value)
    return _clipped(text)


def _refuse(name: str, value: object, rule: str) -> NoReturn:
    raise InvalidParameterError(f"{name} = {_shown(value)} {rule}.")


def _as_float(value: object) -> float | None:
    """The number a JSON value holds, or None: true/false are not numbers, and an integer too
    large for a float is none either."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _as_whole(value: object) -> int | None:
    """The whole number a JSON value holds (40 or 40.0), or None (2.5, "40", true)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _read_number(name: str, value: object) -> float:
    number = _as_float(value)
    if number is None:
        _refuse(name, value, "must be a number")
    if not math.isfinite(number):
        _refuse(name, value, "must be a finite number")
    # A whole number stays as written (an int is a float here), so that a range message
    # quotes the file: "temperature = -3", not -3.0.
    return value if isinstance(value, int) else number


def _read_whole(name: str, value: object) -> int:
    whole = _as_whole(value)
    if whole is None:
        _refuse(name, value, "must be a whole number")
    return whole


def _read_seed(name: str, value: object) -> int | None:
    whole = _as_whole(value)
    if value is not None and whole is None:
        _refuse(name, value, "must be null (a fresh seed each run) or a whole number")
    return whole


def _read_strings(name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        _refuse(name, value, 'must be a list of strings, e.g. ["\\n"]')
    return tuple(value)


def _read_bias(name: str, value: object) -> dict[int, float]:
    rule = 'must map token ids to numbers, e.g. {"198": -5}'
    if not isinstance(value, Mapping):
        _refuse(name, value, rule)
    bias: dict[int, float] = {}
    for key, number in value.items():
        is_digits = isinstance(key, str) and key.isascii() and key.isdigit()
        token_id = int(key) if is_digits else _as_whole(key)
        as_float = _as_float(number)
        if token_id is None or as_float is None or math.isnan(as_float):
            _refuse(name, {key: number}, rule)
        bias[token_id] = as_float
    return bias


# How from_json reads each field, by its annotation.
_JSON_READERS: dict[str, Callable[[str, Any], Any]] = {
    "float": _read_number,
    "int": _read_whole,
    "int | None": _read_seed,
    "tuple[str, ...]": _read_strings,
    "Mapping[int, float]": _read_bias,
}


def _check(ok: bool, name: str, value: object, rule: str) -> None:
    if not ok:
        raise InvalidParameterError(f"{name} = {_clipped(str(value))} {rule}.")


def _clipped(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The model's own argmax: temperature 0 and every penalty and sampler off, spelled out rather
# than left to the defaults (the default repetition penalty would change which token wins).
GREEDY = SamplingParams(
    temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0, repetition_penalty=1.0,
    presence_penalty=0.0, frequency_penalty=0.0, no_repeat_ngram_size=0, dry_multiplier=0.0,
    xtc_probability=0.0, mirostat=0,
)
