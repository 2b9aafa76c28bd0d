"""Check a model's tool-call arguments against the tool's JSON Schema before anything runs.

Models emit arguments as JSON text that is often wrong in small ways; the message they read back must
name the tool and the argument so the next attempt can fix exactly that. One message per call: the
first problem found, not a wall of schema errors.
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from toolenv.spec import ToolSpec

# What OpenAI-compatible endpoints and chat templates accept as a function name.
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

JSON_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


class BadArguments(ValueError):
    """The arguments cannot be passed to the tool; the message is what the model reads."""


_NONE = object()  # no default declared


def is_default(parameters: dict, name: str, value: Any) -> bool:
    """Is `value` the declared default of parameter `name` in a JSON-Schema `parameters` object? A default states
    nothing a request asked for: the one rule for padding, faithfulness and drafts."""
    prop = parameters.get("properties", {}).get(name, {})
    default = prop.get("default", _NONE)
    return default == value and isinstance(default, bool) == isinstance(value, bool)  # 1 == 1.0, never True == 1


def check_spec(spec: ToolSpec) -> None:
    """Raise ValueError if a spec could never be called: a bad name or a parameters schema that is not an object schema."""
    if not FUNCTION_NAME.match(spec.name):
        raise ValueError(f"tool name {spec.name!r} must match {FUNCTION_NAME.pattern}")
    schema = spec.parameters
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ValueError(f"{spec.name}: parameters must be a JSON Schema with \"type\": \"object\"")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise ValueError(f"{spec.name}: parameters is not a valid JSON Schema: {error.message}") from None
    missing = set(schema.get("required", ())) - set(schema.get("properties", {}))
    if missing:
        raise ValueError(f"{spec.name}: required names no property: {sorted(missing)}")


def parse_arguments(tool_name: str, raw: dict[str, Any] | str | None) -> dict[str, Any]:
    """Accept arguments as a dict or as the JSON text a model emits ("" and None mean no arguments)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise BadArguments(f"{tool_name}: arguments are not valid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(raw, dict):
        raise BadArguments(f"{tool_name}: arguments must be a JSON object, got {json_type(raw)}")
    return raw


def validate_arguments(spec: ToolSpec, raw: dict[str, Any] | str | None) -> dict[str, Any]:
    """Parse, reject unknown names, validate against the schema, and return a copy with schema defaults filled."""
    arguments = parse_arguments(spec.name, raw)
    schema = spec.parameters
    properties: dict[str, Any] = schema.get("properties", {})
    # Unknown names are rejected even when the schema is silent: a misspelt optional argument would
    # otherwise be dropped without a word. A schema can opt out with an explicit additionalProperties.
    if schema.get("additionalProperties", False) is False:
        unknown = [name for name in arguments if name not in properties]
        if unknown:
            expected = ", ".join(properties) or "no arguments"
            raise BadArguments(f"{spec.name}: unknown argument {unknown[0]!r} (expected: {expected})")
    problem = schema_problem(spec.name, schema, arguments)
    if problem is not None:
        raise BadArguments(problem)
    filled = dict(arguments)
    for name, prop in properties.items():
        if name not in filled and "default" in prop:
            filled[name] = copy.deepcopy(prop["default"])
        elif prop.get("type") == "integer" and isinstance(filled.get(name), float):
            filled[name] = int(filled[name])  # the schema allows 3.0 for an integer; the tool should get 3
    return filled


def schema_problem(tool_name: str, schema: dict, arguments: dict[str, Any]) -> str | None:
    """The first way `arguments` break the parameters `schema`, as one sentence naming the tool and the argument;
    None if they fit. The one schema check of a call, whether a tool runs it or a model's reply is read."""
    error = best_match(Draft202012Validator(schema).iter_errors(arguments))
    return None if error is None else _describe(tool_name, error)


def _describe(tool_name: str, error: ValidationError) -> str:
    """One sentence naming the tool and the argument, in the words a model can act on."""
    if error.validator == "required" and not error.path:
        missing = next(name for name in error.validator_value if name not in error.instance)
        return f"{tool_name}: missing required argument {missing!r}"
    if error.validator == "minProperties" and not error.path:
        required = error.schema.get("required", [])
        options = [name for name in error.schema.get("properties", {}) if name not in required]
        need = error.validator_value - len(required)
        also = f" as well as {', '.join(map(repr, required))}" if required else ""
        return f"{tool_name}: give at least {need} of {', '.join(map(repr, options))}{also}"
    where = ".".join(str(part) for part in error.path)
    subject = f"argument {where!r}" if where else "arguments"
    if error.validator == "enum":
        return f"{tool_name}: {subject} must be one of {error.validator_value}, got {error.instance!r}"
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, str) else " or ".join(error.validator_value)
        return f"{tool_name}: {subject} must be of type {expected}, got {json_type(error.instance)} {error.instance!r}"
    return f"{tool_name}: {subject}: {error.message}"


def json_type(value: Any) -> str:
    """A Python value's JSON type by JSON Schema's names (int is "integer")."""
    return "null" if value is None else JSON_TYPE_NAMES.get(type(value), type(value).__name__)
