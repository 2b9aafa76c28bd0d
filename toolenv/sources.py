"""Where tools come from: SOURCE strings, each opened once per process into tools, and rounds over them.

A source is a plain string so that every process (the launcher, each explorer actor, the evaluator) rebuilds
the same tools from the config alone; nothing live is passed around. The kinds:

    builtin                                   the built-in offline suites (the default)
    python:pkg.module[:Class]                 public functions or methods (toolenv.importers.tools_from_python)
    python:path/to/file.py[:Class]
    openai:FILE.json [cache=FILE]             OpenAI function definitions, answered from a response cache
    toolbench:DIR [cache=FILE]                ToolBench tool files, answered from FILE (default DIR/cache.json)
    mcp:COMMAND ARGS...                       an MCP server over stdio, started here, stopped with this process
    mcp+http://HOST/PATH [header:NAME=VALUE]  an MCP server over streamable HTTP (also mcp+https://)
    openapi:URL-or-FILE [header:NAME=VALUE] [base_url=URL]   an OpenAPI 3 service, each operation a tool

Words after the location are split like a shell line. A header VALUE names environment variables as ${VAR}
(`header:Authorization=Bearer ${API_TOKEN}`), so a source string in a config, an episode or a log never holds
a secret; the values are read when the source opens and are cut out of every result and error message.
"""
from __future__ import annotations

import atexit
import fnmatch
import json
import os
import shlex
import sys
import string
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from toolenv.cache import ResponseCache
from toolenv.importers import ToolFormatError, load_openai_functions, load_toolbench, tools_from_python
from toolenv.registry import Registry, RegistryError, builtin_registry
from toolenv.runner import unknown_tool_message
from toolenv.spec import Tool

DEFAULT_SOURCES = ("builtin",)
KINDS = ("builtin", "python", "openai", "toolbench", "mcp", "mcp+http", "mcp+https", "openapi")
OPTIONS = {"openai": ("cache",), "toolbench": ("cache",), "mcp+http": ("header:",), "mcp+https": ("header:",), "openapi": ("header:", "base_url")}
HEADER = "header:"


class SourceError(RegistryError):
    """A source that cannot be opened, or tools that cannot be used together; one line naming the source and field."""


@dataclass(frozen=True)
class Source:
    """A parsed SOURCE string: its kind, location (module, file, folder, URL; for `mcp:` the command line) and options."""

    text: str
    kind: str
    location: str
    argv: tuple[str, ...] = ()  # `mcp:` only: the command and its arguments
    options: Mapping[str, str] = field(default_factory=dict)

    def fail(self, field_name: str, problem: str) -> SourceError:
        return SourceError(f"{self.text}: field '{field_name}': {problem}")

    def headers(self) -> tuple[dict[str, str], tuple[str, ...]]:
        """The `header:NAME=VALUE` options with ${VAR} read from the environment, and the secret values read."""
        headers: dict[str, str] = {}
        secrets: list[str] = []
        for key, template in self.options.items():
            if not key.startswith(HEADER):
                continue
            try:
                names = {match[1] or match[2] for match in string.Template.pattern.findall(template) if match[1] or match[2]}
                headers[key.removeprefix(HEADER)] = string.Template(template).substitute(os.environ)
            except KeyError as error:
                raise self.fail(key, f"environment variable {error.args[0]} is not set") from None
            except ValueError as error:
                raise self.fail(key, f"{error} (write ${{VAR}} for an environment variable, $$ for a dollar sign)") from None
            secrets.extend(os.environ[name] for name in names if os.environ[name])
        return headers, tuple(secrets)


