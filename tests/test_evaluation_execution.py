"""Execution match: results compared as JSON in any order within a tolerance; two spellings of one call count the
same, calls with different results do not, and each distinct call runs once."""
from __future__ import annotations

import pytest

from evaluation.execution import ExecutionMatch, same_result
from evaluation.judges import rule_judge
from evaluation.metrics import argument_match, score, summarize
from evaluation.records import QueryRecord, Turn
from toolenv.gold import Expected, GoldCall, GoldEntry
from toolenv.registry import Registry, builtin_registry
from toolenv.runner import ToolRunner
from toolenv.spec import Tool, ToolSpec

RUNNER = ToolRunner(builtin_registry())
SEVEN_DAYS = GoldCall("add_to_date", {"date": Expected("2024-02-10", "normalized"), "days": Expected(7, "numeric")})


@pytest.mark.parametrize(("expected", "actual", "same"), [
    ({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, True),
    ([1, 2, 3], [3, 1, 2], True),  # lists in any order
    ([{"x": [1, 2]}, {"x": [3]}], [{"x": [3]}, {"x": [2, 1]}], True),  # inner lists too
    ([1, 1, 2], [1, 2, 2], False),  # a multiset, not a set
    ([1, 2], [1, 2, 2], False),
    (1, 1.0, True),
    (1.0, 1.0 + 5e-7, True),  # relative 1e-6
    (1.0, 1.0 + 5e-6, False),
    (0.0, 5e-10, True),  # absolute 1e-9 near zero
    (0.0, 5e-9, False),
    ([0.3, 0.1 + 0.2], [0.30000000000000004, 0.3], True),
    (True, 1, False),  # a flag is no number
    (None, 0, False),
    ("Oslo", "oslo", False),  # text compares exactly: the tool answered differently
    ({"a": 1}, {"a": 1, "b": 2}, False),
    ("1", 1, False),
])
def test_same_result(expected, actual, same):
    assert same_result(expected, actual) is same
    assert same_result(actual, expected) is same


def record(*turns: Turn, gold: GoldCall = SEVEN_DAYS) -> QueryRecord:
    entry = GoldEntry("q", gold.name, "What date is a week after 10 February 2024?", (gold,), None, "test:1")
    return QueryRecord(id="q", tool=gold.name, category="Dates", round=2, query=entry.query, gold=entry, turns=turns,
                       final_answer=None)


def test_two_spellings_with_one_result_match_and_different_results_do_not():
    execution = ExecutionMatch(RUNNER)
    week = Turn("add_to_date", {"date": "2024-02-10", "weeks": 1})
    assert execution([week], [SEVEN_DAYS]) and not argument_match([week], SEVEN_DAYS)  # only execution sees it
    assert execution([Turn("add_to_date", {"date": "2024-02-10", "days": 7})], [SEVEN_DAYS])
    assert not execution([Turn("add_to_date", {"date": "2024-02-10", "days": 8})], [SEVEN_DAYS])
    assert not execution([Turn("add_to_date", {"date": "2024-02-10", "weeks": 1}, error="not offered")], [SEVEN_DAYS])
    assert not execution([], [SEVEN_DAYS])
    # a later call of the path may reproduce it (as `correct` counts it); a gold call that fails matches nothing
    assert execution([Turn("add_to_date", {"date": "2024-02-10", "days": 8}), week], [SEVEN_DAYS])
    broken = GoldCall("add_to_date", {"date": Expected("not a date", "exact"), "days": Expected(7, "exact")})
    assert not execution([Turn("add_to_date", {"date": "not a date", "days": 7})], [broken])


def test_score_fills_exec_match_beside_argument_match():
    records = [record(Turn("add_to_date", {"date": "2024-02-10", "weeks": 1})),
               record(Turn("add_to_date", {"date": "2024-02-10", "days": 7})),
               record(Turn("add_to_date", {"date": "2024-02-10", "days": 8}))]
    scored = score(records, rule_judge, execution=ExecutionMatch(RUNNER))
    assert [(r.flags.argument_match, r.flags.exec_match) for r in scored] == [(False, True), (True, True), (False, False)]
    summary = summarize(scored)
    assert (summary.argument_match, summary.exec_match) == (33.33, 66.67) and "exec_match" in summary.ci95
    assert not any(r.flags.exec_match for r in score(records, rule_judge))  # no execution given, none claimed


def test_each_distinct_call_runs_once():
    runs = []

    def area(width: float, height: float) -> float:
        runs.append((width, height))
        return width * height

    spec = ToolSpec("area", "Area of a rectangle.", "Geometry", {
        "type": "object", "properties": {"width": {"type": "number"}, "height": {"type": "number"}},
        "required": ["width", "height"]})
    execution = ExecutionMatch(ToolRunner(Registry([Tool(spec, area)])))
    gold = GoldCall("area", {"width": Expected(2, "numeric"), "height": Expected(3, "numeric")})
    swapped, same = Turn("area", {"width": 3, "height": 2}), Turn("area", {"height": 3, "width": 2})
    assert execution([swapped], [gold]) and execution([same], [gold]) and execution([swapped, same], [gold])
    assert sorted(runs) == [(2, 3), (3, 2)]
