"""The run report's summary: learning on each round's tools and forgetting, with and without replay."""
from __future__ import annotations

from launcher.report import _summary


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
