"""Reading a model's reply: one tool call in `<tool_call>` tags, or JSON under a schema, checked against the
offered tools' parameter schemas (toolenv's one validation, as when the tool runs). Every backend reads replies here, so they parse and fail alike: with one line
saying why, never an exception."""
from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from replay.episode import FunctionCall
from toolenv.validation import json_type, schema_problem

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
MAX_ERROR_CHARS = 300


def tool_call_schema(tools: list[dict]) -> dict:
    """JSON schema of one call to any of `tools`: the tool's name as a constant, its parameters as the arguments."""
    return {"anyOf": [
        {"type": "object",
         "properties": {"name": {"const": function["name"]}, "arguments": function.get("parameters") or {"type": "object"}},
         "required": ["name", "arguments"]}
        for function in map(_function, tools)
    ]}


def parse_tool_call(text: str, tools: list[dict]) -> tuple[FunctionCall | None, str | None]:
    """The call in `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, or why there is none.

    Meant for constrained and unconstrained outputs alike: it never raises, whatever the text.
    """
    start = text.find(TOOL_CALL_OPEN)
    if start < 0:
        return None, "no <tool_call> tag in the output"
    body = text[start + len(TOOL_CALL_OPEN):].lstrip()
    try:
        call, end = json.JSONDecoder(strict=False).raw_decode(body)
    except json.JSONDecodeError as error:
        if TOOL_CALL_CLOSE not in body:
            return None, f"unclosed JSON: the output ended inside <tool_call> ({error.msg})"
        return None, f"invalid JSON in <tool_call>: {error.msg} at char {error.pos}"
    except (ValueError, RecursionError) as error:  # e.g. an integer of 5000 digits, or 10000 nested arrays
        return None, _one_line(f"unreadable JSON in <tool_call>: {error or type(error).__name__}")
    if not body[end:].lstrip().startswith(TOOL_CALL_CLOSE):
        return None, "missing </tool_call> after the JSON"
    return check_call(call, tools)


def check_call(call: Any, tools: list[dict]) -> tuple[FunctionCall | None, str | None]:
    """A decoded `{"name", "arguments"}` object as a FunctionCall, if it names a tool and fits its schema."""
    if not isinstance(call, dict):
        return None, f"the call is a JSON {json_type(call)}, not an object"
    name = call.get("name")
    if not isinstance(name, str):
        return None, 'the call has no "name" string'
    functions = {function["name"]: function for function in map(_function, tools)}
    if name not in functions:
        return None, _one_line(f"unknown tool {name!r} (known: {', '.join(functions) or 'none'})")
    arguments = call.get("arguments")
    if not isinstance(arguments, dict):
        return None, f'"arguments" of {name} is a JSON {json_type(arguments)}, not an object'
    schema = functions[name].get("parameters") or {"type": "object"}
    try:
        problem = schema_problem(name, schema, arguments)
    except (jsonschema.exceptions.SchemaError, re.error) as error:
        return None, _one_line(f"the parameters schema of {name} cannot be checked: {error}")
    if problem is not None:
        return None, _one_line(problem)
    return FunctionCall(name=name, arguments=arguments), None


def check_json(text: str, schema: dict | None) -> str | None:
    """Why `text` is not a JSON value fitting `schema` (any JSON when None), or None if it is."""
    try:
        value = json.loads(text, strict=False)
    except (ValueError, RecursionError) as error:
        return _one_line(f"invalid JSON: {error}")
    if schema is None:
        return None
    error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema).iter_errors(value))
    return None if error is None else _one_line(f"the JSON does not fit the schema: {error.message}")


def _function(spec: dict) -> dict:
    """The function definition inside an OpenAI tool spec (a bare definition passes through)."""
    return spec.get("function", spec)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."
