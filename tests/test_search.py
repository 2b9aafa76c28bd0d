"""ReAct, ReAct@N and DFSDT on scripted policies: backtracking, the diversity prompt, every budget."""
from __future__ import annotations

import json

from scripted import ScriptedPolicy, call, finish

from actors.policy import Sampling
from actors.search import DFSDT, DIVERSITY_PROMPT, Budget, FinishRule, ReAct, Task
from toolenv.registry import builtin_registry
from toolenv.runner import ToolRunner

REGISTRY = builtin_registry()
RUNNER = ToolRunner(REGISTRY)
CITY = REGISTRY.get("get_city_info").spec.openai()
TASK = Task(query="What is the population of Tokyo?", tools=(CITY,))


def turns(conversation) -> int:
    return sum(1 for m in conversation if m.role == "assistant")


def test_react_calls_a_real_tool_then_answers():
    def respond(conversation, tools, mode, position):
        if turns(conversation) == 0:
            return call("get_city_info", city="Tokyo")
        population = json.loads(conversation[-1].content)["population"]
        return finish(f"Tokyo has {population} inhabitants.")

    [result] = ReAct(Budget()).run(ScriptedPolicy(respond), RUNNER, [TASK], Sampling())
    assert [m.role for m in result.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert result.messages[3].name == "get_city_info" and '"population"' in result.messages[3].content
    assert result.outcome.final_answer.startswith("Tokyo has ") and result.outcome.label == "unsolved"  # no reflection yet
    assert (result.outcome.tool_calls_ok, result.outcome.last_call_ok, result.search.tool_calls) == (1, True, 1)
    assert result.tokens.prompt == 20


def test_react_stops_at_the_turn_limit_and_reports_failed_calls():
    cities = iter(["Atlantis", "Lemuria", "Mu"])
    policy = ScriptedPolicy(lambda c, t, m, p: call("get_city_info", city=next(cities)))
    [result] = ReAct(Budget(max_turns=3)).run(policy, RUNNER, [TASK], Sampling())
    assert turns(result.messages) == 3 and result.outcome.final_answer is None
    assert result.outcome.label == "unfinished" and result.outcome.tool_calls_failed == 3
    assert "tool_error" in result.messages[-1].content


def test_a_repeated_call_is_not_run_again():
    policy = ScriptedPolicy(lambda c, t, m, p: call("get_city_info", city="Tokyo"))
    [result] = ReAct(Budget(max_turns=3)).run(policy, RUNNER, [TASK], Sampling())
    assert result.search.tool_calls == 1 and "repeated_call" in result.messages[-1].content
    assert result.outcome.tool_calls_failed == 2 and result.outcome.last_call_ok is False


def test_react_at_n_stops_at_the_first_chain_that_answers():
    def respond(conversation, tools, mode, position):
        return finish("42") if position == 1 else call("get_city_info", city="Tokyo")

    policy = ScriptedPolicy(respond)
    [result] = ReAct(Budget(), n=3).run(policy, RUNNER, [TASK], Sampling())
    assert result.outcome.final_answer == "42" and result.search.strategy == "react@3"
    assert len(policy.calls) == 1  # the other two chains were not continued
    assert result.outcome.tool_calls_ok == 2  # what the losing chains spent still counts


def test_dfsdt_backtracks_with_the_diversity_prompt():
    """Root → child 1 gives up → child 2 (sees the diversity prompt) calls the tool → answers."""
    seen_hints = []

    def respond(conversation, tools, mode, position):
        hint = [m.content for m in conversation if m.role == "user" and "not the first time" in (m.content or "")]
        seen_hints.append(hint)
        if turns(conversation) == 0 and not hint:
            return finish(None)  # give up and restart
        if turns(conversation) == 0:
            return call("get_city_info", city="Tokyo")
        return finish("found it")

    [result] = DFSDT(Budget()).run(ScriptedPolicy(respond), RUNNER, [TASK], Sampling())
    search = result.search
    assert result.outcome.final_answer == "found it" and search.backtracks == 1
    assert [n.status for n in search.nodes] == ["expanded", "gave_up", "expanded", "answered"]
    assert [n.parent for n in search.nodes] == [None, 0, 0, 2]
    assert search.success_path == [0, 2, 3] and search.expansions == 3 and search.tool_calls == 1
    assert seen_hints[1] and "Finish" in seen_hints[1][0]  # the second try was told what the first did
    assert DIVERSITY_PROMPT.split("{")[0] in seen_hints[1][0]
    assert all("not the first time" not in (m.content or "") for m in result.messages)  # hints stay out of the episode


def test_dfsdt_respects_expansion_tool_call_and_depth_budgets():
    always_give_up = ScriptedPolicy(lambda c, t, m, p: finish(None))
    [result] = DFSDT(Budget(max_expansions=5, max_children=3)).run(always_give_up, RUNNER, [TASK], Sampling())
    assert result.search.expansions == 3 and result.outcome.final_answer is None  # root's 3 children, then nothing left
    assert result.search.backtracks == 3

    always_call = ScriptedPolicy(lambda c, t, m, p: call("get_city_info", city="Tokyo"))
    [result] = DFSDT(Budget(max_tool_calls=4, max_expansions=50)).run(always_call, RUNNER, [TASK], Sampling())
    assert result.search.tool_calls <= 4

    [result] = DFSDT(Budget(max_turns=2, max_children=1, max_expansions=50)).run(always_call, RUNNER, [TASK], Sampling())
    assert max(turns(n.messages) + 0 for n in result.search.nodes) <= 1 and len(result.search.nodes) == 3  # depth 2


def test_dfsdt_batches_expansions_across_tasks():
    policy = ScriptedPolicy(lambda c, t, m, p: finish("done"))
    results = DFSDT(Budget()).run(policy, RUNNER, [TASK, TASK, TASK], Sampling())
    assert len(policy.calls) == 1 and len(policy.calls[0][1]) == 3
    assert all(r.outcome.final_answer == "done" for r in results)


def test_finish_is_offered_after_a_real_call_and_alone_after_a_success_if_asked():
    offered = []

    def respond(conversation, tools, mode, position):
        offered.append([t["function"]["name"] for t in tools])
        return call("get_city_info", city="Tokyo") if turns(conversation) == 0 else finish("done")

    ReAct(Budget()).run(ScriptedPolicy(respond), RUNNER, [TASK], Sampling())
    assert offered == [["get_city_info"], ["get_city_info", "Finish"]]
    offered.clear()
    ReAct(Budget(), FinishRule(alone_after_success=True)).run(ScriptedPolicy(respond), RUNNER, [TASK], Sampling())
    assert offered == [["get_city_info"], ["Finish"]]


def test_a_task_can_start_after_a_call_that_already_ran():
    """STE's call imagination hands the search a trial whose first call ran: both strategies continue from it,
    count it, and offer Finish at once (alone, with alone_after_success)."""
    tokyo = call("get_city_info", city="Tokyo")
    ran = RUNNER.call("get_city_info", {"city": "Tokyo"})
    prefix = (tokyo, type(tokyo)(role="tool", tool_call_id="call_get_city_info", name="get_city_info",
                                 content=ran.content(1024)))
    task = Task(query=TASK.query, tools=(CITY,), prefix=prefix)
    offered = []

    def respond(conversation, tools, mode, position):
        offered.append([t["function"]["name"] for t in tools])
        return finish(f"{json.loads(conversation[-1].content)['population']}")

    for strategy in (ReAct(Budget(), FinishRule(alone_after_success=True)), DFSDT(Budget(), FinishRule(alone_after_success=True))):
        [result] = strategy.run(ScriptedPolicy(respond), RUNNER, [task], Sampling())
        assert [m.role for m in result.messages] == ["system", "user", "assistant", "tool", "assistant"]
        assert result.messages[2] is tokyo and result.outcome.final_answer is not None
        assert (result.outcome.tool_calls_ok, result.outcome.last_call_ok, result.search.tool_calls) == (1, True, 1)
    assert offered == [["Finish"], ["Finish"]]
    [result] = ReAct(Budget()).run(ScriptedPolicy(respond), RUNNER, [task], Sampling())
    assert offered[-1] == ["get_city_info", "Finish"]  # the prefix's call counts for after_a_call
