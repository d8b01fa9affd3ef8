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
    technical: str = ""  # the usual name elsewhere (llama.cpp, papers), when the label differs

    @property
    def integer(self) -> bool:
        return self.decimals == 0

    @property
    def tooltip(self) -> str:
        """The plain explanation, then the technical name a reader may know from elsewhere."""
        if self.technical:
            return f"{SAMPLER_HELP[self.name]} ({self.technical})"
        return SAMPLER_HELP[self.name]


SECTIONS = ("Basics", "Repetition", "DRY", "XTC", "Typical and Mirostat")

# The labels are plain words for writers; the tooltip adds the technical name.
FIELDS: tuple[NumberField, ...] = (
    NumberField("temperature", "Adventurousness", 0.0, 2.0, 5.0, 2, "Basics", "Temperature"),
    NumberField("top_k", "Keep the k likeliest", 0, 200, 50257, 0, "Basics", "Top-k"),
    NumberField("top_p", "Likeliest share", 0.01, 1.0, 1.0, 2, "Basics", "Top-p"),
    NumberField("min_p", "Drop the unlikely", 0.0, 0.5, 0.99, 2, "Basics", "Min-p"),
    NumberField("max_new_tokens", "Max new tokens", 1, 1024, 100_000, 0, "Basics"),
    NumberField("repetition_penalty", "Avoid repeating", 0.5, 2.0, 10.0, 2, "Repetition",
                "Repetition penalty"),
    NumberField("repetition_penalty_range", "Penalty range", 0, 1024, 100_000, 0, "Repetition"),
    NumberField("presence_penalty", "Presence penalty", -2.0, 2.0, 10.0, 2, "Repetition"),
    NumberField("frequency_penalty", "Frequency penalty", -2.0, 2.0, 10.0, 2, "Repetition"),
    NumberField("no_repeat_ngram_size", "No-repeat n-gram", 0, 10, 100, 0, "Repetition"),
    NumberField("dry_multiplier", "Break loops", 0.0, 3.0, 100.0, 2, "DRY", "DRY multiplier"),
    NumberField("dry_base", "DRY base", 1.0, 4.0, 100.0, 2, "DRY"),
    NumberField("dry_allowed_length", "DRY allowed length", 1, 20, 1000, 0, "DRY"),
    NumberField("dry_penalty_last_n", "DRY range", 0, 1024, 100_000, 0, "DRY"),
    NumberField("xtc_threshold", "Obvious above", 0.0, 0.5, 0.5, 2, "XTC", "XTC threshold"),
    NumberField("xtc_probability", "Skip the obvious", 0.0, 1.0, 1.0, 2, "XTC",
                "XTC probability"),
    NumberField("typical_p", "Typical words only", 0.01, 1.0, 1.0, 2, "Typical and Mirostat",
                "Typical-p"),
    NumberField("mirostat_tau", "Surprise level", 0.1, 10.0, 100.0, 2, "Typical and Mirostat",
                "Mirostat target (tau)"),
    NumberField("mirostat_eta", "Steadying speed", 0.01, 1.0, 1.0, 2, "Typical and Mirostat",
                "Mirostat rate (eta)"),
)

MIROSTAT_LABEL = "Keep surprise steady"
MIROSTAT_TOOLTIP = (
    "Mirostat v2 steers every step toward a steady level of surprise. While on, it replaces "
    "top-k, top-p, min-p and typical-p. (Mirostat)"
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
