import pytest

from app.engine.errors import InvalidParameterError
from app.engine.sampling_params import SamplingParams


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("temperature", -0.5, "temperature"),
        ("top_p", 0.0, "top_p"),
        ("top_p", 1.5, "top_p"),
        ("min_p", 1.0, "min_p"),
        ("top_k", -1, "top_k"),
        ("max_new_tokens", 0, "max_new_tokens"),
        ("mirostat", 1, "mirostat"),
        ("sampler_order", ("temperature", "warp"), "sampler_order"),
        ("stop_strings", ("",), "stop strings"),
    ],
)
def test_invalid_values_give_one_line_naming_the_field(field: str, value: object,
                                                       named: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        SamplingParams(**{field: value})
    message = str(info.value)
    assert named in message
    assert "\n" not in message


def test_json_round_trip_keeps_every_value() -> None:
    params = SamplingParams(
        temperature=1.3, top_k=7, logit_bias={198: -4.0}, stop_strings=("\n\n",), seed=42,
        sampler_order=("temperature", "top_k"),
    )
    assert SamplingParams.from_json(params.to_json()) == params


def test_unknown_json_keys_are_ignored_so_old_presets_load() -> None:
    assert SamplingParams.from_json({"temperature": 0.5, "retired_knob": 3}).temperature == 0.5
