"""Eval sets for tools of your own: gold JSONL files read for `imaginarium eval --eval-set`, and drafted from a
run's kept episodes by `imaginarium evalset draft`.

The format is the built-in gold sets' (`toolenv.gold`), one entry per line, so one reader, one set of match
rules and one report serve both; in an eval set `id` (default `<file stem>-<line>`) and `tool` (default: the
first gold call's) may be left out. The reader checks every line, also against the tools the sources offer
(an unknown tool, an argument the tool does not take), and reports every malformed line, each on one line
naming the file, the line and the field, so a hand-written file is fixed in one pass.

A draft is what exploration found, not what is right: its query is the model's own, its calls are the ones
that ran, its answer a value of their result that the model's answer stated. Entries stay `"draft": true`
until a person has checked them, and `imaginarium eval` refuses a file that still holds drafts unless told
`--allow-drafts` (then it says how many there are, and the report's meta counts them).
"""
from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any, Iterable

from actors.exploit import mentioned, requested_values, states, trial_turns
from actors.search import FINISH_NAME
from toolenv.validation import is_default
from replay.episode import Episode, Message
from toolenv.gold import (
    DEFAULT_TOLERANCE, Expected, GoldAnswer, GoldCall, GoldEntry, GoldFormatError, entry_json, parse_entry, parse_line,
)
from toolenv.registry import Registry
from toolenv.runner import ToolRunner, unknown_tool_message
from toolenv.spec import ToolSpec

MAX_ERRORS = 20  # lines of errors shown; past that, a count
ANSWER_TOLERANCE = 1e-3  # a number stated in words is rounded (91.27 for 91.2734): the built-in sets' tolerance


class EvalSetFileError(ValueError):
    """An eval set with malformed lines: `lines` holds one message per mistake, each naming file, line and field."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


# ---- reading ------------------------------------------------------------------------------------------


def load_gold_set(path: str | Path, registry: Registry | None = None) -> list[GoldEntry]:
    """Every entry of an eval set, checked against `registry` when given; EvalSetFileError lists every mistake."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise EvalSetFileError([f"{path}: cannot read ({error.strerror or error})"]) from None
    entries: list[GoldEntry] = []
    errors: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = parse_line(line, where)
            if not entries and not errors and isinstance(record, dict) and {"question", "function"} <= record.keys():
                raise EvalSetFileError([f"{path}: BFCL questions, not gold entries: give their ground truth with "
                                        "--answers FILE"])
            entry = parse_entry(record, where, default_id=f"{path.stem}-{number}")
        except GoldFormatError as error:
            errors.append(str(error))
            continue
        if entry.id in first_line:
            errors.append(f"{where}: field 'id': {entry.id!r} appears twice (first on line {first_line[entry.id]})")
            continue
        first_line[entry.id] = number
        problems = [] if entry.tool in {call.name for call in entry.calls} else [
            f"field 'tool': {entry.tool!r} is not the tool of any of the gold calls"]
        problems += [] if registry is None else tool_problems(entry, registry)
        errors += [f"{where}: {problem}" for problem in problems]
        if not problems:
            entries.append(entry)
    if not entries and not errors:
        errors.append(f"{path}: no entries")
    if errors:
        shown = errors[:MAX_ERRORS]
        raise EvalSetFileError(shown + [f"... and {len(errors) - len(shown)} more"] * (len(errors) > len(shown)))
    return entries


def tool_problems(entry: GoldEntry, registry: Registry) -> list[str]:
    """What in an entry the tools do not offer: a tool name, or an argument its schema does not take."""
    problems = []
    for index, call in enumerate(entry.calls):
        if call.name not in registry:
            problems.append(f"field 'calls.{index}.name': --tools-from offers {unknown_tool_message(call.name, registry.names())}")
            continue
        schema = registry.get(call.name).spec.parameters
        if schema.get("additionalProperties", False) is not False:
            continue
        parameters = schema.get("properties", {})
        problems += [f"field 'calls.{index}.arguments.{name}': {call.name!r} takes no such argument "
                     f"(it takes: {', '.join(parameters) or 'none'})" for name in call.arguments if name not in parameters]
    return problems


def by_tool(entries: Iterable[GoldEntry]) -> dict[str, list[GoldEntry]]:
    """Entries grouped by their tool, in file order: the shape `evaluation.builtin` takes gold sets in."""
    groups: dict[str, list[GoldEntry]] = collections.defaultdict(list)
    for entry in entries:
        groups[entry.tool].append(entry)
    return dict(groups)


# ---- drafting from a run --------------------------------------------------------------------------------


