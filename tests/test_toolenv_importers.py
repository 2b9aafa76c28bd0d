"""Importing tools: ToolBench files with cached responses, OpenAI function definitions, Python classes and modules."""
import json
from pathlib import Path
from typing import Literal, Optional

import pytest

from toolenv.cache import ResponseCache, canonical_arguments
from toolenv.importers import ToolFormatError, load_openai_functions, load_toolbench, load_toolbench_tool, standardize, tools_from_python
from toolenv.observation import ErrorKind
from toolenv.runner import ToolRunner

FIXTURES = Path(__file__).parent / "fixtures" / "toolenv"


# ---- ToolBench ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"), [("Current Weather (by city)", "current_weather_by_city"), ("5-day forecast", "get_5_day_forecast"), ("__A--b__", "a_b")]
)
def test_standardize_follows_toolbench(text, name):
    assert standardize(text) == name


def test_toolbench_apis_become_named_tools_with_schemas():
    tools = {tool.name: tool for tool in load_toolbench(FIXTURES / "toolbench")}
    assert sorted(tools) == ["current_weather_by_city_for_open_weather_map", "exchange_for_currency_exchange", "get_5_day_forecast_for_open_weather_map"]
    weather = tools["current_weather_by_city_for_open_weather_map"].spec
    assert (weather.category, weather.suite) == ("Weather", "open_weather_map")
    assert weather.parameters["required"] == ["q"]
    assert weather.parameters["properties"]["cnt"] == {"type": "number", "description": "Number of results", "examples": ["1"]}
    assert "default" not in weather.parameters["properties"]["q"]  # ToolBench's default is only an example value
    exchange = tools["exchange_for_currency_exchange"].spec
    assert set(exchange.parameters["properties"]) == {"is_from", "to", "q", "is_sandbox"}  # "from" renamed as ToolBench does
    assert exchange.parameters["properties"]["is_sandbox"]["type"] == "boolean"
    assert "Convert an amount" in exchange.description


def test_cached_responses_replay_and_a_miss_is_not_cached():
    cache = ResponseCache(FIXTURES / "toolbench_cache.json")
    runner = ToolRunner(load_toolbench(FIXTURES / "toolbench", cache=cache))
    replayed = runner.call("exchange_for_currency_exchange", '{"to": "EUR", "is_from": "USD"}')
    assert replayed.ok and replayed.result == {"rate": 0.92, "amount": 0.92}
    missed = runner.call("exchange_for_currency_exchange", {"is_from": "USD", "to": "JPY"})
    assert missed.error == ErrorKind.NOT_CACHED and '{"is_from":"USD","to":"JPY"}' in missed.message


def test_a_live_backend_records_into_the_cache_file(tmp_path):
    calls = []

    def backend(name, arguments):
        calls.append((name, arguments))
        return {"rate": 150.1}

    cache_path = tmp_path / "cache.json"
    runner = ToolRunner(load_toolbench(FIXTURES / "toolbench", cache=ResponseCache(cache_path), backend=backend))
    arguments = {"is_from": "USD", "to": "JPY"}
    assert runner.call("exchange_for_currency_exchange", arguments).result == {"rate": 150.1}
    assert runner.call("exchange_for_currency_exchange", arguments).result == {"rate": 150.1}
    assert len(calls) == 1  # the second call replayed
    recorded = json.loads(cache_path.read_text())
    assert recorded == {"exchange_for_currency_exchange": {canonical_arguments(arguments): {"rate": 150.1}}}
    offline = ToolRunner(load_toolbench(FIXTURES / "toolbench", cache=ResponseCache(cache_path)))
    assert offline.call("exchange_for_currency_exchange", arguments).result == {"rate": 150.1}


def broken_toolbench_file(tmp_path, mutate):
    document = json.loads((FIXTURES / "toolbench" / "Finance" / "currency_exchange.json").read_text())
    mutate(document)
    path = tmp_path / "Finance" / "currency_exchange.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("api_list"), "field 'api_list': missing"),
        (lambda d: d.update(tool_name=7), "field 'tool_name': must be a str"),
        (lambda d: d["api_list"][0].pop("name"), "field 'api_list[0].name': missing"),
        (lambda d: d["api_list"][0]["required_parameters"][1].pop("name"), "field 'api_list[0].required_parameters[1].name': missing"),
        (lambda d: d["api_list"][0]["optional_parameters"].append({"name": "To", "type": "STRING"}), "optional_parameters[2].name"),
        (lambda d: d["api_list"].append(dict(d["api_list"][0])), "field 'api_list[1].name'"),
    ],
)
def test_a_malformed_toolbench_file_names_the_file_and_field(tmp_path, mutate, field):
    path = broken_toolbench_file(tmp_path, mutate)
    with pytest.raises(ToolFormatError) as caught:
        load_toolbench_tool(path)
    assert str(caught.value).startswith(str(path)) and field in str(caught.value)


def test_a_toolbench_file_that_is_not_json_names_the_file(tmp_path):
    path = tmp_path / "Finance" / "broken.json"
    path.parent.mkdir()
    path.write_text("{")
    with pytest.raises(ToolFormatError, match=f"{path}: not JSON"):
        load_toolbench(tmp_path)


