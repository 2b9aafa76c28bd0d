"""Argument validation: one clear message naming the tool and the argument, defaults filled before the call."""
import pytest

from toolenv.spec import ToolSpec
from toolenv.validation import BadArguments, check_spec, validate_arguments

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city.",
    category="Weather",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1, "default": 1},
            "units": {"type": "string", "enum": ["metric", "imperial"], "default": "metric"},
        },
        "required": ["city"],
    },
)


def test_defaults_are_filled_and_given_values_kept():
    assert validate_arguments(WEATHER, {"city": "Paris"}) == {"city": "Paris", "days": 1, "units": "metric"}
    assert validate_arguments(WEATHER, {"city": "Oslo", "units": "imperial"})["units"] == "imperial"


def test_json_text_is_accepted_as_models_emit_it():
    assert validate_arguments(WEATHER, '{"city": "Paris", "days": 3}')["days"] == 3


def test_an_integral_float_reaches_the_tool_as_an_int():
    days = validate_arguments(WEATHER, {"city": "Paris", "days": 3.0})["days"]
    assert days == 3 and isinstance(days, int)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"city": "Paris", "units": "kelvin"}, "get_weather: argument 'units' must be one of ['metric', 'imperial'], got 'kelvin'"),
        ({}, "get_weather: missing required argument 'city'"),
        ({"city": 42}, "get_weather: argument 'city' must be of type string, got integer 42"),
        ({"city": "Paris", "days": "3"}, "get_weather: argument 'days' must be of type integer, got string '3'"),
        ({"city": "Paris", "day": 3}, "get_weather: unknown argument 'day' (expected: city, days, units)"),
        ({"city": "Paris", "days": 0}, "get_weather: argument 'days': 0 is less than the minimum of 1"),
        ('{"city": "Paris",', "get_weather: arguments are not valid JSON"),
        ("[1, 2]", "get_weather: arguments must be a JSON object, got array"),
    ],
)
def test_each_mistake_gets_one_message_naming_tool_and_argument(arguments, message):
    with pytest.raises(BadArguments) as caught:
        validate_arguments(WEATHER, arguments)
    assert str(caught.value).startswith(message)


def test_unknown_arguments_pass_only_when_the_schema_opts_in():
    open_schema = ToolSpec("echo", "Echo.", "Text", {"type": "object", "properties": {}, "additionalProperties": True})
    assert validate_arguments(open_schema, {"anything": 1}) == {"anything": 1}


@pytest.mark.parametrize(
    ("name", "parameters", "problem"),
    [
        ("bad name!", {"type": "object", "properties": {}}, "must match"),
        ("f", {"type": "array"}, '"type": "object"'),
        ("f", {"type": "object", "properties": {"x": {"type": "strin"}}}, "not a valid JSON Schema"),
        ("f", {"type": "object", "properties": {}, "required": ["x"]}, "required names no property"),
    ],
)
def test_uncallable_specs_are_refused(name, parameters, problem):
    with pytest.raises(ValueError, match=problem):
        check_spec(ToolSpec(name, "d", "c", parameters))