def draft_entries(episodes: Iterable[Episode], runner: ToolRunner, per_tool: int = 10
                  ) -> tuple[list[GoldEntry], collections.Counter]:
    """Draft entries from episodes, at most `per_tool` per tool and one per distinct set of calls, and why the
    other episodes gave none (reason → count)."""
    entries: list[GoldEntry] = []
    skipped: collections.Counter = collections.Counter()
    seen: set[str] = set()
    per: collections.Counter = collections.Counter()
    for episode in episodes:
        entry, reason = draft_entry(episode, runner)
        calls = "" if entry is None else json.dumps([[c.name, c.argument_values()] for c in entry.calls], sort_keys=True)
        if entry is not None and calls in seen:
            reason = "same calls as an earlier entry"
        elif entry is not None and per[entry.tool] >= per_tool:
            reason = f"over --per-tool {per_tool}"
        if reason is not None:
            skipped[reason] += 1
            continue
        seen.add(calls)
        per[entry.tool] += 1
        entries.append(entry)
    return entries, skipped


def draft_entry(episode: Episode, runner: ToolRunner) -> tuple[GoldEntry | None, str | None]:
    """One draft entry, or None and why not. The calls run again now: per tool, the last call that succeeds is
    the gold call (earlier ones were the model's tries); the answer is a value of the last result that the
    episode's answer stated."""
    turns = trial_turns(episode.query, episode.messages)
    calls = [call.function for message in turns if message.role == "assistant" for call in message.tool_calls
             if call.function.name != FINISH_NAME]
    if not calls:
        return None, "no tool call"
    if any(call.name not in runner.registry for call in calls):
        return None, "calls a tool not in --tools-from"
    succeeded: dict[str, tuple[dict[str, Any], Any]] = {}
    for call in calls:
        observation = runner.call(call.name, call.arguments)
        if observation.ok:
            succeeded.pop(call.name, None)  # re-inserted: the order of the calls that count
            succeeded[call.name] = (dict(call.arguments), observation.result)
    if not succeeded:
        return None, "no call succeeds when run again"
    gold = tuple(GoldCall(name, {key: argument_rule(runner.registry.get(name).spec, key, value)
                                 for key, value in arguments.items()})
                 for name, (arguments, _) in succeeded.items())
    tool = next((name for name in episode.tools if name in succeeded), gold[0].name)
    inputs = [value for arguments, _ in succeeded.values() for value in arguments.values()]
    answer = draft_answer(episode, turns, list(succeeded.values())[-1][1], inputs)
    return GoldEntry(f"{tool}-{episode.id[:10]}", tool, episode.query, gold, answer, "", draft=True), None


def argument_rule(spec: ToolSpec, name: str, value: Any) -> Expected:
    """The rule a reviewer most often wants: text case-insensitive, numbers numeric, choices and the rest exact;
    optional when the value is the parameter's default (leaving it out runs the same call)."""
    schema = spec.parameters.get("properties", {}).get(name, {})
    optional = is_default(spec.parameters, name, value)
    if "enum" in schema or isinstance(value, bool):
        match = "exact"
    elif isinstance(value, (int, float)):
        match = "numeric"
    elif isinstance(value, str):
        match = "normalized"
    else:
        match = "exact"
    return Expected(value, match, DEFAULT_TOLERANCE, optional)


def draft_answer(episode: Episode, turns: list[Message], result: Any, inputs: list[Any]) -> GoldAnswer | None:
    """A value of the result the episode's answer states and the query did not (a field the request names first),
    with its path; None when the episode has no answer or states none."""
    answer = episode.outcome.final_answer
    if not answer:
        return None
    stated = [(path, value) for path, value in _leaves(result, "")
              if not (isinstance(value, str) and len(value.strip()) < 3) and not _echoes(value, inputs)
              and not mentioned(value, episode.query) and states(value, answer)]
    if not stated:
        return None
    requested = requested_values(episode.query, turns)
    path, value = next((item for item in stated if item[1] in requested), stated[0])
    if isinstance(value, str):
        return GoldAnswer(value, "normalized", path=path)
    return GoldAnswer(value, "numeric", ANSWER_TOLERANCE, path=path)


def _echoes(value: Any, inputs: list[Any]) -> bool:
    """Is a result value one of the call's own arguments (a city the result repeats answers nothing)?"""
    if isinstance(value, str):
        return any(isinstance(given, str) and given.strip().casefold() == value.strip().casefold() for given in inputs)
    return any(isinstance(given, (int, float)) and not isinstance(given, bool) and given == value for given in inputs)


def _leaves(data: Any, path: str) -> Iterable[tuple[str, Any]]:
    """(dotted path, value) of every text or number in JSON data (a flag is no answer to state)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _leaves(value, f"{path}.{index}" if path else str(index))
    elif isinstance(data, (str, int, float)) and not isinstance(data, bool):
        yield path, data


def write_entries(entries: Iterable[GoldEntry], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(entry_json(entry), ensure_ascii=False) + "\n" for entry in entries))