# ---- OpenAI function definitions --------------------------------------------------------------------


def test_openai_definitions_load_wrapped_or_bare_and_run_their_executors():
    tools = load_openai_functions(FIXTURES / "openai_functions.json", executors={"get_time": lambda tz: f"12:00 {tz}"})
    assert [tool.name for tool in tools] == ["get_current_weather", "get_time", "ping"]
    assert tools[0].spec.parameters["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert tools[2].spec.parameters == {"type": "object", "properties": {}}
    runner = ToolRunner(tools)
    assert runner.call("get_time", {"tz": "UTC"}).result == "12:00 UTC"
    assert runner.call("get_current_weather", {"location": "Paris"}).error == ErrorKind.NOT_CACHED
    assert runner.call("get_current_weather", {"location": "Paris", "unit": "kelvin"}).error == ErrorKind.BAD_ARGUMENTS


@pytest.mark.parametrize(
    ("definitions", "field"),
    [
        ({"name": "f"}, "must be a JSON list"),
        ([{"type": "function", "function": {"description": "no name"}}], "field '[0].function.name': missing"),
        ([{"name": "ok", "description": "d"}, {"name": "f", "parameters": {"type": "array"}}], "field '[1]'"),
        ([{"name": "f", "parameters": []}], "field '[0].parameters': must be a dict"),
        ([{"name": "has space"}], "field '[0]': tool name 'has space'"),
    ],
)
def test_a_malformed_openai_file_names_the_file_and_field(tmp_path, definitions, field):
    path = tmp_path / "functions.json"
    path.write_text(json.dumps(definitions))
    with pytest.raises(ToolFormatError) as caught:
        load_openai_functions(path)
    assert str(caught.value).startswith(str(path)) and field in str(caught.value)


# ---- Python classes and modules --------------------------------------------------------------------


class Shop:
    """A shop: its public methods become tools."""

    def __init__(self):
        self.prices = {"apple": 0.5, "pear": 0.75}

    def quote(self, item: Literal["apple", "pear"], quantity: int = 1, coupon: Optional[str] = None, tags: list[str] | None = None) -> dict:
        """Price a quantity of one item.

        Args:
            item: What to buy.
            quantity: How many, at least one.
                Bulk orders are fine.
            coupon (str): A discount code, if any.

        Returns:
            The total price in euros.
        """
        return {"item": item, "total": self.prices[item] * quantity, "coupon": coupon}

    def _secret(self) -> None:
        """Private: not a tool."""


def test_a_class_becomes_tools_with_schemas_from_hints_and_docstrings():
    (tool,) = tools_from_python(Shop, round=2)
    spec = tool.spec
    assert (spec.name, spec.description, spec.returns) == ("quote", "Price a quantity of one item.", "The total price in euros.")
    assert (spec.suite, spec.category, spec.round) == ("shop", "shop", 2)
    assert spec.parameters == {
        "type": "object",
        "properties": {
            "item": {"type": "string", "enum": ["apple", "pear"], "description": "What to buy."},
            "quantity": {"type": "integer", "default": 1, "description": "How many, at least one. Bulk orders are fine."},
            "coupon": {"type": ["string", "null"], "default": None, "description": "A discount code, if any."},
            "tags": {"type": ["array", "null"], "items": {"type": "string"}, "default": None},
        },
        "required": ["item"],
    }
    runner = ToolRunner([tool])
    assert runner.call("quote", {"item": "pear", "quantity": 4}).result == {"item": "pear", "total": 3.0, "coupon": None}
    assert runner.call("quote", {"item": "plum"}).error == ErrorKind.BAD_ARGUMENTS


def test_a_plugin_file_by_path_becomes_tools_of_its_functions():
    tools = {tool.name: tool for tool in tools_from_python(str(FIXTURES / "misbehaving_plugin.py"))}
    assert "echo" in tools and "Counter" not in tools and tools["echo"].spec.suite == "misbehaving_plugin"
    assert ToolRunner(tools.values()).call("echo", {"text": "hi"}).result["text"] == "hi"


def test_a_module_by_name_becomes_tools():
    tools = tools_from_python("json", suite="json_tools")
    assert {"dumps", "loads"} <= {tool.name for tool in tools}


class NoDocs:
    def act(self, x: int) -> int:
        return x


class Unsupported:
    def act(self, where: Path) -> str:
        """Uses a type with no JSON Schema."""
        return str(where)


class NeedsArguments:
    def __init__(self, key):
        self.key = key

    def act(self) -> str:
        """Act."""
        return self.key


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        (NoDocs, "NoDocs.act: field 'docstring': missing"),
        (Unsupported, "Unsupported.act: field 'where': unsupported type annotation"),
        (NeedsArguments, "NeedsArguments: cannot be built without arguments"),
        (f"{FIXTURES / 'misbehaving_plugin.py'}:Nothing", "field 'Nothing': no such class"),
        (str(FIXTURES / "missing.py"), "no such plug-in file"),
    ],
)
def test_python_targets_that_cannot_be_tools_are_refused_clearly(target, problem):
    with pytest.raises(ToolFormatError, match=problem):
        tools_from_python(target)
