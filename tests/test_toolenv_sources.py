"""Tool sources as strings (builtin, python, openai, toolbench), one registry across them, and rounds over any tools."""
import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolenv import cli
from toolenv.observation import ErrorKind
from toolenv.registry import builtin_registry
from toolenv.runner import ToolRunner
from toolenv.sources import SourceError, close_sources, load_registry, parse_source, tools_by_round, with_rounds

FIXTURES = Path(__file__).parent / "fixtures" / "toolenv"

SHELF = '''
class Shelf:
    """A tiny shelf of books."""

    def count_books(self, genre: str = "any") -> int:
        """How many books of a genre are on the shelf.

        Args:
            genre: A genre, or "any".
        """
        return 3 if genre == "any" else 1

    def newest_book(self) -> str:
        """The title of the newest book on the shelf."""
        return "Ubik"


def search_books(query: str) -> list:
    """Search the shelf (the built-in tools have a search_books too)."""
    return [query]
'''


@pytest.fixture(autouse=True)
def fresh_sources():
    yield
    close_sources()


@pytest.fixture
def shelf(tmp_path) -> Path:
    path = tmp_path / "shelf.py"
    path.write_text(textwrap.dedent(SHELF))
    return path


def test_parse_source_kinds_locations_and_options():
    assert parse_source("builtin").kind == "builtin"
    python = parse_source("python:pkg.tools:Shelf")
    assert (python.kind, python.location) == ("python", "pkg.tools:Shelf")
    mcp = parse_source("mcp:python 'my server.py' --port 3")
    assert (mcp.kind, mcp.argv) == ("mcp", (sys.executable, "my server.py", "--port", "3"))  # `python`: this interpreter
    http = parse_source("mcp+https://example.org/mcp header:Authorization='Bearer ${TOKEN}'")
    assert (http.kind, http.location, dict(http.options)) == ("mcp+https", "https://example.org/mcp", {"header:Authorization": "Bearer ${TOKEN}"})
    openapi = parse_source("openapi:spec.yaml base_url=http://127.0.0.1:9/v1 header:X-Key=$KEY")
    assert (openapi.location, dict(openapi.options)) == ("spec.yaml", {"base_url": "http://127.0.0.1:9/v1", "header:X-Key": "$KEY"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bultin", "bultin: field 'kind': unknown source kind 'bultin'; sources are builtin, python:..."),
        ("python:", "python:: field 'location': missing"),
        ("openai:f.json 'unclosed", "openai:f.json 'unclosed: field 'quoting': No closing quotation"),
        ("openai:f.json header:X=1", "openai:f.json header:X=1: field 'header:X': not an option of openai sources (options: cache=VALUE)"),
        ("python:m nope=1", "python:m nope=1: field 'nope': not an option of python sources (options: none)"),
    ],
)
def test_a_malformed_source_string_is_one_line_naming_the_field(text, message):
    with pytest.raises(SourceError) as error:
        parse_source(text)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_builtin_is_the_default():
    assert load_registry().names() == builtin_registry().names() == load_registry(["builtin"]).names()


def test_python_openai_and_toolbench_sources_in_one_registry(shelf):
    cache = FIXTURES / "toolbench_cache.json"
    registry = load_registry([f"python:{shelf}:Shelf", f"openai:{FIXTURES / 'openai_functions.json'}", f"toolbench:{FIXTURES / 'toolbench'} cache={cache}"])
    assert {"count_books", "newest_book", "get_current_weather", "ping", "exchange_for_currency_exchange"} <= set(registry.names())
    runner = ToolRunner(registry)
    assert runner.call("count_books", {"genre": "poetry"}).result == 1
    assert runner.call("exchange_for_currency_exchange", {"is_from": "USD", "to": "EUR"}).result == {"rate": 0.92, "amount": 0.92}
    assert runner.call("ping", {}).error == ErrorKind.NOT_CACHED  # documentation only, and nothing recorded


def test_a_toolbench_folder_answers_from_its_own_cache_file(tmp_path):
    folder = tmp_path / "toolbench"
    shutil.copytree(FIXTURES / "toolbench", folder)
    shutil.copy(FIXTURES / "toolbench_cache.json", folder / "cache.json")
    observation = ToolRunner(load_registry([f"toolbench:{folder}"])).call("exchange_for_currency_exchange", {"is_from": "USD", "to": "EUR"})
    assert observation.ok and observation.result["rate"] == 0.92


def test_a_module_source(tmp_path, monkeypatch, shelf):
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_registry(["python:shelf:Shelf"]).names() == ["count_books", "newest_book"]


