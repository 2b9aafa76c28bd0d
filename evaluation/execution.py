"""Execution match: a call is right when it returns what the gold call returns, however it is spelled.

Argument match reads the arguments under per-argument rules, so a gold set must foresee every spelling
("NYC" and "New York", 0.5 and "50%", a default left out). Running both calls and comparing results
needs no foresight: two calls that give the same result are the same call for the user. Results compare
as JSON data with object keys and list items in any order and numbers within a tolerance (relative 1e-6
or absolute 1e-9). A tool that answers the same call differently (time, randomness) can fail it, and two
calls that differ can agree by chance (both find nothing), so read it beside argument match.
"""
from __future__ import annotations

import json
import math
from typing import Any, Sequence

from evaluation.records import Turn
from toolenv.gold import GoldCall
from toolenv.observation import Observation
from toolenv.runner import ToolRunner

REL_TOL = 1e-6
ABS_TOL = 1e-9


def same_result(expected: Any, actual: Any, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL) -> bool:
    """Equal JSON data, lists in any order, numbers within rel_tol or abs_tol (1 == 1.0, but true != 1)."""
    if _is_number(expected) and _is_number(actual):
        return math.isclose(expected, actual, rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            same_result(expected[key], actual[key], rel_tol, abs_tol) for key in expected)
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return False
        return _pairwise(expected, actual, rel_tol, abs_tol) or \
            _pairwise(sorted(expected, key=_order), sorted(actual, key=_order), rel_tol, abs_tol)
    return type(expected) is type(actual) and expected == actual


def _pairwise(expected: list, actual: list, rel_tol: float, abs_tol: float) -> bool:
    return all(same_result(e, a, rel_tol, abs_tol) for e, a in zip(expected, actual))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _order(value: Any) -> str:
    """A sort key under which equal items (numbers to 6 significant digits, lists in any order) sit at the same
    place in both lists."""
    return json.dumps(_rounded(value), sort_keys=True, ensure_ascii=False)


def _rounded(value: Any) -> Any:
    if _is_number(value):
        return float(f"{value:.6g}")
    if isinstance(value, list):  # in a canonical order too: inner lists compare in any order
        return sorted((_rounded(item) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


class ExecutionMatch:
    """Runs calls through the runner, each distinct call once (so a call spelled like the gold call returns the
    very result the gold call does), and decides whether a path's calls reproduce every gold call's result."""

    def __init__(self, runner: ToolRunner, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL):
        self.runner = runner
        self.rel_tol, self.abs_tol = rel_tol, abs_tol
        self._results: dict[str, Observation] = {}

    def result(self, name: str, arguments: dict[str, Any]) -> Observation:
        key = json.dumps([name, arguments], sort_keys=True, ensure_ascii=False)
        if key not in self._results:
            self._results[key] = self.runner.call(name, arguments)
        return self._results[key]

    def __call__(self, turns: Sequence[Turn], gold_calls: Sequence[GoldCall]) -> bool:
        """Every gold call that runs is matched by a valid call of the path to the same tool with the same result;
        a gold call that fails to run matches nothing."""
        calls = [turn for turn in turns if turn.name is not None and not turn.is_finish and turn.error is None]
        return all(self._reproduced(gold, calls) for gold in gold_calls)

    def _reproduced(self, gold: GoldCall, calls: list[Turn]) -> bool:
        expected = self.result(gold.name, gold.argument_values())
        if not expected.ok:
            return False
        for call in calls:
            if call.name == gold.name:
                actual = self.result(call.name, call.arguments)
                if actual.ok and same_result(expected.result, actual.result, self.rel_tol, self.abs_tol):
                    return True
        return False
