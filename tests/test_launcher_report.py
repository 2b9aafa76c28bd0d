"""The run report: the summary of learning on each round's tools and forgetting, with and without replay, and the
per-tool table with each score's bootstrap interval."""
from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace

from evaluation.metrics import summarize
from evaluation.records import Flags
from launcher.report import _per_tool, _summary


def evaluation(*correct_by_round: float) -> dict:
    return {"version": 0, "by_round": {str(r): {"n": 15, "correct": c} for r, c in enumerate(correct_by_round, 1)}}


def test_the_summary_states_learning_and_forgetting_with_and_without_replay():
    evaluations = {"base": evaluation(20.0, 0.0), "round 1": evaluation(40.0, 6.7), "round 2": evaluation(33.3, 20.0),
                   "round 2 no replay": evaluation(13.3, 26.7)}
    lines = _summary(evaluations, [1, 2])
    assert lines[0] == "## Summary"
    assert ("- **Learning**: round 1's tools (15 gold queries), base model 20.0% → after round 1 40.0% "
            "(+20.0 points).") in lines
    assert "- **Learning**: round 2's tools (15 gold queries), base model 0.0% → after round 2 20.0% (+20.0 points)." in lines
    assert ("- **Forgetting**: round 1's tools after round 1 40.0% → after round 2 33.3% with replay (-6.7 points); "
            "trained without replay 13.3%.") in lines
    assert not any("round 2's tools after round 2" in line for line in lines)  # nothing came after round 2


def test_no_summary_before_anything_was_evaluated_after_training():
    assert _summary({"base": evaluation(20.0, 0.0)}, [1, 2]) == []



def test_the_per_tool_table_gives_each_score_its_bootstrap_interval():
    scored = [SimpleNamespace(flags=Flags(correct=i < 7)) for i in range(10)]  # what summarize reads of a record
    learned = asdict(summarize(scored))
    saved_before_intervals = {key: value for key, value in learned.items() if key != "ci95"}
    lines = _per_tool({"base": {"by_tool": {"add_to_date": saved_before_intervals}},
                       "round 1": {"by_tool": {"add_to_date": learned}}}, {1: ["add_to_date", "get_city_info"]})
    low, high = learned["ci95"]["correct"]
    assert low < 70.0 < high and "[95% bootstrap interval]" in lines[0]
    assert f"| round 1 | 70.0 [{low:.1f}–{high:.1f}] | – |" in lines
    assert "| base | 70.0 | – |" in lines
