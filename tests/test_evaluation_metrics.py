"""Metrics, judges, win rate and reports on hand-made records with known values (no model, no search)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from evaluation.execution import ExecutionMatch
from evaluation.judges import LLMJudge, WinRate, answer_solves, rule_judge, rule_pair_judge, win_rate
from evaluation.metrics import bootstrap_interval, breakdown, call_flags, score, summarize
from evaluation.records import Flags, QueryRecord, Turn, path_turns
from evaluation.report import builtin_markdown, builtin_report, win_rate_markdown, write_report
from scripted import ScriptedPolicy, call, finish, text
from toolenv.gold import Expected, GoldAnswer, GoldCall, GoldEntry
from toolenv.registry import builtin_registry
from toolenv.runner import ToolRunner

REGISTRY = builtin_registry()
SPECS = {name: REGISTRY.get(name).spec for name in ("add_to_date", "get_city_info")}
ADD = GoldCall("add_to_date", {"date": Expected("2024-02-10", "normalized"), "days": Expected(90, "numeric")})
CITY = GoldCall("get_city_info", {"city": Expected("Karachi", "normalized")})


def entry(gold_call=ADD, answer: GoldAnswer | None = GoldAnswer("2024-05-10", "normalized"), id="q") -> GoldEntry:
    return GoldEntry(id, gold_call.name, "a query", (gold_call,), answer, "test:1")


def record(*turns: Turn, answer: str | None = None, gold=None, id="q", tool="add_to_date", category="Dates",
           round=2, gave_up=False) -> QueryRecord:
    return QueryRecord(id=id, tool=tool, category=category, round=round, query="a query", gold=gold or entry(id=id),
                       turns=turns, final_answer=answer, gave_up=gave_up)


def good(**arguments) -> Turn:
    return Turn("add_to_date", arguments or {"date": "2024-02-10", "days": 90})


def done(answer="2024-05-10") -> Turn:
    return Turn("Finish", {"return_type": "give_answer", "final_answer": answer})


GIVE_UP = Turn("Finish", {"return_type": "give_up_and_restart", "final_answer": ""})


# ---- STE's call metrics -----------------------------------------------------------------------------


def test_a_perfect_record_has_every_flag():
    [scored] = score([record(good(), done(), answer="It is 2024-05-10.")], rule_judge, SPECS)
    assert scored.flags == Flags(well_formed=True, api_match=True, argument_match=True, correct=True, answered=True,
                                 solved=True)


@pytest.mark.parametrize("turns, expected", [
    # well-formed but the wrong tool: no API match, nothing after it
    ((Turn("get_city_info", {"city": "Paris"}), done()), Flags(True, False, False, False, True)),
    # the right tool with a wrong argument
    ((good(date="2024-02-10", days=30), done()), Flags(True, True, False, False, True)),
    # a spec default restated ("years": 0) still matches; a wrong extra argument does not
    ((good(date="2024-02-10", days=90, years=0), done()), Flags(True, True, True, True, True)),
    ((good(date="2024-02-10", days=90, years=1), done()), Flags(True, True, False, False, True)),
    # a first call that misses, then the right one: correct, but API/argument match judge the first real call
    ((Turn("get_city_info", {"city": "Paris"}), good(), done()), Flags(True, False, False, True, True)),
    ((good(days=30, date="2024-02-10"), good(), done()), Flags(True, True, False, True, True)),
    # a text turn breaks well-formedness but the call after it still counts
    ((Turn(None, error="no tool call: 'hmm'"), good(), done()), Flags(False, True, True, True, True)),
    # a call that fails its schema is not well-formed, and its arguments do not match
    ((Turn("add_to_date", {"date": "2024-02-10", "days": "ninety"}, error="schema"), done()),
     Flags(False, True, False, False, True)),
    # give-up and no answer at all
    ((GIVE_UP,), Flags(True, False, False, False, False)),
    ((), Flags(False, False, False, False, False)),
])
def test_call_flags(turns, expected):
    answered = any(turn.is_finish and turn.arguments.get("return_type") == "give_answer" for turn in turns)
    assert call_flags(record(*turns, answer="x" if answered else None), SPECS) == expected


def test_summary_percentages_nest_and_breakdowns_sum_up():
    records = [
        record(good(), done(), answer="2024-05-10", id="a"),  # everything
        record(good(days=30, date="2024-02-10"), done(), answer="2024-03-11", id="b"),  # wrong argument, wrong answer
        record(GIVE_UP, id="c", gave_up=True),  # gave up
        record(Turn("get_city_info", {"city": "Karachi"}), done(), answer="14.9 million", id="d", tool="get_city_info",
               category="Geography", round=1, gold=entry(CITY, GoldAnswer(14910000, "numeric", 0.001), id="d")),
    ]
    scored = score(records, rule_judge, SPECS)
    summary = summarize(scored)
    assert (summary.n, summary.well_formed, summary.api_match, summary.argument_match) == (4, 100.0, 75.0, 50.0)
    assert (summary.correct, summary.answered, summary.pass_rate) == (50.0, 75.0, 25.0)  # "14.9 million" ≠ 14910000
    for by in ("tool", "category", "round"):
        groups = breakdown(scored, by)
        assert sum(group.n for group in groups.values()) == 4
        assert sum(group.pass_rate * group.n for group in groups.values()) == pytest.approx(summary.pass_rate * 4, abs=0.1)
    assert list(breakdown(scored, "round")) == ["1", "2"]
    with pytest.raises(ValueError, match="scored"):
        summarize(records)
    corrects = [record.flags.correct for record in scored]
    assert summary.ci95["correct"] == tuple(round(100 * bound, 2) for bound in bootstrap_interval(corrects))
    assert summary.ci95["correct"][0] <= summary.correct <= summary.ci95["correct"][1]
    assert summary.ci95["well_formed"] == (100.0, 100.0) and set(summary.ci95) == set(summary.__dict__) - {"n", "ci95"}


def test_the_bootstrap_interval_on_known_samples():
    assert bootstrap_interval([1] * 10) == (1.0, 1.0) and bootstrap_interval([0] * 10) == (0.0, 0.0)
    assert bootstrap_interval([]) == (0.0, 0.0)
    # 5 of 10: a resample's mean is Binomial(10, 0.5) / 10, whose 2.5% and 97.5% quantiles are 0.2 and 0.8
    half = [True, False] * 5
    independent = np.quantile(np.random.default_rng(1).binomial(10, 0.5, 200_000) / 10, [0.025, 0.975])
    assert bootstrap_interval(half) == pytest.approx(tuple(independent)) == (0.2, 0.8)
    assert bootstrap_interval(half, seed=7) == bootstrap_interval(half, seed=7)  # seeded: a report repeats
    # 120 of 400: close to the normal approximation 0.3 ± 1.96·sqrt(0.3·0.7/400) = 0.3 ± 0.045
    low, high = bootstrap_interval([1] * 120 + [0] * 280)
    assert low == pytest.approx(0.255, abs=0.01) and high == pytest.approx(0.345, abs=0.01)
    assert bootstrap_interval([1] * 12 + [0] * 28) != (low, high)  # fewer queries, a wider interval
    assert np.subtract(*bootstrap_interval([1] * 12 + [0] * 28)) < low - high


def test_path_turns_checks_calls_against_the_offered_tools():
    tools = [REGISTRY.get("add_to_date").spec.openai()]
    from actors.search import FINISH
    messages = [call("add_to_date", date="2024-02-10", days=90), call("get_city_info", city="Paris"),
                call("add_to_date", days=3), text("I think so"), finish("done")]
    turns = path_turns(messages, [*tools, FINISH])
    assert [turn.error is None for turn in turns] == [True, False, False, False, True]
    assert "unknown tool" in turns[1].error and "date" in turns[2].error and turns[3].name is None


# ---- pass rate -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer, gold, solved", [
    ("Karachi has about 14,910,000 people.", GoldAnswer(14910000, "numeric", 0.001), True),
    ("Karachi has 14,920,000 people.", GoldAnswer(14910000, "numeric", 0.001), True),  # within 0.1 %
    ("Karachi has 15,000,000 people.", GoldAnswer(14910000, "numeric", 0.001), False),
    ("100 USD is 91.27 EUR", GoldAnswer(91.27, "numeric", 0.001), True),
    ("100 USD is 91 EUR", GoldAnswer(91.27, "numeric", 0.001), False),
    ("The difference is -12 days", GoldAnswer(-12, "numeric"), True),
    ("It ends on 2024-02-29.", GoldAnswer("2024-02-29", "normalized"), True),
    ("It ends on 2024-02-28.", GoldAnswer("2024-02-29", "normalized"), False),
    ("Nairobi uses Africa/Nairobi time.", GoldAnswer("Africa/Nairobi", "normalized"), True),
    ("The emails are sales@acme.io and support@acme.io",
     GoldAnswer(["sales@acme.io", "support@acme.io"], "set"), True),
    ("The only email is sales@acme.io", GoldAnswer(["sales@acme.io", "support@acme.io"], "set"), False),
    ("Numbers: 66, 3, 12.5 and 1499", GoldAnswer([66, 3, 12.5, 1499], "set"), True),
    ("Yes, they are identical.", GoldAnswer(True, "exact"), True),
    ("No, they differ.", GoldAnswer(True, "exact"), False),
    ("Sydney isn't the capital.", GoldAnswer(False, "exact"), True),
    ("Sydney is the capital.", GoldAnswer(False, "exact"), False),
])
def test_answer_solves(answer, gold, solved):
    assert answer_solves(answer, gold) is solved


def test_without_a_gold_answer_a_correct_call_and_an_answer_pass():
    gold = entry(answer=None)
    right = record(good(), done("whatever"), answer="whatever", gold=gold, id="a")
    wrong = record(good(days=1, date="2024-02-10"), done("x"), answer="x", gold=gold, id="b")
    silent = record(good(), gold=gold, id="c")
    assert [r.flags.solved for r in score([right, wrong, silent], rule_judge, SPECS)] == [True, False, False]


def test_llm_judge_takes_the_strict_majority_of_k_seeded_verdicts():
    """Verdicts per repetition (by sampling seed): query 0 gets yes, yes, no → solved; query 1 gets yes,
    then an unparsable reply, then no → not solved; an unanswered record is never shown to the judge."""
    script = {0: [True, True, False], 1: [True, None, False]}

    def respond(conversation, tools, mode, position):
        assert mode == "json" and "Reference answer" in conversation[-1].content
        verdict = script[position][respond.repeat[position]]
        respond.repeat[position] += 1
        return text("{broken" if verdict is None else {"solved": verdict, "reason": "because"})

    respond.repeat = {0: 0, 1: 0}
    policy = ScriptedPolicy(respond)
    records = [record(good(), done(), answer="a", id="a"), record(good(), done(), answer="b", id="b"),
               record(good(), id="c")]
    scored = score(records, LLMJudge(policy, k=3), SPECS)
    assert [r.flags.solved for r in scored] == [True, False, False]
    assert len(policy.calls) == 3 and all(len(conversations) == 2 for _, conversations in policy.calls)


# ---- win rate ------------------------------------------------------------------------------------------


def solved_records(pattern: str, prefix="q") -> list[QueryRecord]:
    return [replace(record(id=f"{prefix}{i}"), flags=Flags(solved=c == "1")) for i, c in enumerate(pattern)]


def test_win_rate_counts_ties_as_half():
    result = win_rate(solved_records("11001"), solved_records("01101"))
    assert (result.wins, result.losses, result.ties, result.n) == (1, 1, 3, 5)
    assert result.rate == 50.0
    assert win_rate(solved_records("1111"), solved_records("0000")).rate == 100.0
    assert WinRate(0, 0, 0).rate == 0.0
    assert "| A vs B | 1 | 1 | 3 | 5 | 50.0 |" in win_rate_markdown(result)


def test_win_rate_randomizes_the_order_per_query_with_a_seed():
    """A judge that always prefers whoever is shown first must come out near 50 %, the same for one seed."""
    always_first = lambda pairs: ["first"] * len(pairs)
    a, b = solved_records("0" * 200), solved_records("0" * 200)
    result = win_rate(a, b, always_first, seed=7)
    assert result.ties == 0 and 80 < result.wins < 120
    assert win_rate(a, b, always_first, seed=7) == result
    assert win_rate(a, b, always_first, seed=8) != result


def test_win_rate_needs_the_same_queries():
    with pytest.raises(ValueError, match="different queries"):
        win_rate(solved_records("11"), solved_records("111"))
    assert rule_pair_judge([(solved_records("1")[0], solved_records("0")[0])]) == ["first"]


# ---- reports -------------------------------------------------------------------------------------------


def test_report_json_and_markdown(tmp_path):
    scored = score([record(good(), done(), answer="2024-05-10", id="a"), record(GIVE_UP, id="b", gave_up=True)],
                   rule_judge, SPECS, ExecutionMatch(ToolRunner(REGISTRY)))
    report = builtin_report(scored, {"model": "scripted", "strategy": "react"})
    markdown = builtin_markdown(report)
    assert "| argument match % | exec match % | correct % |" in markdown
    assert ("| **all** | 2 | 100.0 [100.0–100.0] | 50.0 [0.0–100.0] | 50.0 [0.0–100.0] | 50.0 [0.0–100.0] | "
            "50.0 [0.0–100.0] | 50.0 [0.0–100.0] | 50.0 [0.0–100.0] |") in markdown
    assert "| round 2 |" in markdown and "| Dates |" in markdown and "| `add_to_date` |" in markdown
    json_path, markdown_path = write_report(report, markdown, tmp_path / "out", "builtin")
    loaded = json.loads(json_path.read_text())
    assert loaded["summary"]["pass_rate"] == 50.0 and loaded["records"][1]["gave_up"] is True
    assert loaded["records"][0]["gold"]["calls"][0]["name"] == "add_to_date"
    assert markdown_path.read_text() == markdown
