"""External one-call eval sets in the Berkeley Function Calling Leaderboard layout.

Questions: a JSON array or JSONL of `{"id", "question": [[{"role", "content"}, ...]], "function": [...]}`,
functions as BFCL writes them (bare `{"name", "description", "parameters"}` with Python-ish types such as
"dict" and "float"), normalized here to OpenAI tools with JSON Schema. Answers, in a separate file of the
same kind: `{"id", "ground_truth": [{"func_name": {"arg": [allowed values...]}}]}`.

Scoring asks the policy for one tool call (no execution): API match if it names a ground-truth function,
argument match if, for that function, every argument's value is one of its allowed values (an allowed
list holding "" lets the argument be left out), strings compared normalized and numbers numerically,
and it passes no argument the ground truth does not list.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from actors.calls import check_call
from actors.policy import Policy, Reply, Sampling
from replay.episode import Message
from toolenv.gold import match_value

BFCL_TYPES = {"dict": "object", "float": "number", "tuple": "array", "list": "array", "int": "integer",
              "str": "string", "bool": "boolean"}


class EvalSetError(ValueError):
    """An eval set that cannot be read; the message names the file, the line or entry, and the field."""


@dataclass(frozen=True)
class EvalEntry:
    id: str
    messages: tuple[Message, ...]
    tools: tuple[dict, ...]  # OpenAI tools
    ground_truth: tuple[dict[str, dict[str, list]], ...]


@dataclass(frozen=True)
class EvalSetRecord:
    id: str
    name: str | None  # the function called; None when the reply was no call
    arguments: dict[str, Any]
    error: str | None  # why the reply is not a valid call to one of the entry's functions; None if it is
    api_match: bool
    argument_match: bool

    @property
    def well_formed(self) -> bool:
        return self.error is None


# ---- loading --------------------------------------------------------------------------------------


def load_eval_set(questions: str | Path, answers: str | Path) -> list[EvalEntry]:
    """Both files, checked against each other: every question has one answer, and every answer a question."""
    questions, answers = Path(questions), Path(answers)
    truths: dict[str, tuple] = {}
    for where, record in _records(answers):
        entry_id = _id(record, where, truths)
        truth = _field(record, "ground_truth", where)
        if not isinstance(truth, list) or not truth or not all(_is_truth(item) for item in truth):
            raise EvalSetError(f"{where}: field 'ground_truth': must be a non-empty list of "
                               '{"func_name": {"arg": [allowed values...]}}')
        truths[entry_id] = tuple(truth)
    entries: dict[str, EvalEntry] = {}
    for where, record in _records(questions):
        entry_id = _id(record, where, entries)
        if entry_id not in truths:
            raise EvalSetError(f"{where}: id {entry_id!r} has no ground truth in {answers}")
        entries[entry_id] = EvalEntry(entry_id, _messages(_field(record, "question", where), where),
                                      _tools(_field(record, "function", where), where), truths[entry_id])
    unknown = sorted(truths.keys() - entries.keys())
    if unknown:
        raise EvalSetError(f"{answers}: ground truth for id {unknown[0]!r}, which is not in {questions} "
                           f"({len(unknown)} such ids)")
    return list(entries.values())


def _records(path: Path) -> list[tuple[str, Any]]:
    """(where, record) pairs from a JSON array ("file entry N") or JSONL ("file:line")."""
    try:
        text = path.read_text()
    except OSError as error:
        raise EvalSetError(f"{path}: cannot read ({error.strerror or error})") from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise EvalSetError(f"{path}:{error.lineno}: not JSON ({error.msg} at column {error.colno})") from None
        return [(f"{path} entry {index}", record) for index, record in enumerate(records)]
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                pairs.append((f"{path}:{number}", json.loads(line)))
            except json.JSONDecodeError as error:
                raise EvalSetError(f"{path}:{number}: not JSON ({error.msg} at column {error.colno})") from None
    if not pairs:
        raise EvalSetError(f"{path}: no entries")
    return pairs


def _field(record: Any, name: str, where: str) -> Any:
    if not isinstance(record, dict):
        raise EvalSetError(f"{where}: an entry must be a JSON object")
    if name not in record:
        raise EvalSetError(f"{where}: field '{name}': missing")
    return record[name]


def _id(record: Any, where: str, seen: dict) -> str:
    entry_id = _field(record, "id", where)
    if not isinstance(entry_id, str) or not entry_id:
        raise EvalSetError(f"{where}: field 'id': must be a non-empty string")
    if entry_id in seen:
        raise EvalSetError(f"{where}: field 'id': {entry_id!r} appears twice")
    return entry_id


def _is_truth(item: Any) -> bool:
    return isinstance(item, dict) and len(item) == 1 and all(
        isinstance(arguments, dict) and all(isinstance(allowed, list) for allowed in arguments.values())
        for arguments in item.values()
    )


def _messages(question: Any, where: str) -> tuple[Message, ...]:
    """BFCL's question is a list of turns, each a list of messages; one-call scoring takes single-turn entries."""
    if not isinstance(question, list) or len(question) != 1 or not isinstance(question[0], list) or not question[0]:
        raise EvalSetError(f"{where}: field 'question': must be [[{{\"role\", \"content\"}}, ...]] (one turn)")
    messages = []
    for index, message in enumerate(question[0]):
        if not (isinstance(message, dict) and message.get("role") in ("system", "user", "assistant")
                and isinstance(message.get("content"), str)):
            raise EvalSetError(f"{where}: field 'question.0.{index}': must be {{\"role\": system|user|assistant, "
                               "\"content\": string}")
        messages.append(Message(role=message["role"], content=message["content"]))
    return tuple(messages)


