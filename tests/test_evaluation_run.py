"""End to end over built-in gold sets: tasks, batched search, records, metrics, with scripted policies."""
from __future__ import annotations

import json

import pytest

from actors.policy import Sampling
from actors.search import DFSDT, Budget, ReAct
from evaluation.builtin import evaluate, gold_tasks, select_tools
from evaluation.judges import rule_judge
from evaluation.metrics import METRICS, summarize
from scripted import ScriptedPolicy, call, finish
from toolenv.gold import load_gold_dir, value_at
from toolenv.registry import builtin_registry
from toolenv.runner import ToolRunner

REGISTRY = builtin_registry()
GOLD = load_gold_dir()
RUNNER = ToolRunner(REGISTRY)
TOOLS = ["get_city_info", "convert_currency", "add_to_date"]
BY_QUERY = {entry.query: entry for name in TOOLS for entry in GOLD[name]}


def perfect(conversation, tools, mode, position):
    """Makes the gold call, then states the gold path of the result it read."""
    entry = BY_QUERY[next(m.content for m in conversation if m.role == "user")]
    if conversation[-1].role != "tool":
        gold = entry.calls[0]
        return call(gold.name, **gold.argument_values())
    value = value_at(json.loads(conversation[-1].content), entry.answer.path)
    spoken = "yes" if value is True else "no" if value is False else ", ".join(map(str, value)) if isinstance(value, list) else value
    return finish(f"The answer is {spoken}.")


def quitter(conversation, tools, mode, position):
    return finish(None)


@pytest.mark.parametrize("strategy", [ReAct(Budget()), DFSDT(Budget())], ids=["react", "dfsdt"])
def test_a_perfect_policy_scores_100_and_one_that_gives_up_0(strategy):
    tasks = gold_tasks(REGISTRY, GOLD, TOOLS, limit=3, distractors=2, seed=1)
    done = []
    records = evaluate(ScriptedPolicy(perfect), strategy, tasks, RUNNER, rule_judge, Sampling(seed=0), batch_size=4,
                       progress=done.append)
    summary = summarize(records)
    assert summary.n == 9 and done == [4, 8, 9]
    assert {metric: getattr(summary, metric) for metric in METRICS} == dict.fromkeys(METRICS, 100.0)
    assert {r.tool for r in records} == set(TOOLS) and all(r.strategy == strategy.name for r in records)

    records = evaluate(ScriptedPolicy(quitter), strategy, tasks, RUNNER, rule_judge, Sampling(seed=0))
    summary = summarize(records)
    assert (summary.well_formed, summary.api_match, summary.correct, summary.exec_match, summary.pass_rate) == \
        (100.0, 0.0, 0.0, 0.0, 0.0)
    assert all(r.gave_up and r.final_answer is None for r in records)


def test_tasks_offer_seeded_distractors_of_the_same_round():
    tasks = gold_tasks(REGISTRY, GOLD, ["get_city_info"], limit=4, distractors=3, seed=5)
    assert len(tasks) == 4 and all(len(t.task.tools) == 4 for t in tasks)
    for item in tasks:
        names = [tool["function"]["name"] for tool in item.task.tools]
        assert "get_city_info" in names and {REGISTRY.get(n).spec.round for n in names} == {1}
        assert (item.category, item.round) == ("Geography", 1)
    assert gold_tasks(REGISTRY, GOLD, ["get_city_info"], limit=4, distractors=3, seed=5) == tasks
    orders = {tuple(t["function"]["name"] for t in item.task.tools)
              for item in gold_tasks(REGISTRY, GOLD, ["get_city_info"], distractors=3, seed=6)}
    assert len(orders) > 1  # the gold tool is not always in the same place
    assert all(len(t.task.tools) == 1 for t in gold_tasks(REGISTRY, GOLD, ["get_city_info"], limit=2))


def test_select_tools_names_what_exists():
    assert select_tools(REGISTRY, GOLD, round=1) == [t.name for t in REGISTRY.by_round(1)]
    assert select_tools(REGISTRY, GOLD, ["add_to_date", "get_city_info"], round=1) == ["get_city_info"]
    with pytest.raises(ValueError, match="no round 9; rounds: 1, 2, 3, 4"):
        select_tools(REGISTRY, GOLD, round=9)
    with pytest.raises(ValueError, match="no tool 'nope'; tools: .*get_city_info"):
        select_tools(REGISTRY, GOLD, ["nope"])
    with pytest.raises(ValueError, match="belongs to round 1"):
        select_tools(REGISTRY, GOLD, ["add_to_date"], round=1)