def parse_source(text: str) -> Source:
    """A SOURCE string to its parts; SourceError naming the field for an unknown kind, a missing location or a bad option."""
    stripped = text.strip()
    if stripped == "builtin":
        return Source(text, "builtin", "")
    kind, colon, rest = stripped.partition(":")
    if not colon or kind not in KINDS[1:]:
        raise SourceError(f"{text}: field 'kind': unknown source kind {kind!r}; sources are builtin, " + ", ".join(f"{name}:..." for name in KINDS[1:]))
    try:
        words = shlex.split(rest)
    except ValueError as error:
        raise SourceError(f"{text}: field 'quoting': {error}") from None
    if not words:
        raise SourceError(f"{text}: field 'location': missing")
    if kind == "mcp":
        # `python` is this interpreter: a server written with the SDK runs where the SDK is installed
        argv = (sys.executable, *words[1:]) if words[0] in ("python", "python3") else tuple(words)
        return Source(text, kind, rest.strip(), argv=argv)
    location = f"{kind.removeprefix('mcp+')}:{words[0]}" if kind.startswith("mcp+") else words[0]
    options: dict[str, str] = {}
    for word in words[1:]:
        key, equals, value = word.partition("=")
        if not equals or (HEADER if key.startswith(HEADER) and key != HEADER else key) not in OPTIONS.get(kind, ()):
            allowed = ", ".join(f"{option}NAME=VALUE" if option == HEADER else f"{option}=VALUE" for option in OPTIONS.get(kind, ())) or "none"
            raise SourceError(f"{text}: field {key!r}: not an option of {kind} sources (options: {allowed})")
        options[key] = value
    return Source(text, kind, location, options=options)


# ---- opening sources, once per process ---------------------------------------------------------------

_opened: dict[str, list[Tool]] = {}
_closers: list[Callable[[], None]] = []
_lock = threading.Lock()


def open_source(text: str) -> list[Tool]:
    """The tools of one source; opened (a server started, a document fetched) the first time this process asks."""
    with _lock:
        if text not in _opened:
            source = parse_source(text)
            _opened[text] = _OPENERS[source.kind](source)
        return _opened[text]


def close_sources() -> None:
    """Stop every MCP server and close every HTTP client this process opened; the next load opens them anew."""
    with _lock:
        while _closers:
            _closers.pop()()
        _opened.clear()


atexit.register(close_sources)


def load_registry(sources: Sequence[str] = DEFAULT_SOURCES) -> Registry:
    """One registry of the tools of all `sources` (none: builtin); a tool name offered twice names both sources."""
    texts = list(sources) or list(DEFAULT_SOURCES)
    offered: dict[str, str] = {}
    tools: list[Tool] = []
    for text in texts:
        if texts.count(text) > 1:
            raise SourceError(f"{text}: given twice")
        for tool in open_source(text):
            if tool.name in offered:
                raise SourceError(f"tool name {tool.name!r} is offered by two sources: {offered[tool.name]} and {text}")
            offered[tool.name] = text
            tools.append(tool)
    return Registry(tools, check_specs=False)


def _builtin(source: Source) -> list[Tool]:
    return list(builtin_registry())


def _python(source: Source) -> list[Tool]:
    try:
        return tools_from_python(source.location)
    except ToolFormatError as error:
        raise SourceError(f"{source.text}: {error}") from None
    except Exception as error:  # the module failed to import: missing, or raised while running
        raise source.fail("module", f"cannot import {source.location.partition(':')[0]!r}: {type(error).__name__}: {error}") from None


def _cache(source: Source, default: Path | None) -> ResponseCache:
    path = Path(source.options["cache"]) if "cache" in source.options else default
    if path is None or ("cache" not in source.options and not path.exists()):
        return ResponseCache()
    if not path.is_file():
        raise source.fail("cache", f"no such file {str(path)!r}")
    try:
        return ResponseCache(path)
    except ValueError as error:
        raise source.fail("cache", str(error)) from None


def _openai(source: Source) -> list[Tool]:
    try:
        return load_openai_functions(source.location, cache=_cache(source, None))
    except ToolFormatError as error:
        raise SourceError(f"{source.text}: {error}") from None


def _toolbench(source: Source) -> list[Tool]:
    root = Path(source.location)
    if not root.is_dir():
        raise source.fail("location", f"no such folder {source.location!r}")
    try:
        return load_toolbench(root, cache=_cache(source, root / "cache.json"))
    except ToolFormatError as error:
        raise SourceError(f"{source.text}: {error}") from None


