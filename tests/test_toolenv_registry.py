"""The registry: discovery of suite modules, duplicate names refused, lookups by name, suite, category, round."""
import textwrap

import pytest

from toolenv.registry import Registry, RegistryError, builtin_registry, discover
from toolenv.spec import Tool, ToolSpec
from toolenv.validation import validate_arguments


def make_tool(name, category="Test", suite="tests", round=1):
    spec = ToolSpec(name, f"{name} for tests.", category, {"type": "object", "properties": {}}, suite=suite, round=round)
    return Tool(spec, lambda: name)


def test_lookups_by_name_suite_category_and_round():
    registry = Registry(
        [make_tool("a", "Weather", "s1", 1), make_tool("b", "Weather", "s2", 2), make_tool("c", "Text", "s2", 2), make_tool("d", round=None)]
    )
    assert registry.get("b").name == "b" and "c" in registry and "z" not in registry and len(registry) == 4
    assert [tool.name for tool in registry.by_suite("s2")] == ["b", "c"]
    assert [tool.name for tool in registry.by_category("Weather")] == ["a", "b"]
    assert [tool.name for tool in registry.by_round(2)] == ["b", "c"]
    assert [tool.name for tool in registry.up_to_round(1)] == ["a"]
    assert registry.rounds() == [1, 2]
    assert registry.categories() == ["Test", "Text", "Weather"]
    assert registry.subset(["c", "a"]).names() == ["c", "a"]
    with pytest.raises(KeyError):
        registry.get("z")


def test_a_duplicate_name_is_refused_naming_both_origins():
    with pytest.raises(RegistryError, match=r"duplicate tool name 'a': defined by suite 's1' .* and by suite 's2'"):
        Registry([make_tool("a", suite="s1"), make_tool("a", suite="s2")])


def test_an_uncallable_spec_is_refused_at_registration():
    broken = Tool(ToolSpec("broken", "d", "c", {"type": "array"}, suite="s1"), lambda: None)
    with pytest.raises(RegistryError, match="suite 's1'.*broken"):
        Registry([broken])


def write_package(root, name, modules):
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(textwrap.dedent(source))


TOOL_MODULE = """
    from toolenv.spec import Tool, ToolSpec
    TOOLS = [Tool(ToolSpec("{name}", "d", "C", {{"type": "object", "properties": {{}}}}, suite="{suite}", round=1), lambda: 1)]
"""


def test_discover_collects_every_module_of_a_package(tmp_path, monkeypatch):
    write_package(tmp_path, "suites_ok", {"alpha": TOOL_MODULE.format(name="ping", suite="alpha"), "beta": TOOL_MODULE.format(name="pong", suite="beta")})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert discover("suites_ok").names() == ["ping", "pong"]


def test_discover_refuses_a_module_without_tools(tmp_path, monkeypatch):
    write_package(tmp_path, "suites_bad", {"alpha": "TOOLZ = []\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError, match="suites_bad.alpha must export TOOLS"):
        discover("suites_bad")


def test_discover_refuses_the_same_name_in_two_modules(tmp_path, monkeypatch):
    write_package(tmp_path, "suites_dup", {"alpha": TOOL_MODULE.format(name="ping", suite="alpha"), "beta": TOOL_MODULE.format(name="ping", suite="beta")})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError, match="duplicate tool name 'ping'"):
        discover("suites_dup")


BUILTIN = list(builtin_registry())


@pytest.mark.parametrize("tool", BUILTIN, ids=lambda tool: tool.name)
def test_builtin_specs_are_complete(tool):
    spec = tool.spec
    assert spec.description.strip() and spec.category and spec.suite
    assert spec.round in (1, 2, 3, 4)
    assert spec.openai()["function"]["name"] == spec.name


@pytest.mark.parametrize("tool", BUILTIN, ids=lambda tool: tool.name)
def test_builtin_examples_are_valid_calls(tool):
    for example in tool.spec.examples:
        validate_arguments(tool.spec, example["arguments"])
