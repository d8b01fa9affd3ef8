"""What the sampling panel shows for each SamplingParams field: range, step and plain words
(the words are the engine's SAMPLER_HELP, which the CLI's --help shows too).

The slider spans the useful range; the number box beside it accepts the whole valid range, so
a preset from elsewhere is never clamped without a word.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engine.sampling_params import SAMPLER_HELP


@dataclass(frozen=True)
class NumberField:
    name: str  # the SamplingParams field
    label: str
    minimum: float
    slider_max: float
    box_max: float
    decimals: int  # 0: whole numbers
    section: str

    @property
    def integer(self) -> bool:
        return self.decimals == 0

    @property
    def tooltip(self) -> str:
        return SAMPLER_HELP[self.name]


SECTIONS = ("Basics", "Repetition", "DRY", "XTC", "Typical and Mirostat")

FIELDS: tuple[NumberField, ...] = (
    NumberField("temperature", "Temperature", 0.0, 2.0, 5.0, 2, "Basics"),
    NumberField("top_k", "Top-k", 0, 200, 50257, 0, "Basics"),
    NumberField("top_p", "Top-p", 0.01, 1.0, 1.0, 2, "Basics"),
    NumberField("min_p", "Min-p", 0.0, 0.5, 0.99, 2, "Basics"),
    NumberField("max_new_tokens", "Max new tokens", 1, 1024, 100_000, 0, "Basics"),
    NumberField("repetition_penalty", "Repetition penalty", 0.5, 2.0, 10.0, 2, "Repetition"),
    NumberField("repetition_penalty_range", "Penalty range", 0, 1024, 100_000, 0, "Repetition"),
    NumberField("presence_penalty", "Presence penalty", -2.0, 2.0, 10.0, 2, "Repetition"),
    NumberField("frequency_penalty", "Frequency penalty", -2.0, 2.0, 10.0, 2, "Repetition"),
    NumberField("no_repeat_ngram_size", "No-repeat n-gram", 0, 10, 100, 0, "Repetition"),
    NumberField("dry_multiplier", "DRY strength", 0.0, 3.0, 100.0, 2, "DRY"),
    NumberField("dry_base", "DRY base", 1.0, 4.0, 100.0, 2, "DRY"),
    NumberField("dry_allowed_length", "DRY allowed length", 1, 20, 1000, 0, "DRY"),
    NumberField("dry_penalty_last_n", "DRY range", 0, 1024, 100_000, 0, "DRY"),
    NumberField("xtc_threshold", "XTC threshold", 0.0, 0.5, 0.5, 2, "XTC"),
    NumberField("xtc_probability", "XTC probability", 0.0, 1.0, 1.0, 2, "XTC"),
    NumberField("typical_p", "Typical-p", 0.01, 1.0, 1.0, 2, "Typical and Mirostat"),
    NumberField("mirostat_tau", "Mirostat target", 0.1, 10.0, 100.0, 2, "Typical and Mirostat"),
    NumberField("mirostat_eta", "Mirostat rate", 0.01, 1.0, 1.0, 2, "Typical and Mirostat"),
)

MIROSTAT_TOOLTIP = (
    "Mirostat v2 steers every step toward a steady level of surprise. While on, it replaces "
    "top-k, top-p, min-p and typical-p."
)
SEED_TOOLTIP = (
    "The random seed of the next run. Unlocked, each run takes a new one (shown here); "
    "locked, the same seed and settings write the same text again."
)
STOP_TOOLTIP = (
    "Generation ends when it writes any of these. One per line; write \\n for a line break."
)
BANNED_TOOLTIP = "Words or phrases the model may never write. One per line; \\n is a line break."
BREAKERS_TOOLTIP = (
    "DRY: a repeat is not followed across these. A JSON list of strings, e.g. [\"\\n\", \":\"]."
)
LOGIT_BIAS_TOOLTIP = (
    "Raise or lower particular tokens by id, e.g. 198: -5, 50256: -100 (GPT-2's line break and "
    "end of text)."
)
ORDER_TOOLTIP = (
    "The order in which the samplers shape the next-token chances. Drag, or use the arrows; "
    "untick a step to leave it out."
)

STEP_LABELS = {
    "penalties": "Penalties",
    "dry": "DRY",
    "logit_bias": "Logit bias",
    "temperature": "Temperature",
    "top_k": "Top-k",
    "typical_p": "Typical-p",
    "top_p": "Top-p",
    "min_p": "Min-p",
    "xtc": "XTC",
}