def _mcp(source: Source) -> list[Tool]:
    from toolenv.mcp_tools import open_mcp  # the SDK loads only for MCP sources

    tools, close = open_mcp(source)
    _closers.append(close)
    return tools


def _openapi(source: Source) -> list[Tool]:
    from toolenv.openapi import open_openapi

    tools, close = open_openapi(source)
    _closers.append(close)
    return tools


_OPENERS: dict[str, Callable[[Source], list[Tool]]] = {
    "builtin": _builtin, "python": _python, "openai": _openai, "toolbench": _toolbench,
    "mcp": _mcp, "mcp+http": _mcp, "mcp+https": _mcp, "openapi": _openapi,
}


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret (as is, or as it appears inside JSON text) replaced, before anything records it."""
    for secret in secrets:
        for form in {secret, json.dumps(secret)[1:-1]}:
            text = text.replace(form, "[redacted]")
    return text


def json_or_text(text: str) -> Any:
    """A remote tool's text as the JSON data it holds; anything else (NaN too, which is not JSON data) as the text."""
    try:
        return json.loads(text, parse_constant=_refuse)
    except ValueError:
        return text


def _refuse(constant: str) -> Any:
    raise ValueError(constant)


# ---- rounds ------------------------------------------------------------------------------------------


def tools_by_round(registry: Registry, rounds: Mapping[Any, Sequence[str]]) -> dict[int, list[str]]:
    """`tools.rounds` ({1: [names or globs], 2: [...]}) to the tool names of each round, across sources.

    A name must exist and a glob (fnmatch) must match something; a tool belongs to one round. Errors name
    `tools.rounds.N`.
    """
    names = registry.names()
    result: dict[int, list[str]] = {}
    round_of: dict[str, int] = {}
    for key, entries in rounds.items():
        where = f"tools.rounds.{key}"
        number = int(key) if isinstance(key, str) and key.isdigit() else key
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise SourceError(f"{where}: a round is a whole number from 1")
        if number in result:
            raise SourceError(f"{where}: round {number} is given twice")
        if isinstance(entries, str) or not isinstance(entries, Sequence) or not entries or not all(isinstance(entry, str) for entry in entries):
            raise SourceError(f"{where}: must be a non-empty list of tool names or globs")
        chosen: list[str] = []
        for entry in entries:
            is_glob = any(character in entry for character in "*?[")
            matched = [name for name in names if fnmatch.fnmatchcase(name, entry)] if is_glob else [entry] * (entry in registry)
            if not matched:
                raise SourceError(f"{where}: " + (f"no tool matches {entry!r}" if is_glob else unknown_tool_message(entry, names)))
            for name in matched:
                if round_of.setdefault(name, number) != number:
                    raise SourceError(f"{where}: {name!r} is already in round {round_of[name]}")
                if name not in chosen:
                    chosen.append(name)
        result[number] = chosen
    return dict(sorted(result.items()))


def with_rounds(registry: Registry, rounds: Mapping[Any, Sequence[str]]) -> Registry:
    """The registry with each tool's round set by `tools.rounds` (a tool in no round gets none), so that
    `by_round`, `up_to_round` and `rounds` serve the configured rounds whatever the sources said."""
    round_of = {name: number for number, names in tools_by_round(registry, rounds).items() for name in names}
    return Registry((replace(tool, spec=replace(tool.spec, round=round_of.get(tool.name))) for tool in registry), check_specs=False)


def load_tools(sources: Sequence[str] = DEFAULT_SOURCES, rounds: Mapping[Any, Sequence[str]] | None = None) -> Registry:
    """What every process of a run opens from the same config: the sources' tools, and with `rounds` (a config's
    `tools.rounds` mapping) each named tool carrying its configured round."""
    registry = load_registry(sources)
    return with_rounds(registry, rounds) if rounds is not None else registry