def test_two_sources_offering_one_name_is_an_error_naming_both(shelf):
    with pytest.raises(SourceError) as error:
        load_registry(["builtin", f"python:{shelf}"])
    assert str(error.value) == f"tool name 'search_books' is offered by two sources: builtin and python:{shelf}"
    with pytest.raises(SourceError, match="given twice"):
        load_registry(["builtin", "builtin"])


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ('{"name": "f"}', "must be a JSON list of function definitions"),
        ('[{"type": "function", "function": {"description": "no name"}}]', "field '[0].function.name': missing"),
        ('[{"name": "f", "parameters": {"type": "array"}}]', "field '[0]': f: parameters must be a JSON Schema"),
        ('[{"name": "f",', "not JSON"),
    ],
)
def test_malformed_openai_definitions_are_one_line_naming_source_and_field(tmp_path, document, field):
    path = tmp_path / "functions.json"
    path.write_text(document)
    with pytest.raises(SourceError) as error:
        load_registry([f"openai:{path}"])
    message = str(error.value)
    assert message.startswith(f"openai:{path}: ") and field in message and "\n" not in message


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("python:no_such_module_here", "field 'module': cannot import 'no_such_module_here': ModuleNotFoundError"),
        ("toolbench:/no/such/folder", "field 'location': no such folder"),
        (f"toolbench:{FIXTURES / 'toolbench'} cache=/no/such/cache.json", "field 'cache': no such file"),
    ],
)
def test_sources_that_cannot_open_name_the_field(source, field):
    with pytest.raises(SourceError) as error:
        load_registry([source])
    assert str(error.value).startswith(f"{source}: {field}")


def test_a_python_class_without_docstrings_names_the_field(tmp_path):
    path = tmp_path / "bare.py"
    path.write_text("def undocumented(x: int) -> int:\n    return x\n")
    with pytest.raises(SourceError, match=r"^python:.*bare\.py: .*field 'docstring': missing"):
        load_registry([f"python:{path}"])


# ---- rounds ------------------------------------------------------------------------------------------


def test_rounds_take_names_and_globs_across_sources(shelf):
    registry = load_registry(["builtin", f"openai:{FIXTURES / 'openai_functions.json'}", f"python:{shelf}:Shelf"])
    rounds = tools_by_round(registry, {2: ["count_books", "get_*"], 1: ["search_films", "ping"]})
    assert list(rounds) == [1, 2]
    assert rounds[1] == ["search_films", "ping"]
    assert rounds[2][0] == "count_books" and "get_current_weather" in rounds[2] and "get_time" in rounds[2]
    assert all(name == "count_books" or name.startswith("get_") for name in rounds[2])
    assert tools_by_round(registry, {"3": ["newest_book"]}) == {3: ["newest_book"]}  # JSON configs have string keys

    staged = with_rounds(registry, {1: ["count_books"], 2: ["newest_book", "ping"]})
    assert staged.rounds() == [1, 2] and [tool.name for tool in staged.by_round(2)] == ["ping", "newest_book"]  # registry order
    assert staged.get("search_films").spec.round is None and len(staged) == len(registry)


@pytest.mark.parametrize(
    ("rounds", "message"),
    [
        ({1: ["search_film"]}, "tools.rounds.1: no tool named 'search_film'; did you mean 'search_films'"),
        ({2: ["zzz_*"]}, "tools.rounds.2: no tool matches 'zzz_*'"),
        ({1: ["search_*"], 2: ["search_books"]}, "tools.rounds.2: 'search_books' is already in round 1"),
        ({1: []}, "tools.rounds.1: must be a non-empty list of tool names or globs"),
        ({1: "search_books"}, "tools.rounds.1: must be a non-empty list"),
        ({0: ["search_books"]}, "tools.rounds.0: a round is a whole number from 1"),
        ({"one": ["search_books"]}, "tools.rounds.one: a round is a whole number from 1"),
    ],
)
def test_rounds_errors_name_the_round(rounds, message):
    with pytest.raises(SourceError) as error:
        tools_by_round(builtin_registry(), rounds)
    assert str(error.value).startswith(message)


# ---- the CLI -----------------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "200"})


def test_cli_tools_from_lists_shows_and_calls(shelf):
    source = f"python:{shelf}:Shelf"
    listed = invoke("list", "--tools-from", source, "--tools-from", f"openai:{FIXTURES / 'openai_functions.json'}")
    assert listed.exit_code == 0 and "count_books" in listed.stdout and "get_current_weather" in listed.stdout
    assert "search_films" not in listed.stdout  # sources given: builtin only if named
    shown = invoke("show", "count_books", "--tools-from", source)
    assert shown.exit_code == 0 and 'A genre, or "any".' in shown.stdout
    called = invoke("call", "count_books", '{"genre": "poetry"}', "--tools-from", source)
    assert called.exit_code == 0 and json.loads(called.stdout)["result"] == 1


def test_cli_source_errors_exit_2_with_one_line(shelf):
    result = invoke("list", "--tools-from", "builtin", "--tools-from", f"python:{shelf}")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: tool name 'search_books' is offered by two sources: builtin and python:{shelf}"