def _tools(functions: Any, where: str) -> tuple[dict, ...]:
    functions = [functions] if isinstance(functions, dict) else functions
    if not isinstance(functions, list) or not functions:
        raise EvalSetError(f"{where}: field 'function': must be a non-empty list of function docs")
    tools = []
    for index, function in enumerate(functions):
        function = function.get("function", function) if isinstance(function, dict) else function
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise EvalSetError(f"{where}: field 'function.{index}.name': missing")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict):
            raise EvalSetError(f"{where}: field 'function.{index}.parameters': must be an object")
        tools.append({"type": "function", "function": {
            "name": function["name"], "description": str(function.get("description", "")),
            "parameters": _json_schema(parameters),
        }})
    return tuple(tools)


def _json_schema(schema: Any) -> Any:
    """BFCL's Python type names as JSON Schema ("dict" → "object", "float" → "number", "any" → no type)."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _json_schema(value) for key, value in schema.items() if not (key == "type" and value == "any")}
    if isinstance(converted.get("type"), str):
        converted["type"] = BFCL_TYPES.get(converted["type"], converted["type"])
    return converted


# ---- scoring --------------------------------------------------------------------------------------


def call_matches_truth(name: str, arguments: dict[str, Any], ground_truth: Sequence[dict[str, dict[str, list]]]
                       ) -> tuple[bool, bool]:
    """(API match, argument match) of one call against the allowed calls."""
    functions = [(function, allowed) for item in ground_truth for function, allowed in item.items()]
    candidates = [allowed for function, allowed in functions if function == name]
    return bool(candidates), any(_arguments_allowed(arguments, allowed) for allowed in candidates)


def _arguments_allowed(arguments: dict[str, Any], allowed: dict[str, list]) -> bool:
    if arguments.keys() - allowed.keys():
        return False
    return all(
        "" in values if key not in arguments else any(_value_allowed(value, arguments[key]) for value in values)
        for key, values in allowed.items()
    )


def _value_allowed(expected: Any, actual: Any) -> bool:
    """Strings normalized, numbers numerically (2 == 2.0), lists and objects element by element."""
    return expected != "" and match_value(expected, actual, "normalized")


def evaluate_eval_set(policy: Policy, entries: Sequence[EvalEntry], sampling: Sampling, batch_size: int = 16,
                      progress: Callable[[int], None] = lambda done: None) -> list[EvalSetRecord]:
    records = []
    for start in range(0, len(entries), batch_size):
        batch = entries[start:start + batch_size]
        replies = policy.chat([list(entry.messages) for entry in batch], [list(entry.tools) for entry in batch],
                              sampling, mode="tool_call")
        records.extend(_record(entry, reply) for entry, reply in zip(batch, replies))
        progress(len(records))
    return records


def _record(entry: EvalEntry, reply: Reply) -> EvalSetRecord:
    if reply.parse_error or not reply.message.tool_calls:
        return EvalSetRecord(entry.id, None, {}, reply.parse_error or "no tool call", False, False)
    call = reply.message.tool_calls[0].function
    _, error = check_call({"name": call.name, "arguments": call.arguments}, list(entry.tools))
    api, arguments = call_matches_truth(call.name, call.arguments, entry.ground_truth)
    return EvalSetRecord(entry.id, call.name, dict(call.arguments), error, api, arguments)


def summarize_eval_set(records: Sequence[EvalSetRecord]) -> dict[str, float | int]:
    """n and percentages: well-formed (a valid call to an offered function), API match, argument match (= correct)."""
    n = len(records)

    def percent(count: int) -> float:
        return round(100 * count / n, 2) if n else 0.0

    return {"n": n, "well_formed": percent(sum(r.well_formed for r in records)),
            "api_match": percent(sum(r.api_match for r in records)),
            "argument_match": percent(sum(r.argument_match for r in records))}
