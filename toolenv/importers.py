"""Bring outside tools in: ToolBench tool files, OpenAI function definitions, Python classes and modules.

ToolBench and OpenAI files describe tools without running them; such tools get a cached-response executor
(toolenv.cache) unless an executor is supplied. Python tools run themselves, their schema read from type
hints and docstrings. Every format problem raises ToolFormatError naming the file and the field.
"""
from __future__ import annotations

import collections.abc
import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import sys
import types
import typing
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Literal, Mapping

from toolenv.cache import Backend, ResponseCache, cached_executor
from toolenv.spec import Tool, ToolSpec
from toolenv.validation import FUNCTION_NAME, check_spec


class ToolFormatError(ValueError):
    """A tool definition that cannot be imported; the message names the file (or object) and the field."""


# ---- ToolBench ---------------------------------------------------------------------------------------

# ToolBench's parameter types; DATE, TIME, GEOPOINT, ENUM (without values), FILE and the rest become strings.
# NUMBER is "number", not ToolBench's "integer": latitudes and prices are not whole numbers.
TOOLBENCH_TYPES = {"STRING": "string", "NUMBER": "number", "BOOLEAN": "boolean", "ARRAY": "array", "OBJECT": "object"}
# Names ToolBench renames because they clash with keywords (its `change_name`).
TOOLBENCH_RESERVED = {"from", "class", "return", "false", "true", "id", "and"}


def standardize(text: str) -> str:
    """ToolBench's name normalization: non-word runs to "_", lowercase, trimmed; a leading digit gets "get_"."""
    name = re.sub(r"_+", "_", re.sub(r"[^\u4e00-\u9fa5a-zA-Z0-9_]", "_", text)).lower().strip("_")
    return f"get_{name}" if name[:1].isdigit() else name


def _toolbench_name(text: str) -> str:
    name = standardize(text)
    return f"is_{name}" if name in TOOLBENCH_RESERVED else name


def load_toolbench(root: str | Path, cache: ResponseCache | None = None, backend: Backend | None = None) -> list[Tool]:
    """Every `<root>/<Category>/<tool>.json`, one Tool per API, all sharing one response cache."""
    cache = cache if cache is not None else ResponseCache()
    files = sorted(Path(root).glob("*/*.json"))
    if not files:
        raise ToolFormatError(f"{root}: no ToolBench tool files (<Category>/<tool>.json)")
    return [tool for path in files for tool in load_toolbench_tool(path, cache=cache, backend=backend)]


def load_toolbench_tool(
    path: str | Path, category: str | None = None, cache: ResponseCache | None = None, backend: Backend | None = None
) -> list[Tool]:
    """One ToolBench tool file: each entry of `api_list` becomes `<api>_for_<tool>`, as ToolBench names them."""
    path = Path(path)
    cache = cache if cache is not None else ResponseCache()
    document = _read_json(path)
    if not isinstance(document, dict):
        raise ToolFormatError(f"{path}: a ToolBench tool file is a JSON object")
    tool_name = _field(document, "tool_name", str, path)
    tool_description = _field(document, "tool_description", str, path, default="") or ""
    api_list = _field(document, "api_list", list, path)
    standard_tool_name = standardize(path.stem)
    tools: list[Tool] = []
    for index, api in enumerate(api_list):
        where = f"api_list[{index}]"
        if not isinstance(api, dict):
            raise ToolFormatError(f"{path}: field '{where}': must be an object")
        api_name = _field(api, "name", str, path, where)
        name = f"{_toolbench_name(api_name)}_for_{standard_tool_name}"[-64:]  # ToolBench keeps the last 64 characters
        if any(tool.name == name for tool in tools):
            raise ToolFormatError(f"{path}: field '{where}.name': {api_name!r} gives the name {name!r} twice")
        description = (_field(api, "description", str, path, where, default="") or "").strip()
        spec = ToolSpec(
            name=name,
            description=f'This is the subfunction for tool "{tool_name}", you can use this tool.'
            + (f' The description of this function is: "{description}"' if description else f" {tool_description}".rstrip()),
            category=category or path.parent.name,
            parameters=_toolbench_parameters(api, path, where),
            suite=standard_tool_name,
        )
        tools.append(Tool(spec, cached_executor(name, cache, backend)))
    return tools


