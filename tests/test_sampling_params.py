from typing import Any

import pytest

from app.engine.errors import InvalidParameterError
from app.engine.sampling_params import GREEDY, SamplingParams


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


@pytest.mark.parametrize(
    ("data", "named", "rule"),
    [
        ({"top_k": 2.5}, "top_k", "whole number"),
        ({"seed": 1.5}, "seed", "whole number"),
        ({"max_new_tokens": "64"}, "max_new_tokens", "whole number"),
        ({"top_k": True}, "top_k", "whole number"),
        ({"mirostat": None}, "mirostat", "whole number"),
        ({"temperature": "hot"}, "temperature", "number"),
        ({"temperature": False}, "temperature", "number"),
        ({"top_p": [0.9]}, "top_p", "number"),
        ({"presence_penalty": float("nan")}, "presence_penalty", "number"),
        ({"frequency_penalty": float("inf")}, "frequency_penalty", "finite number"),
        ({"stop_strings": [1, 2]}, "stop_strings", "list of strings"),
        ({"stop_strings": "\n\n"}, "stop_strings", "list of strings"),
        ({"banned_strings": [None]}, "banned_strings", "list of strings"),
        ({"dry_sequence_breakers": {"a": 1}}, "dry_sequence_breakers", "list of strings"),
        ({"sampler_order": ["top_k", 3]}, "sampler_order", "list of strings"),
        ({"logit_bias": [198, -5]}, "logit_bias", "token ids to numbers"),
        ({"logit_bias": {"198": "-5"}}, "logit_bias", "token ids to numbers"),
        ({"logit_bias": {"198": True}}, "logit_bias", "token ids to numbers"),
        ({"logit_bias": {"newline": -5}}, "logit_bias", "token ids to numbers"),
    ],
)
def test_json_of_the_wrong_type_is_refused_naming_the_field(data: dict[str, Any], named: str,
                                                            rule: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        SamplingParams.from_json(data)
    message = str(info.value)
    assert message.startswith(f"{named} = ") and rule in message
    assert "\n" not in message


def test_json_whole_numbers_written_as_floats_are_read_as_whole_numbers() -> None:
    params = SamplingParams.from_json({"top_k": 40.0, "seed": 7.0, "max_new_tokens": 64.0,
                                       "temperature": 1, "logit_bias": {"198": -5}})
    assert (params.top_k, params.seed, params.max_new_tokens) == (40, 7, 64)
    assert all(type(v) is int for v in (params.top_k, params.seed, params.max_new_tokens))
    assert params.temperature == 1.0
    assert params.logit_bias == {198: -5.0}


def test_json_ranges_are_still_checked_after_the_types() -> None:
    with pytest.raises(InvalidParameterError, match="top_p"):
        SamplingParams.from_json({"top_p": 1.5})


@pytest.mark.parametrize("data", [[1, 2], None, "temperature"])
def test_json_that_is_not_an_object_is_refused(data: object) -> None:
    with pytest.raises(InvalidParameterError, match="must be a JSON object"):
        SamplingParams.from_json(data)  # type: ignore[arg-type]


def test_greedy_turns_every_penalty_and_sampler_off() -> None:
    assert GREEDY.greedy
    assert (GREEDY.repetition_penalty, GREEDY.presence_penalty, GREEDY.frequency_penalty) == (
        1.0, 0.0, 0.0)
    assert (GREEDY.no_repeat_ngram_size, GREEDY.dry_multiplier, GREEDY.xtc_probability,
            GREEDY.mirostat) == (0, 0.0, 0.0, 0)
