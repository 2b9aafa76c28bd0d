"""Gold sets: held-out queries with the calls that solve them and the answer they should produce.

One JSONL file per tool (`toolenv/gold/<tool>.jsonl`). Evaluation compares a model's calls and answers to
these with `match_value` / `call_matches`; `check_entry` proves each entry right by running its own calls.
A gold set is never shown during exploration (tests keep its queries out of every spec).

The same format, one entry per line, is what `imaginarium eval --eval-set FILE` reads for tools of your own
(`evaluation.evalset`): there `id` and `tool` may be left out, and `imaginarium evalset draft` marks the
entries it writes `"draft": true` until a person has reviewed them. One line:

    {"id": "city-01", "tool": "city_info", "query": "How many people live in Lima?",
     "calls": [{"name": "city_info", "arguments": {"city": {"value": "Lima", "match": "normalized"},
                                                   "units": {"value": "metric", "match": "exact", "optional": true}}}],
     "answer": {"value": 10000000, "path": "population", "match": "numeric", "tolerance": 0.001}}

Argument rules: exact, normalized (case, punctuation and spacing aside; numbers within tolerance), numeric
(relative `tolerance`), set (a list in any order), any_of (`value` lists the accepted values, each compared
normalized); `"optional": true` lets the call leave the argument out. The answer (optional) is the value the
final answer must state, found at `path` in the last gold call's result.
"""
from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from toolenv.registry import Registry
from toolenv.runner import Limits, ToolRunner
from toolenv.spec import Tool, ToolSpec
from toolenv.validation import BadArguments, parse_arguments

GOLD_DIR = Path(__file__).parent / "gold"
ANSWER_RULES = ("exact", "normalized", "numeric", "set", "any_of", "contains")
ARGUMENT_RULES = ("exact", "normalized", "numeric", "set", "any_of")
DEFAULT_TOLERANCE = 1e-6


class GoldFormatError(ValueError):
    """A gold file that cannot be read as specified; the message names the file, the line and the field."""


@dataclass(frozen=True)
class Expected:
    """An expected value and the rule that compares an actual value to it."""

    value: Any
    match: str = "exact"
    tolerance: float = DEFAULT_TOLERANCE
    optional: bool = False  # arguments only: a call may leave it out

    def matches(self, actual: Any) -> bool:
        return match_value(self.value, actual, self.match, self.tolerance)


@dataclass(frozen=True)
class GoldAnswer(Expected):
    path: str = ""  # dotted path into the last call's result ("" = the whole result)


@dataclass(frozen=True)
class GoldCall:
    name: str
    arguments: dict[str, Expected]

    def argument_values(self) -> dict[str, Any]:
        """The arguments to run the gold call with (an any_of argument: its first accepted value)."""
        return {name: expected.value[0] if expected.match == "any_of" else expected.value
                for name, expected in self.arguments.items()}


@dataclass(frozen=True)
class GoldEntry:
    id: str
    tool: str
    query: str
    calls: tuple[GoldCall, ...]
    answer: GoldAnswer | None
    source: str  # "file:line", for messages
    draft: bool = False  # written by `imaginarium evalset draft`, not yet reviewed


# ---- matching ----------------------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Casefold, turn punctuation into spaces and collapse whitespace: "New York, NY" == "new york ny"."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    spaced = "".join(" " if unicodedata.category(char).startswith("P") else char for char in folded)
    return " ".join(spaced.split())