def _toolbench_parameters(api: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for group in ("required_parameters", "optional_parameters"):
        for index, parameter in enumerate(_field(api, group, list, path, where, default=[]) or []):
            field = f"{where}.{group}[{index}]"
            if not isinstance(parameter, dict):
                raise ToolFormatError(f"{path}: field '{field}': must be an object")
            name = _toolbench_name(_field(parameter, "name", str, path, field))
            if not name or name in properties:
                raise ToolFormatError(f"{path}: field '{field}.name': {parameter['name']!r} is empty or repeated once standardized")
            kind = _field(parameter, "type", str, path, field, default="STRING") or "STRING"
            schema = {"type": TOOLBENCH_TYPES.get(kind.upper(), "string"), "description": str(parameter.get("description") or "")}
            if parameter.get("default") not in (None, ""):
                schema["examples"] = [parameter["default"]]  # ToolBench's "default" is an example value, not a default
            properties[name] = schema
            if group == "required_parameters":
                required.append(name)
    return {"type": "object", "properties": properties, "required": required}


# ---- OpenAI function definitions --------------------------------------------------------------------


def load_openai_functions(
    source: str | Path | list[Any],
    *,
    executors: Mapping[str, Callable[..., Any]] | None = None,
    cache: ResponseCache | None = None,
    backend: Backend | None = None,
    category: str = "imported",
    suite: str | None = None,
) -> list[Tool]:
    """A JSON list of `{"type": "function", "function": {...}}` or bare function dicts (a file path or the list).

    A function with an entry in `executors` runs it; the rest replay from `cache` (and record from `backend`).
    """
    origin = str(source) if isinstance(source, (str, Path)) else "<functions list>"
    definitions = _read_json(Path(source)) if isinstance(source, (str, Path)) else source
    if not isinstance(definitions, list):
        raise ToolFormatError(f"{origin}: must be a JSON list of function definitions")
    executors = executors or {}
    cache = cache if cache is not None else ResponseCache()
    suite = suite or (Path(source).stem if isinstance(source, (str, Path)) else "imported")
    tools: list[Tool] = []
    for index, definition in enumerate(definitions):
        where = f"[{index}]"
        if isinstance(definition, dict) and definition.get("type") == "function":
            definition, where = definition.get("function"), f"[{index}].function"
        if not isinstance(definition, dict):
            raise ToolFormatError(f"{origin}: field '{where}': must be a function definition object")
        name = _field(definition, "name", str, origin, where)
        parameters = _field(definition, "parameters", dict, origin, where, default=None) or {"type": "object", "properties": {}}
        spec = ToolSpec(
            name=name,
            description=_field(definition, "description", str, origin, where, default="") or "",
            category=category,
            parameters=parameters,
            suite=suite,
        )
        try:
            check_spec(spec)
        except ValueError as error:
            raise ToolFormatError(f"{origin}: field '{where}': {error}") from None
        tools.append(Tool(spec, executors.get(name) or cached_executor(name, cache, backend)))
    return tools


# ---- Python classes and modules --------------------------------------------------------------------

PLUGIN_PREFIX = "toolenv_plugin_"  # module names of plug-ins loaded by path
PRIMITIVE_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
SEQUENCE_TYPES = {list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Iterable}
MAPPING_TYPES = {dict, collections.abc.Mapping}


def tools_from_python(
    target: Any, *, category: str | None = None, suite: str | None = None, round: int | None = None, isolate: bool = False
) -> list[Tool]:
    """Each public function of a module, or public method of a class (instantiated without arguments) or instance.

    `target` is the object itself or a reference: "pkg.module", "path/to/plugin.py", either with ":ClassName".
    Mark untrusted plug-ins `isolate=True` so every call runs in a memory-limited, killable subprocess.
    """
    owner = _resolve(target) if isinstance(target, (str, Path)) else target
    if isinstance(owner, type):
        try:
            owner = owner()
        except TypeError as error:
            raise ToolFormatError(f"{owner.__module__}.{owner.__qualname__}: cannot be built without arguments ({error})") from None
    if isinstance(owner, ModuleType):
        public = getattr(owner, "__all__", None)
        functions = [
            function for name, function in inspect.getmembers(owner, inspect.isfunction)
            if function.__module__ == owner.__name__ and not name.startswith("_") and (public is None or name in public)
        ]
        # a plug-in's module name carries a hash (see load_plugin); its file name is the readable label
        default_suite = standardize(Path(owner.__file__).stem if owner.__name__.startswith(PLUGIN_PREFIX) else owner.__name__.rsplit(".", 1)[-1])
    else:
        functions = [
            getattr(owner, name) for name, member in inspect.getmembers(type(owner))
            if not name.startswith("_") and (inspect.isfunction(member) or inspect.ismethod(member))
        ]
        default_suite = standardize(type(owner).__name__)
    if not functions:
        raise ToolFormatError(f"{_describe(owner)}: no public functions or methods to make tools of")
    suite = suite or default_suite
    return [Tool(_spec_from_function(function, category or suite, suite, round), function, isolate=isolate) for function in functions]


def load_plugin(path: str | Path) -> ModuleType:
    """Import a Python file by path under a stable module name (so an isolated worker can import it again)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ToolFormatError(f"{path}: no such plug-in file")
    name = f"{PLUGIN_PREFIX}{standardize(path.stem)}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[name]
            raise
    return sys.modules[name]


def _resolve(reference: str | Path) -> Any:
    """"module" or "file.py", optionally ":Attribute", to the object it names."""
    location, _, attribute = str(reference).partition(":")
    module = load_plugin(location) if location.endswith(".py") else importlib.import_module(location)
    if not attribute:
        return module
    if not hasattr(module, attribute):
        raise ToolFormatError(f"{location}: field '{attribute}': no such class or object in the module")
    return getattr(module, attribute)


def _spec_from_function(function: Callable[..., Any], category: str, suite: str, round: int | None) -> ToolSpec:
    where = _describe(function)
    docs = _parse_docstring(inspect.getdoc(function) or "")
    if not docs["description"]:
        raise ToolFormatError(f"{where}: field 'docstring': missing; the model needs a description of the tool")
    if not FUNCTION_NAME.match(function.__name__):
        raise ToolFormatError(f"{where}: field 'name': {function.__name__!r} is not a valid function name")
    try:
        hints = typing.get_type_hints(function)
    except Exception as error:  # a forward reference that does not resolve, for one
        raise ToolFormatError(f"{where}: field 'annotations': cannot be resolved ({error})") from None
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise ToolFormatError(f"{where}: field '{parameter.name}': positional-only parameters cannot be passed by name")
        schema = _schema_for(hints.get(parameter.name, Any), f"{where}: field '{parameter.name}'")
        if parameter.name in docs["arguments"]:
            schema["description"] = docs["arguments"][parameter.name]
        if parameter.default is parameter.empty:
            required.append(parameter.name)
        else:
            try:
                schema["default"] = json.loads(json.dumps(parameter.default))
            except (TypeError, ValueError):
                raise ToolFormatError(f"{where}: field '{parameter.name}': default {parameter.default!r} is not JSON data") from None
        properties[parameter.name] = schema
    return ToolSpec(
        name=function.__name__,
        description=docs["description"],
        category=category,
        parameters={"type": "object", "properties": properties, "required": required},
        returns=docs["returns"],
        suite=suite,
        round=round,
    )


def _schema_for(annotation: Any, where: str) -> dict[str, Any]:
    """JSON Schema for a type hint: primitives, Literal (enum), Optional/unions, lists, dicts; Any is unconstrained."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return {}
    if annotation in PRIMITIVE_TYPES:
        return {"type": PRIMITIVE_TYPES[annotation]}
    if origin is Literal:
        kinds = sorted({PRIMITIVE_TYPES[type(value)] for value in arguments})
        return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": list(arguments)}
    if origin in (typing.Union, types.UnionType):
        options = [_schema_for(option, where) for option in arguments if option is not type(None)]
        schema = options[0] if len(options) == 1 else {"anyOf": options}
        return _nullable(schema) if type(None) in arguments else schema
    if annotation in SEQUENCE_TYPES or origin in SEQUENCE_TYPES:
        items = [argument for argument in arguments if argument is not Ellipsis]
        return {"type": "array", "items": _schema_for(items[0], where)} if items else {"type": "array"}
    if annotation in MAPPING_TYPES or origin in MAPPING_TYPES:
        return {"type": "object", "additionalProperties": _schema_for(arguments[1], where)} if arguments else {"type": "object"}
    raise ToolFormatError(f"{where}: unsupported type annotation {annotation!r} (use str, int, float, bool, Literal, list, dict, Optional)")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("type"), str):
        schema = {**schema, "type": [schema["type"], "null"]}
        return {**schema, "enum": [*schema["enum"], None]} if "enum" in schema else schema
    return {"anyOf": [schema, {"type": "null"}]}


