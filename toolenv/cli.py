"""`imaginarium tools`: list the tools (built-in, or from `--tools-from` sources), show one, call one the way a model would.

Exit codes: 0 fine, 1 the call came back as an error observation, 2 a usage mistake (one line on stderr).
"""
from __future__ import annotations

import json
from typing import List, NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table

from toolenv.observation import DFSDT_MAX_CHARS
from toolenv.registry import Registry, RegistryError, builtin_registry
from toolenv.runner import Limits, ToolRunner, unknown_tool_message
from toolenv.sources import load_registry
from toolenv.spec import Tool

app = typer.Typer(help="The tool layer: tools, their specs, and calls with limits.", no_args_is_help=True, add_completion=False)

TOOLS_FROM_HELP = (
    "A tool source, repeatable (default: builtin): builtin, python:MODULE[:Class], python:FILE.py[:Class], openai:FILE.json, "
    "toolbench:DIR, 'mcp:COMMAND ARGS...', mcp+http://URL, 'openapi:URL-or-FILE [header:NAME=${VAR}]'."
)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _registry(sources: Optional[List[str]]) -> Registry:
    """The built-in tools, or those of the given sources (a server started here stops when the command ends)."""
    try:
        return load_registry(sources) if sources else builtin_registry()
    except RegistryError as error:
        _fail(str(error))


def _tool(registry: Registry, name: str) -> Tool:
    if name not in registry:
        _fail(unknown_tool_message(name, registry.names()))
    return registry.get(name)


@app.command("list")
def list_tools(
    suite: Optional[str] = typer.Option(None, help="Only this suite."),
    round: Optional[int] = typer.Option(None, "--round", help="Only the tools this round introduces."),
    category: Optional[str] = typer.Option(None, help="Only this category."),
    tools_from: Optional[List[str]] = typer.Option(None, "--tools-from", help=TOOLS_FROM_HELP),
) -> None:
    """A table of the tools: name, category, suite, round, number of parameters."""
    registry = _registry(tools_from)
    for value, known, what in ((suite, registry.suites(), "suite"), (category, registry.categories(), "category")):
        if value is not None and value not in known:
            _fail(f"no {what} {value!r}; {what} names: {', '.join(known)}")
    if round is not None and round not in registry.rounds():
        _fail(f"no round {round}; rounds: {', '.join(map(str, registry.rounds()))}")
    tools = [
        tool for tool in registry
        if (suite is None or tool.spec.suite == suite)
        and (round is None or tool.spec.round == round)
        and (category is None or tool.spec.category == category)
    ]
    table = Table("name", "category", "suite", "round", "#params")
    table.columns[0].no_wrap = True
    for tool in sorted(tools, key=lambda tool: (tool.spec.round or 0, tool.spec.category, tool.name)):
        parameters = tool.spec.parameters.get("properties", {})
        table.add_row(tool.name, tool.spec.category, tool.spec.suite, str(tool.spec.round or "-"), str(len(parameters)))
    console = Console()
    console.print(table)
    rounds = sorted({tool.spec.round for tool in tools if tool.spec.round is not None})
    categories = {tool.spec.category for tool in tools}
    console.print(f"{len(tools)} APIs in {len(categories)} categories across rounds {', '.join(map(str, rounds)) or '-'}")


@app.command()
def show(
    name: str = typer.Argument(..., help="Tool name."),
    tools_from: Optional[List[str]] = typer.Option(None, "--tools-from", help=TOOLS_FROM_HELP),
) -> None:
    """Description, parameters (types, enums, defaults) and examples of one tool."""
    spec = _tool(_registry(tools_from), name).spec
    console = Console()
    console.print(f"[bold]{spec.name}[/bold]  category={spec.category} suite={spec.suite} round={spec.round}", highlight=False)
    console.print(spec.description, markup=False)
    if spec.returns:
        console.print(f"Returns: {spec.returns}", markup=False)
    required = set(spec.parameters.get("required", ()))
    table = Table("parameter", "type", "required", "default", "allowed values", "description", title="Parameters")
    for parameter, schema in spec.parameters.get("properties", {}).items():
        table.add_row(
            parameter,
            _type_text(schema),
            "yes" if parameter in required else "no",
            json.dumps(schema["default"]) if "default" in schema else "",
            ", ".join(json.dumps(value) for value in schema.get("enum", ())),
            schema.get("description", ""),
        )
    console.print(table)
    for example in spec.examples:
        console.print(f"Example: {json.dumps(example, ensure_ascii=False)}", markup=False, highlight=False)


def _type_text(schema: dict) -> str:
    kind = schema.get("type", "any")
    text = " | ".join(kind) if isinstance(kind, list) else kind
    return f"{text}[{_type_text(schema['items'])}]" if "items" in schema else text


@app.command()
def call(
    name: str = typer.Argument(..., help="Tool name."),
    arguments: str = typer.Argument("{}", help="Arguments as a JSON object, as a model would emit them."),
    timeout: float = typer.Option(Limits.timeout_s, min=0.01, help="Time limit in seconds."),
    max_chars: int = typer.Option(DFSDT_MAX_CHARS, min=1, help="Cut the model-facing content at this many characters."),
    tools_from: Optional[List[str]] = typer.Option(None, "--tools-from", help=TOOLS_FROM_HELP),
) -> None:
    """Run one call and print its observation as JSON, with `content`, the text the model would read."""
    registry = _registry(tools_from)
    _tool(registry, name)
    observation = ToolRunner(registry, Limits(timeout_s=timeout)).call(name, arguments)
    typer.echo(json.dumps({**observation.to_dict(), "content": observation.content(max_chars)}, indent=2, ensure_ascii=False))
    if not observation.ok:
        raise typer.Exit(1)
