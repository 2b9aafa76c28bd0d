"""STE's call metrics and ToolEval's pass rate over query records, with breakdowns.

Definitions (every percentage is over all records of the group, so argument match ≤ API match, and
argument match ≤ correct, since correct also counts a later call that gets it right):
- well-formed: every assistant turn of the chosen path is a valid call to an offered tool (Finish included);
- API match: the first real (non-Finish) call names the gold tool;
- argument match: that same call matches the gold call's arguments under their rules (spec defaults count);
- execution match: every gold call's result is returned by some call of the path to the same tool, both run
  (see `execution`): correct judged by results, so a spelling the rules did not foresee still counts;
- correct: every gold call is matched by some call of the path (right API and arguments);
- answered: the path ends in Finish with give_answer;
- pass rate: answered and the judge accepts the answer (see `judges`).

Each percentage comes with its 95% percentile-bootstrap interval (`bootstrap_interval`): a tool has 10-15
gold queries, so its score moves in 7-10 point steps, and a difference inside the intervals is noise.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from evaluation.records import Flags, QueryRecord, Turn
from toolenv.gold import GoldCall, call_matches
from toolenv.spec import ToolSpec

Judge = Callable[[Sequence[QueryRecord]], list[bool]]  # verdicts for records whose flags are filled
Execution = Callable[[Sequence[Turn], Sequence[GoldCall]], bool]  # evaluation.execution.ExecutionMatch


def well_formed(turns: Sequence[Turn]) -> bool:
    return bool(turns) and all(turn.error is None for turn in turns)


def first_real_call(turns: Sequence[Turn]) -> Turn | None:
    """The first turn that calls something other than Finish (valid or not); None if there is none."""
    return next((turn for turn in turns if turn.name is not None and not turn.is_finish), None)


def api_match(turns: Sequence[Turn], gold: GoldCall) -> bool:
    first = first_real_call(turns)
    return first is not None and first.name == gold.name


def argument_match(turns: Sequence[Turn], gold: GoldCall, spec: ToolSpec | None = None) -> bool:
    first = first_real_call(turns)
    return first is not None and call_matches(gold, first.name, first.arguments, spec)[0]


def correct(turns: Sequence[Turn], gold_calls: Sequence[GoldCall], specs: Mapping[str, ToolSpec] = {}) -> bool:
    calls = [turn for turn in turns if turn.name is not None and not turn.is_finish]
    return all(
        any(call_matches(gold, call.name, call.arguments, specs.get(gold.name))[0] for call in calls)
        for gold in gold_calls
    )


def call_flags(record: QueryRecord, specs: Mapping[str, ToolSpec] = {}, execution: Execution | None = None) -> Flags:
    """Every flag but `solved`, which needs a judge; `exec_match` only with an execution (it runs the tools)."""
    first_gold = record.gold.calls[0]
    return Flags(
        well_formed=well_formed(record.turns),
        api_match=api_match(record.turns, first_gold),
        argument_match=argument_match(record.turns, first_gold, specs.get(first_gold.name)),
        correct=correct(record.turns, record.gold.calls, specs),
        answered=record.final_answer is not None,
        exec_match=execution is not None and execution(record.turns, record.gold.calls),
    )


def score(records: Sequence[QueryRecord], judge: Judge, specs: Mapping[str, ToolSpec] = {},
          execution: Execution | None = None) -> list[QueryRecord]:
    """The records with their flags filled; the judge sees only answered records (an unanswered one fails)."""
    flagged = [replace(record, flags=call_flags(record, specs, execution)) for record in records]
    answered = [record for record in flagged if record.flags.answered]
    verdicts = iter(judge(answered) if answered else [])
    return [
        replace(record, flags=replace(record.flags, solved=bool(next(verdicts)))) if record.flags.answered else record
        for record in flagged
    ]


def bootstrap_interval(outcomes: Sequence[bool | float], resamples: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of per-query outcomes (0/1 correctness): where the score
    of another draw of as many queries would fall. Seeded, so a report is the same every time it is written;
    (0, 0) for no outcomes."""
    values = np.asarray(outcomes, dtype=float)
    if values.size == 0:
        return 0.0, 0.0
    draws = np.random.default_rng(seed).integers(0, values.size, size=(resamples, values.size))
    tail = 50 * (1 - confidence)
    low, high = np.percentile(values[draws].mean(axis=1), [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Summary:
    """Percentages (0-100, two decimals) over `n` records, and each one's 95% bootstrap interval by metric."""

    n: int
    well_formed: float
    api_match: float
    argument_match: float
    exec_match: float
    correct: float
    answered: float
    pass_rate: float
    ci95: dict[str, tuple[float, float]] = field(default_factory=dict)


METRICS = ("well_formed", "api_match", "argument_match", "exec_match", "correct", "answered", "pass_rate")
FLAGS = dict(zip(METRICS, ("well_formed", "api_match", "argument_match", "exec_match", "correct", "answered", "solved")))


def summarize(records: Sequence[QueryRecord]) -> Summary:
    if any(record.flags is None for record in records):
        raise ValueError("summarize needs scored records (metrics.score)")
    n = len(records)
    outcomes = {metric: [getattr(record.flags, flag) for record in records] for metric, flag in FLAGS.items()}
    percents = {metric: round(100 * sum(values) / n, 2) if n else 0.0 for metric, values in outcomes.items()}
    intervals = {metric: tuple(round(100 * bound, 2) for bound in bootstrap_interval(values))
                 for metric, values in outcomes.items()}
    return Summary(n, **percents, ci95=intervals)


def breakdown(records: Iterable[QueryRecord], by: str) -> dict[str, Summary]:
    """One summary per value of `by` ("tool", "category" or "round"), in sorted order."""
    groups: dict[str, list[QueryRecord]] = defaultdict(list)
    for record in records:
        groups[str(getattr(record, by))].append(record)
    return {key: summarize(groups[key]) for key in sorted(groups, key=_natural)}


def _natural(key: str) -> tuple:
    return (0, int(key), "") if key.isdigit() else (1, 0, key)