DOC_SECTIONS = {"args": "arguments", "arguments": "arguments", "parameters": "arguments", "returns": "returns", "return": "returns"}
DOC_ARGUMENT = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")  # "name: text" or "name (type): text"


def _parse_docstring(doc: str) -> dict[str, Any]:
    """A Google-style docstring: the text before the first section is the description; Args and Returns sections."""
    description: list[str] = []
    arguments: dict[str, str] = {}
    returns: list[str] = []
    section, current, entry_indent = "description", None, None
    for line in doc.splitlines():
        indent = len(line) - len(line.lstrip())
        if indent == 0 and re.match(r"^\w+:\s*$", line):
            section, current, entry_indent = DOC_SECTIONS.get(line.strip()[:-1].lower(), "other"), None, None
        elif section == "description":
            description.append(line)
        elif section == "returns" and line.strip():
            returns.append(line.strip())
        elif section == "arguments" and line.strip():
            entry = DOC_ARGUMENT.match(line.strip())
            if entry and (entry_indent is None or indent <= entry_indent):
                current, entry_indent = entry.group(1), indent
                arguments[current] = entry.group(2).strip()
            elif current is not None:  # a continuation line, indented deeper than its entry
                arguments[current] = f"{arguments[current]} {line.strip()}".strip()
    return {"description": "\n".join(description).strip(), "arguments": arguments, "returns": " ".join(returns)}


# ---- shared helpers for reading files --------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ToolFormatError(f"{path}: no such file") from None
    except json.JSONDecodeError as error:
        raise ToolFormatError(f"{path}: not JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None


_MISSING = object()


def _field(record: dict[str, Any], name: str, kind: type, origin: Any, parent: str = "", default: Any = _MISSING) -> Any:
    """record[name], checked to be of `kind` (null allowed when there is a default)."""
    field = f"{parent}.{name}" if parent else name
    if name not in record:
        if default is _MISSING:
            raise ToolFormatError(f"{origin}: field '{field}': missing")
        return default
    value = record[name]
    if not isinstance(value, kind) and not (value is None and default is not _MISSING):
        raise ToolFormatError(f"{origin}: field '{field}': must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _describe(thing: Any) -> str:
    """Where a module, function or object comes from, for error messages: its file when it has one."""
    if isinstance(thing, ModuleType):
        return getattr(thing, "__file__", None) or thing.__name__
    module = sys.modules.get(getattr(thing, "__module__", None) or type(thing).__module__)
    location = getattr(module, "__file__", None) or getattr(module, "__name__", "?")
    return f"{location}:{getattr(thing, '__qualname__', type(thing).__qualname__)}"
