"""Every knob of the sampler chain in one frozen dataclass, validated, and plain JSON both ways."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
        """Build from JSON data; unknown keys are ignored, so old presets keep loading."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            if key == "logit_bias":
                try:
                    value = {int(k): float(v) for k, v in dict(value).items()}
                except (TypeError, ValueError) as error:
                    raise InvalidParameterError(
                        "logit_bias must map token ids to numbers, e.g. {\"198\": -5}"
                    ) from error
            elif key in ("dry_sequence_breakers", "banned_strings", "stop_strings",
                         "sampler_order"):
                value = tuple(str(v) for v in value)
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except TypeError as error:
            raise InvalidParameterError(f"sampling settings are malformed: {error}") from error


def _check(ok: bool, name: str, value: object, rule: str) -> None:
    if not ok:
        raise InvalidParameterError(f"{name} = {value} {rule}.")


GREEDY = SamplingParams(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0)
