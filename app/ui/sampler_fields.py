"""What the sampling panel shows for each SamplingParams field: range, step and plain words.

The slider spans the useful range; the number box beside it accepts the whole valid range, so
a preset from elsewhere is never clamped without a word.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NumberField:
    name: str  # the SamplingParams field
    label: str
    minimum: float
    slider_max: float
    box_max: float
    decimals: int  # 0: whole numbers
    section: str
    tooltip: str

    @property
    def integer(self) -> bool:
        return self.decimals == 0


SECTIONS = ("Basics", "Repetition", "DRY", "XTC", "Typical and Mirostat")

FIELDS: tuple[NumberField, ...] = (
    NumberField("temperature", "Temperature", 0.0, 2.0, 5.0, 2, "Basics",
                "How adventurous the wording is. Low keeps to the likeliest words, high takes "
                "risks. 0 always takes the single likeliest word."),
    NumberField("top_k", "Top-k", 0, 200, 50257, 0, "Basics",
                "Only the K likeliest next tokens can be picked. 0 turns this off."),
    NumberField("top_p", "Top-p", 0.01, 1.0, 1.0, 2, "Basics",
                "Only the likeliest tokens whose chances add up to this share can be picked. "
                "1 turns this off."),
    NumberField("min_p", "Min-p", 0.0, 0.5, 0.99, 2, "Basics",
                "Tokens less likely than this fraction of the top token are dropped. "
                "0 turns this off."),
    NumberField("max_new_tokens", "Max new tokens", 1, 1024, 100_000, 0, "Basics",
                "The most tokens one Generate adds. A token is about three quarters of a word."),
    NumberField("repetition_penalty", "Repetition penalty", 0.5, 2.0, 10.0, 2, "Repetition",
                "Makes tokens already in the text less likely. 1 turns this off; 1.1 is gentle."),
    NumberField("repetition_penalty_range", "Penalty range", 0, 1024, 100_000, 0, "Repetition",
                "How many recent tokens the repetition penalty looks at. 0 means the whole text."),
    NumberField("presence_penalty", "Presence penalty", -2.0, 2.0, 10.0, 2, "Repetition",
                "Lowers every token that has appeared at all, nudging toward new words. "
                "0 turns this off."),
    NumberField("frequency_penalty", "Frequency penalty", -2.0, 2.0, 10.0, 2, "Repetition",
                "Lowers a token more each time it has appeared, so overused words fade. "
                "0 turns this off."),
    NumberField("no_repeat_ngram_size", "No-repeat n-gram", 0, 10, 100, 0, "Repetition",
                "Never repeats a run of this many tokens word for word. 0 turns this off."),
    NumberField("dry_multiplier", "DRY strength", 0.0, 3.0, 100.0, 2, "DRY",
                "Penalises continuing a phrase that already appeared, to stop loops. "
                "0 turns DRY off; 0.8 is typical."),
    NumberField("dry_base", "DRY base", 1.0, 4.0, 100.0, 2, "DRY",
                "How fast the DRY penalty grows with the length of the repeated phrase."),
    NumberField("dry_allowed_length", "DRY allowed length", 1, 20, 1000, 0, "DRY",
                "Repeated phrases up to this many tokens long are not penalised."),
    NumberField("dry_penalty_last_n", "DRY range", 0, 1024, 100_000, 0, "DRY",
                "How many recent tokens DRY searches for repeats. 0 means the whole text."),
    NumberField("xtc_threshold", "XTC threshold", 0.0, 0.5, 0.5, 2, "XTC",
                "Tokens at least this likely count as top choices for XTC."),
    NumberField("xtc_probability", "XTC probability", 0.0, 1.0, 1.0, 2, "XTC",
                "How often XTC removes every top choice but the least likely one, for less "
                "predictable text. 0 turns XTC off."),
    NumberField("typical_p", "Typical-p", 0.01, 1.0, 1.0, 2, "Typical and Mirostat",
                "Prefers tokens about as surprising as text usually is; lower is stricter. "
                "1 turns this off."),
    NumberField("mirostat_tau", "Mirostat target", 0.1, 10.0, 100.0, 2, "Typical and Mirostat",
                "Mirostat: the level of surprise to aim for; higher is more varied."),
    NumberField("mirostat_eta", "Mirostat rate", 0.01, 1.0, 1.0, 2, "Typical and Mirostat",
                "Mirostat: how quickly it corrects toward the target."),
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