def match_value(expected: Any, actual: Any, rule: str = "exact", tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Whether actual matches expected under one of ANSWER_RULES (lists and objects compare element by element).

    exact: equal JSON (1 == 1.0, but true != 1). normalized: strings by normalize_text, numbers (or numeric
    strings) within tolerance. numeric: numbers within relative tolerance. set: same elements in any order,
    normalized. any_of: expected is a list of accepted values, one of which matches normalized. contains: the
    normalized expected text appears, as whole words, in the normalized actual text.
    """
    if rule == "exact":
        return _same_shape(expected, actual, _exact_leaf)
    if rule == "normalized":
        return _same_shape(expected, actual, lambda e, a: _normalized_leaf(e, a, tolerance))
    if rule == "numeric":
        return _same_shape(expected, actual, lambda e, a: _numbers_close(_as_number(e), _as_number(a), tolerance))
    if rule == "set":
        return isinstance(expected, list) and isinstance(actual, list) and _element_set(expected) == _element_set(actual)
    if rule == "any_of":
        return isinstance(expected, list) and any(match_value(value, actual, "normalized", tolerance) for value in expected)
    if rule == "contains":
        return f" {normalize_text(_as_text(expected))} " in f" {normalize_text(_as_text(actual))} "
    raise ValueError(f"unknown match rule {rule!r}; expected one of {list(ANSWER_RULES)}")


def _same_shape(expected: Any, actual: Any, leaf: Callable[[Any, Any], bool]) -> bool:
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            _same_shape(e, a, leaf) for e, a in zip(expected, actual)
        )
    if isinstance(expected, dict):
        return isinstance(actual, dict) and expected.keys() == actual.keys() and all(
            _same_shape(expected[key], actual[key], leaf) for key in expected
        )
    return leaf(expected, actual)


def _exact_leaf(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool) or expected is None or actual is None:
        return expected is actual or (type(expected) is type(actual) and expected == actual)
    if _is_number(expected) or _is_number(actual):
        return _is_number(expected) and _is_number(actual) and expected == actual
    return type(expected) is type(actual) and expected == actual


def _normalized_leaf(expected: Any, actual: Any, tolerance: float) -> bool:
    if _is_number(expected) or _is_number(actual):
        return _numbers_close(_as_number(expected), _as_number(actual), tolerance)
    if isinstance(expected, str) and isinstance(actual, str):
        return normalize_text(expected) == normalize_text(actual)
    return _exact_leaf(expected, actual)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_number(value: Any) -> float | None:
    """A number, or a string that spells one ("42", " 3.5 "); None for anything else (true is not 1)."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _numbers_close(expected: float | None, actual: float | None, tolerance: float) -> bool:
    if expected is None or actual is None:
        return False
    if expected == 0:
        return abs(actual) <= tolerance
    return math.isclose(actual, expected, rel_tol=tolerance)


def _element_set(items: list[Any]) -> set[str]:
    return {json.dumps(_normalized_copy(item), sort_keys=True) for item in items}


def _normalized_copy(value: Any) -> Any:
    if isinstance(value, str):
        return normalize_text(value)
    if _is_number(value):
        return float(value)
    if isinstance(value, list):
        return [_normalized_copy(item) for item in value]
    if isinstance(value, dict):
        return {key: _normalized_copy(item) for key, item in value.items()}
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def value_at(data: Any, path: str) -> Any:
    """Follow a dotted path ("days.0.high") into JSON data; LookupError naming the step that fails."""
    for step in path.split(".") if path else ():
        if isinstance(data, dict) and step in data:
            data = data[step]
        elif isinstance(data, list) and step.lstrip("-").isdigit() and -len(data) <= int(step) < len(data):
            data = data[int(step)]
        else:
            raise LookupError(f"path {path!r}: no {step!r} in {_as_text(data)[:200]}")
    return data


def call_matches(gold: GoldCall, name: str, arguments: dict[str, Any] | str | None, spec: ToolSpec | None = None) -> tuple[bool, str]:
    """Whether a model's call is the gold call: same tool, each gold argument matching under its rule.

    With the spec, an argument left out counts as its schema default, and an extra argument is fine if it
    only restates its default, since both calls then run identically. An optional gold argument may be left out.
    """
    if name != gold.name:
        return False, f"called {name!r}, expected {gold.name!r}"
    try:
        given = parse_arguments(name, arguments)
    except BadArguments as error:
        return False, str(error)
    properties = spec.parameters.get("properties", {}) if spec else {}
    defaults = {key: prop["default"] for key, prop in properties.items() if "default" in prop}
    for key, expected in gold.arguments.items():
        if key not in given and expected.optional:
            continue
        if key not in given and key not in defaults:
            return False, f"argument {key!r} missing"
        actual = given[key] if key in given else defaults[key]
        if not expected.matches(actual):
            return False, f"argument {key!r}: expected {expected.value!r} ({expected.match}), got {actual!r}"
    for key in given.keys() - gold.arguments.keys():
        if not (key in defaults and match_value(defaults[key], given[key], "normalized")):
            return False, f"unexpected argument {key!r}"
    return True, "matches"


# ---- checking an entry against the tools ----------------------------------------------------------


def check_entry(entry: GoldEntry, tools: ToolRunner | Registry | Iterable[Tool], limits: Limits = Limits()) -> tuple[bool, str]:
    """Run the entry's calls; ok if all succeed and the last result holds the expected answer at its path."""
    runner = tools if isinstance(tools, ToolRunner) else ToolRunner(tools, limits)
    for index, call in enumerate(entry.calls):
        observation = runner.call(call.name, call.argument_values())
        if not observation.ok:
            return False, f"{entry.id}: call {index} ({call.name}) failed: {observation.error}: {observation.message}"
    if entry.answer is None:
        return True, f"{entry.id}: calls ran"
    try:
        actual = value_at(observation.result, entry.answer.path)
    except LookupError as error:
        return False, f"{entry.id}: {error}"
    if not entry.answer.matches(actual):
        return False, f"{entry.id}: expected {entry.answer.value!r} ({entry.answer.match}) at {entry.answer.path!r}, got {actual!r}"
    return True, f"{entry.id}: ok"


# ---- loading and writing -------------------------------------------------------------------------


def load_gold(path: str | Path) -> list[GoldEntry]:
    """Read and validate one gold file; the first malformed line raises GoldFormatError."""
    path = Path(path)
    entries, seen = [], set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        entry = parse_entry(parse_line(line, where), where)
        if entry.tool != path.stem:
            raise GoldFormatError(f"{where}: field 'tool': {entry.tool!r} in a file for {path.stem!r}")
        if entry.id in seen:
            raise GoldFormatError(f"{where}: field 'id': {entry.id!r} appears twice")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def load_gold_dir(directory: str | Path = GOLD_DIR) -> dict[str, list[GoldEntry]]:
    """Every gold file in a directory, by tool name."""
    return {path.stem: load_gold(path) for path in sorted(Path(directory).glob("*.jsonl"))}


def parse_line(line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise GoldFormatError(f"{where}: not JSON ({error.msg} at column {error.colno})") from None


def parse_entry(record: Any, where: str, default_id: str | None = None) -> GoldEntry:
    """One entry; with `default_id` (an eval set's line), `id` may be left out and `tool` defaults to the first call's."""
    required = {"query", "calls"} if default_id is not None else {"id", "tool", "query", "calls"}
    fields = _object(record, "", {"id", "tool", "query", "calls", "answer", "draft"}, required, where)
    if not isinstance(fields["calls"], list) or not fields["calls"]:
        raise GoldFormatError(f"{where}: field 'calls': must be a non-empty list")
    calls = tuple(_parse_call(call, f"calls.{index}", where) for index, call in enumerate(fields["calls"]))
    fields = {"id": default_id, "tool": calls[0].name, **fields}
    for name in ("id", "tool", "query"):
        if not isinstance(fields[name], str) or not fields[name].strip():
            raise GoldFormatError(f"{where}: field '{name}': must be a non-empty string")
    if not isinstance(fields.get("draft", False), bool):
        raise GoldFormatError(f"{where}: field 'draft': must be true or false")
    answer = None if fields.get("answer") is None else _parse_answer(fields["answer"], where)
    return GoldEntry(fields["id"], fields["tool"], fields["query"], calls, answer, where, fields.get("draft", False))


def entry_json(entry: GoldEntry) -> dict[str, Any]:
    """An entry as one line of the format (what `parse_entry` reads back), defaults left out."""
    record: dict[str, Any] = {"id": entry.id, "tool": entry.tool, "query": entry.query, "calls": [
        {"name": call.name, "arguments": {name: _expected_json(expected) for name, expected in call.arguments.items()}}
        for call in entry.calls
    ]}
    if entry.answer is not None:
        record["answer"] = {**_expected_json(entry.answer), **({"path": entry.answer.path} if entry.answer.path else {})}
    if entry.draft:
        record["draft"] = True
    return record


def _expected_json(expected: Expected) -> dict[str, Any]:
    record = {"value": expected.value, "match": expected.match}
    if expected.tolerance != DEFAULT_TOLERANCE:
        record["tolerance"] = expected.tolerance
    if expected.optional:
        record["optional"] = True
    return record


def _parse_call(record: Any, field: str, where: str) -> GoldCall:
    fields = _object(record, field, {"name", "arguments"}, {"name", "arguments"}, where)
    if not isinstance(fields["name"], str) or not fields["name"]:
        raise GoldFormatError(f"{where}: field '{field}.name': must be a non-empty string")
    if not isinstance(fields["arguments"], dict):
        raise GoldFormatError(f"{where}: field '{field}.arguments': must be an object of {{name: {{value, match}}}}")
    arguments = {
        name: _parse_expected(spec, f"{field}.arguments.{name}", ARGUMENT_RULES, {"value", "match", "tolerance", "optional"}, where)
        for name, spec in fields["arguments"].items()
    }
    return GoldCall(fields["name"], arguments)


def _parse_answer(record: Any, where: str) -> GoldAnswer:
    expected = _parse_expected(record, "answer", ANSWER_RULES, {"value", "path", "match", "tolerance"}, where)
    path = record.get("path", "")
    if not isinstance(path, str):
        raise GoldFormatError(f"{where}: field 'answer.path': must be a string (\"\" for the whole result)")
    return GoldAnswer(expected.value, expected.match, expected.tolerance, path=path)


def _parse_expected(record: Any, field: str, rules: tuple[str, ...], allowed: set[str], where: str) -> Expected:
    fields = _object(record, field, allowed, {"value", "match"}, where)
    match = fields["match"]
    if match not in rules:
        raise GoldFormatError(f"{where}: field '{field}.match': must be one of {list(rules)}, got {match!r}")
    if match == "numeric" and _as_number(fields["value"]) is None and not isinstance(fields["value"], (list, dict)):
        raise GoldFormatError(f"{where}: field '{field}.value': a numeric match needs a number, got {fields['value']!r}")
    if match == "set" and not isinstance(fields["value"], list):
        raise GoldFormatError(f"{where}: field '{field}.value': a set match needs a list, got {fields['value']!r}")
    if match == "any_of" and (not isinstance(fields["value"], list) or not fields["value"]):
        raise GoldFormatError(f"{where}: field '{field}.value': an any_of match needs a non-empty list of accepted values, got {fields['value']!r}")
    tolerance = fields.get("tolerance", DEFAULT_TOLERANCE)
    if "tolerance" in fields and (match not in ("numeric", "normalized", "any_of") or not _is_number(tolerance) or tolerance < 0):
        raise GoldFormatError(f"{where}: field '{field}.tolerance': a non-negative number, for numeric, normalized or any_of matches only")
    optional = fields.get("optional", False)
    if not isinstance(optional, bool):
        raise GoldFormatError(f"{where}: field '{field}.optional': must be true or false")
    return Expected(fields["value"], match, float(tolerance), optional)


def _object(record: Any, field: str, allowed: set[str], required: set[str], where: str) -> dict[str, Any]:
    """The record as a dict with its required keys and no others (a misspelt key would otherwise be ignored)."""
    prefix = f"{field}." if field else ""
    if not isinstance(record, dict):
        raise GoldFormatError(f"{where}: field '{field}': must be an object" if field else f"{where}: an entry must be a JSON object")
    missing = sorted(required - record.keys())
    if missing:
        raise GoldFormatError(f"{where}: field '{prefix}{missing[0]}': missing")
    unknown = sorted(record.keys() - allowed)
    if unknown:
        raise GoldFormatError(f"{where}: field '{prefix}{unknown[0]}': unknown field (allowed: {sorted(allowed)})")
    return record
