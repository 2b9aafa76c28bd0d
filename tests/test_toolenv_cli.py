"""`imaginarium tools` (mounted from toolenv.cli.app): list, show, call; usage mistakes exit 2 with one line."""
import json

import pytest
from typer.testing import CliRunner

from toolenv import cli
from toolenv.registry import Registry
from toolenv.spec import Tool, ToolError, ToolSpec


def weather(city, units="metric"):
    if city == "Atlantis":
        raise ToolError("city 'Atlantis' not found")
    return {"city": city, "temp": 21 if units == "metric" else 70}


TOOLS = [
    Tool(
        ToolSpec(
            "get_weather",
            "Current weather for a city.",
            "Weather",
            {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "units": {"type": "string", "enum": ["metric", "imperial"], "default": "metric"},
                },
                "required": ["city"],
            },
            examples=({"arguments": {"city": "Lima"}, "result": {"city": "Lima", "temp": 21}},),
            suite="weather",
            round=1,
        ),
        weather,
    ),
    Tool(ToolSpec("word_count", "Count words.", "Text", {"type": "object", "properties": {"text": {"type": "string"}}}, suite="text", round=2), lambda text="": len(text.split())),
    Tool(ToolSpec("shout", "Upper-case text.", "Text", {"type": "object", "properties": {"text": {"type": "string"}}}, suite="text", round=2), lambda text="": text.upper()),
]


@pytest.fixture
def invoke(monkeypatch):
    monkeypatch.setattr(cli, "builtin_registry", lambda: Registry(TOOLS))
    runner = CliRunner()
    return lambda *args: runner.invoke(cli.app, list(args), env={"COLUMNS": "200"})


def test_list_shows_every_tool_and_the_totals(invoke):
    result = invoke("list")
    assert result.exit_code == 0
    assert all(name in result.stdout for name in ("get_weather", "word_count", "shout"))
    assert "3 APIs in 2 categories across rounds 1, 2" in result.stdout


@pytest.mark.parametrize(
    ("option", "shown", "hidden"),
    [(("--round", "2"), "shout", "get_weather"), (("--suite", "weather"), "get_weather", "shout"), (("--category", "Text"), "word_count", "get_weather")],
)
def test_list_filters(invoke, option, shown, hidden):
    result = invoke("list", *option)
    assert result.exit_code == 0 and shown in result.stdout and hidden not in result.stdout


def test_show_gives_parameters_enums_defaults_and_examples(invoke):
    result = invoke("show", "get_weather")
    assert result.exit_code == 0
    for text in ("Current weather for a city.", "city", "units", '"metric"', '"imperial"', "City name", 'Example: {"arguments": {"city": "Lima"}'):
        assert text in result.stdout


def test_call_prints_the_observation(invoke):
    result = invoke("call", "get_weather", '{"city": "Lima", "units": "imperial"}')
    assert result.exit_code == 0
    observation = json.loads(result.stdout)
    assert observation["ok"] and observation["result"] == {"city": "Lima", "temp": 70}
    assert json.loads(observation["content"]) == {"city": "Lima", "temp": 70}


@pytest.mark.parametrize(
    ("arguments", "error"), [('{"city": "Atlantis"}', "tool_error"), ('{"city": "Lima", "units": "kelvin"}', "bad_arguments"), ("{oops", "bad_arguments")]
)
def test_an_error_observation_exits_1(invoke, arguments, error):
    result = invoke("call", "get_weather", arguments)
    assert result.exit_code == 1 and json.loads(result.stdout)["error"] == error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "get_wether"), "error: no tool named 'get_wether'; did you mean 'get_weather'?"),
        (("call", "wordcount", "{}"), "error: no tool named 'wordcount'; did you mean 'word_count'?"),
        (("list", "--suite", "nope"), "error: no suite 'nope'; suite names: text, weather"),
        (("list", "--round", "9"), "error: no round 9; rounds: 1, 2"),
    ],
)
def test_usage_mistakes_exit_2_with_one_line_and_no_traceback(invoke, args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message and "Traceback" not in result.output


def test_the_builtin_tools_list():
    result = CliRunner().invoke(cli.app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "APIs in" in result.stdout
