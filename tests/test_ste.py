"""The STE loop's logic on scripted policies: memories shown, follow-ups, strict reflection, filtering."""
from __future__ import annotations

from dataclasses import replace

import json
import random

import pytest
from scripted import ScriptedPolicy, call, finish, text

from actors.embeddings import default_embedder
from actors.exploit import Demonstrations, grounded, mentioned, paraphrase, rejection, select, unfaithful_arguments
from actors.memory import LongTermMemory
from actors.imagination import CallImagination, parse_query, parse_verdict
from actors.ste import STEConfig, explore
from replay.episode import Episode, FunctionCall, Message, Outcome, Reflection
from toolenv.registry import builtin_registry
from toolenv.runner import ToolRunner

REGISTRY = builtin_registry()
RUNNER = ToolRunner(REGISTRY)
CITIES = ["Tokyo", "Paris", "Lima", "Cairo", "Oslo", "Perth"]


def scripted_explorer(verdict=lambda q: {"solved": True, "reason": "the population was given"}):
    """Imagines 'population of <city>' (a new city each time), calls the tool, answers, reflects."""
    counter = {"imagined": 0}

    def respond(conversation, tools, mode, position):
        if mode == "json" and "Imagine one realistic request" in conversation[0].content:
            city = CITIES[counter["imagined"] % len(CITIES)]
            counter["imagined"] += 1
            return text({"query": f"How many people live in {city}?"})
        if mode == "json":
            return text(verdict(conversation[1].content))
        assistant_turns = sum(m.role == "assistant" for m in conversation)
        query = conversation[-1].content if assistant_turns == 0 else next(m.content for m in conversation if m.role == "user")
        city = query.rsplit(" ", 1)[-1].rstrip("?")
        if assistant_turns == 0:
            return call("get_city_info", city=city)
        return finish(f"{city}: {json.loads(conversation[-1].content)['population']}")

    return ScriptedPolicy(respond)


@pytest.fixture
def memory(buffer):
    return LongTermMemory(buffer.redis, default_embedder())


def test_a_session_imagines_tries_reflects_and_remembers(memory):
    policy = scripted_explorer()
    batches = list(explore(policy, REGISTRY, RUNNER, ["get_city_info"], STEConfig(trials_per_session=3), memory))
    episodes = [e for b in batches for e in b.episodes]
    assert len(episodes) == 3 and all(b.failed == 0 for b in batches)
    first = episodes[0]
    assert first.query == "How many people live in Tokyo?" and first.tools == ["get_city_info"]
    assert first.round == REGISTRY.get("get_city_info").spec.round
    assert [m.role for m in first.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert first.outcome.label == "solved" and first.outcome.reflection.reason == "the population was given"
    assert [t["function"]["name"] for t in first.tool_specs] == ["get_city_info", "Finish"]
    assert {e.session for e in episodes} == {first.session} and [e.trial for e in episodes] == [0, 1, 2]
    # short-term memory: trial 3's imagination saw trials 1 and 2 and was asked for a follow-up
    imagine_prompts = [conv[0] for mode, conv in policy.calls if mode == "json" and "Imagine" in conv[0][0].content]
    third = imagine_prompts[2][1].content
    assert "How many people live in Tokyo?" in third and "How many people live in Paris?" in third
    assert "follow-up" in third and '"population"' in third
    # long-term memory: stored in Redis, shown to the next session's imagination
    assert memory.size("get_city_info") == 3
    list(explore(policy, REGISTRY, RUNNER, ["get_city_info"], STEConfig(trials_per_session=1), memory))
    latest = [conv[0] for mode, conv in policy.calls if mode == "json" and "Imagine" in conv[0][0].content][-1]
    assert "already explored" in latest[1].content and "How many people live in Lima? (solved)" in latest[1].content


def test_long_term_memory_recall_is_bounded_and_by_similarity(memory):
    memory.add("t", [("weather in Paris tomorrow", True), ("population of Tokyo", True), ("rain in London", False)]
               + [(f"unrelated question number {i} about stamps", True) for i in range(20)])
    recalled = memory.recall("t", "will it rain in Paris", k=2)
    assert len(recalled) == 2 and {q for q, _ in recalled} == {"weather in Paris tomorrow", "rain in London"}


def test_without_long_term_memory_nothing_is_shown(memory):
    memory.add("get_city_info", [("How many people live in Rome?", True)])
    policy = scripted_explorer()
    list(explore(policy, REGISTRY, RUNNER, ["get_city_info"], STEConfig(trials_per_session=1, use_long_term_memory=False), memory))
    assert "already explored" not in policy.calls[0][1][0][1].content


@pytest.mark.parametrize("garbage", ["", "no", "No, it was not solved", "{", '{"solved": "yes", "reason": "x"}',
                                     '{"solved": true}', '["solved", true]', '{"solved": 1, "reason": "r"}', "null"])
def test_reflection_parsing_rejects_garbage(garbage):
    assert parse_verdict(garbage) is None


def test_a_garbage_verdict_never_counts_as_solved(memory):
    policy = scripted_explorer(verdict=lambda q: "No")  # STE's substring test would read this as a verdict
    [batch] = list(explore(policy, REGISTRY, RUNNER, ["get_city_info"], STEConfig(trials_per_session=1), memory))
    assert batch.episodes[0].outcome.reflection is None and batch.episodes[0].outcome.label == "unsolved"


def test_imagination_garbage_is_a_failed_trial_not_a_crash(memory):
    rng = random.Random(1)
    policy = ScriptedPolicy(lambda c, t, m, p: text("".join(rng.choice("{}\":ab ") for _ in range(30))))
    [batch] = list(explore(policy, REGISTRY, RUNNER, ["get_city_info", "convert_currency"], STEConfig(trials_per_session=1), memory))
    assert batch.episodes == [] and batch.failed == 2
    assert parse_query('{"query": "What is 5 EUR in yen?"}') == "What is 5 EUR in yen?"
    assert parse_query('{"query": ""}') is None and parse_query('{"q": "x"}') is None
    assert parse_query('{"query": "Use convert_currency on 5 EUR"}', "convert_currency") is None


def _with(episode, **outcome):
    return type(episode)(**{**episode.__dict__, "outcome": Outcome(**{**episode.outcome.__dict__, **outcome}), "id": ""})


def test_filtering_keeps_and_drops_the_right_episodes(memory):
    policy = scripted_explorer()
    [batch] = list(explore(policy, REGISTRY, RUNNER, ["get_city_info"], STEConfig(trials_per_session=1), memory))
    good = batch.episodes[0]
    assert rejection(good) is None
    cases = {
        "no final answer": _with(good, final_answer=None),
        "no successful tool call": _with(good, tool_calls_ok=0),
        "last tool call failed": _with(good, last_call_ok=False),
        "no usable reflection": _with(good, reflection=None),
        "reflection says unsolved": _with(good, reflection=Reflection(solved=False, reason="wrong city")),
        "answer not grounded in tool results": _with(good, final_answer="The answer for the user (with give_answer)."),
        "call arguments not in the query": type(good)(**{**good.__dict__, "query": "How many people live there?", "id": ""}),
    }
    for reason, episode in cases.items():
        assert rejection(episode) == reason
    twin = type(good)(**{**good.__dict__, "query": "How many people live in Tokyo ?", "id": ""})
    selection = select([good, twin, *cases.values()], default_embedder())
    assert selection.kept == [good]
    assert selection.dropped["near-duplicate query"] == 1 and sum(selection.dropped.values()) == 8


def test_call_arguments_must_come_from_the_query():
    assert mentioned("Paris", "weather in paris?") and mentioned(100, "convert 100.0 dollars") and mentioned(2.5, "2.5 kg")
    assert not mentioned("Lyon", "weather in Paris") and not mentioned(10, "convert 100 dollars")
    assert not mentioned(True, "true") and mentioned(["a b", "c"], "c and a b") and not mentioned([], "anything")
    tool_specs = [REGISTRY.get("convert_currency").spec.openai()]
    messages = [call("convert_currency", amount=100, from_currency="USD", to_currency="EUR", decimals=2),
                Message(role="tool", tool_call_id="call_convert_currency", content='{"converted_amount": 91.27}'),
                finish("91.27 EUR")]

    def episode(query):
        return Episode(tools=["convert_currency"], tool_specs=tool_specs, round=1, query=query,
                       messages=[Message(role="user", content=query), *messages], outcome=Outcome())

    assert unfaithful_arguments(episode("How much is 100 USD in EUR?")) == []  # decimals=2 is the default
    assert unfaithful_arguments(episode("How much is 100 USD in yen?")) == ["convert_currency.to_currency"]
    assert unfaithful_arguments(episode("What about money?")) == [f"convert_currency.{key}" for key in
                                                                 ("amount", "from_currency", "to_currency")] + \
        ["convert_currency()"]  # nothing of the request shaped this call


def test_a_call_that_gives_one_value_to_two_arguments_is_not_kept():
    from actors.exploit import repeats_a_value

    assert repeats_a_value({"amount": 5, "from_currency": "USD", "to_currency": "USD"})
    assert repeats_a_value({"start_date": "2020-12-31", "end_date": "2020-12-31"})
    assert not repeats_a_value({"amount": 5, "from_currency": "USD", "to_currency": "EUR", "decimals": 5.5})
    assert not repeats_a_value({"a": True, "b": True, "c": None, "d": None})  # flags may well agree
    assert not repeats_a_value({"amount": 2, "from_currency": "USD", "to_currency": "EUR", "decimals": 2})
    assert repeats_a_value({"amount": 2, "from_currency": "usd", "to_currency": "USD "})
    tool_specs = [REGISTRY.get("convert_currency").spec.openai()]

    def episode(to_currency):
        query = f"How much is 100 USD in {to_currency}?"
        return Episode(tools=["convert_currency"], tool_specs=tool_specs, round=1, query=query, messages=[
            Message(role="user", content=query),
            call("convert_currency", amount=100, from_currency="USD", to_currency=to_currency),
            Message(role="tool", tool_call_id="call_convert_currency", content='{"converted_amount": 100.0}'),
            finish("100.0")], outcome=Outcome(final_answer="100.0", tool_calls_ok=1, last_call_ok=True,
                                             reflection=Reflection(solved=True, reason="ran")))

    assert rejection(episode("USD")) == "call repeats one value" and rejection(episode("EUR")) is None


def answered(query: str, tool: str, arguments: dict, answer: str) -> Episode:
    """A trial that called `tool` right (the real runner's result) and answered `answer`, judged solved."""
    result = RUNNER.call(tool, arguments)
    return Episode(tools=[tool], tool_specs=[REGISTRY.get(tool).spec.openai()], round=1, query=query, messages=[
        Message(role="user", content=query), call(tool, **arguments),
        Message(role="tool", tool_call_id=f"call_{tool}", name=tool, content=result.content(1024)), finish(answer)],
        outcome=Outcome(final_answer=answer, tool_calls_ok=1, last_call_ok=True,
                        reflection=Reflection(solved=True, reason="the tool answered")))


def test_a_kept_answer_states_the_returned_field_the_request_asks_for():
    """An answer that repeats a value of the request passes "it repeats a returned term" (the tool echoes
    its dates); the request's words name the field it asks for (days: total_days), whose value a kept answer states."""
    days = ("How many days are there between 2020-01-01 and 2022-12-31?", "calculate_date_difference",
            {"start_date": "2020-01-01", "end_date": "2022-12-31"})
    assert '"total_days": 1095' in RUNNER.call(days[1], days[2]).content(1024)
    assert rejection(answered(*days, "2022-12-31")) == "answer not grounded in tool results"
    assert rejection(answered(*days, "1095")) is None and rejection(answered(*days, "There are 1,095 days.")) is None
    weekday = ("What day of the week is 2024-03-01?", "get_date_info", {"date": "2024-03-01"})
    assert rejection(answered(*weekday, "Friday")) is None
    assert rejection(answered(*weekday, "It is 2024-03-01.")) == "answer not grounded in tool results"
    population = ("What is the population of Tokyo?", "get_city_info", {"city": "Tokyo"})
    assert rejection(answered(*population, "About 13.96 million people.")) is None
    assert rejection(answered(*population, "Tokyo is in Japan.")) == "answer not grounded in tool results"
    # no returned field is named ("people"): any returned term grounds the answer, as before
    assert rejection(answered("How many people live in Tokyo?", "get_city_info", {"city": "Tokyo"}, "In Japan.")) is None


def test_a_bare_returned_value_grounds_an_answer_that_states_it():
    """Tools of your own may return a bare number or string (the pantry's grams_left: 2000): no field to name,
    so an answer stating a returned term is grounded, and nothing breaks (a run stopped on this once)."""
    from actors.exploit import returned_fields

    assert returned_fields("2000") == [] and returned_fields('"Lima"') == [] and returned_fields("null") == []
    messages = [Message(role="system", content="s"), Message(role="user", content="How much rice is left?"),
                call("grams_left", item="rice"), Message(role="tool", tool_call_id="call_grams_left", name="grams_left",
                                                        content="2000"), finish("2000 grams")]
    assert grounded("2000 grams", "How much rice is left?", messages)
    assert not grounded("plenty", "How much rice is left?", messages)


def test_a_returned_value_is_stated_as_written():
    from actors.exploit import requested_values, states

    assert states(1095, "1,095 days") and states(91.2734, "91.27 EUR") and states(13960000, "13.96 million")
    assert states(-3.5, "it fell to -3.5 °C") and states("Friday", "a friday")
    assert not states(1095, "1094") and not states(31, "2022-12-31") and not states(91.2734, "91.4 EUR, 91.2")
    assert not states(12, "at 12:30") and not states("", "anything")
    episode = answered("Which country is Lyon in?", "get_city_info", {"city": "Lyon"}, "France")
    assert requested_values(episode.query, episode.messages) == ["France", "FR"]  # the city named is an echo


def test_call_first_imagination_runs_the_example_call_then_writes_its_request(memory):
    """An example call that fails gives no query; one that runs is turned into a request stating its values,
    and the trial starts from that call and its result: the model only has to answer, and no model judges it."""
    proposals = iter(["Atlantis", "Lima"])

    def respond(conversation, tools, mode, position):
        first = conversation[0].content
        if mode == "tool_call" and "realistic example values" in conversation[-1].content:
            return call("get_city_info", city=next(proposals))
        if mode == "json" and "turn a tool call into the request" in first:
            city = conversation[-1].content.split('"')[1]
            return text({"query": f"How many people live in {city}?"})
        assert mode == "tool_call" and [t["function"]["name"] for t in tools] == ["get_city_info", "Finish"]
        return finish(f"{json.loads(conversation[-1].content)['population']}")

    policy = ScriptedPolicy(respond)
    batches = list(explore(policy, REGISTRY, RUNNER, ["get_city_info"],
                           STEConfig(trials_per_session=2, imagination="call"), memory))
    assert batches[0].failed == 1 and batches[0].episodes == []  # Atlantis is no city: no query from it
    [episode] = batches[1].episodes
    assert episode.query == "How many people live in Lima?" and rejection(episode) is None
    assert [m.role for m in episode.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert episode.messages[2].tool_calls[0].function.arguments == {"city": "Lima"}
    assert episode.outcome.tool_calls_ok == 1 and episode.outcome.last_call_ok
    assert episode.outcome.reflection.solved and "which ran" in episode.outcome.reflection.reason
    asked = [conv[0] for mode, conv in policy.calls if mode == "json" and "turn a tool call" in conv[0][0].content]
    assert len(asked) == 1 and asked[0][-1].content == 'get_city_info(city="Lima")'
    assert not any("judge" in conv[0][0].content for mode, conv in policy.calls if mode == "json")
    assert len(asked_all := [c for m, c in policy.calls if m == "json"]) == 1 and len(asked_all[0]) == 4  # 4 candidates
    from actors.imagination import _most_faithful

    lima = FunctionCall("get_city_info", {"city": "Lima"})
    assert _most_faithful(["Where is it?", "How big is Lima?", "Lima?"], lima, REGISTRY) == "How big is Lima?"
    assert _most_faithful([], lima, REGISTRY) is None


def test_of_several_example_calls_the_one_with_values_not_explored_yet_is_kept(memory):
    """The model keeps proposing the same example; of the calls that run, the one whose values no earlier
    request stated wins, so long-term memory widens exploration even when the model ignores it."""
    memory.add("get_city_info", [("How many people live in Tokyo?", True)])
    proposals = iter(["Tokyo", "Atlantis", "Lima", "Tokyo", "Lima", "Oslo"])

    def respond(conversation, tools, mode, position):
        if mode == "tool_call" and "realistic example values" in conversation[-1].content:
            return call("get_city_info", city=next(proposals))
        if mode == "json":
            city = conversation[-1].content.split('"')[1]
            return text({"query": f"How many people live in {city}?"})
        return finish(f"{json.loads(conversation[-1].content)['population']}")

    config = STEConfig(trials_per_session=2, imagination=CallImagination(calls_per_session=3, queries_per_call=1))
    batches = list(explore(ScriptedPolicy(respond), REGISTRY, RUNNER, ["get_city_info"], config, memory))
    # trial 1: Tokyo was explored before, Atlantis fails to run: Lima; trial 2: Tokyo and Lima are known: Oslo
    assert [e.query for b in batches for e in b.episodes] == ["How many people live in Lima?",
                                                              "How many people live in Oslo?"]
    assert all(b.failed == 0 for b in batches)


def test_memory_can_steer_by_selection_alone_without_being_shown(memory):
    """A small model echoes the memories it is shown; with show_memory off, the example-call prompt holds
    neither memory, and long-term memory still steers which proposal is kept."""
    memory.add("get_city_info", [("How many people live in Tokyo?", True)])
    proposals = iter(["Tokyo", "Lima", "Tokyo", "Lima", "Oslo", "Tokyo"])
    prompts_seen = []

    def respond(conversation, tools, mode, position):
        if mode == "tool_call" and "realistic example values" in conversation[-1].content:
            prompts_seen.append(conversation[-1].content)
            return call("get_city_info", city=next(proposals))
        if mode == "json":
            city = conversation[-1].content.split('"')[1]
            return text({"query": f"How many people live in {city}?"})
        return finish(f"{json.loads(conversation[-1].content)['population']}")

    shown = STEConfig(trials_per_session=2, imagination=CallImagination(calls_per_session=3, queries_per_call=1, show_memory=False))
    batches = list(explore(ScriptedPolicy(respond), REGISTRY, RUNNER, ["get_city_info"], shown, memory))
    assert [e.query for b in batches for e in b.episodes] == ["How many people live in Lima?",
                                                              "How many people live in Oslo?"]
    assert prompts_seen and not any("Tokyo" in p or "Lima" in p or "Earlier" in p for p in prompts_seen)


def test_an_example_call_keeps_its_required_arguments_and_a_few_options():
    from actors.imagination import _fewer_options

    padded = call("search_books", author="Jane Austen", genre="romance", year_from=1800, language="en").tool_calls[0]
    trimmed = _fewer_options(padded, REGISTRY, 1, random.Random(0))
    assert len(trimmed.function.arguments) == 1 and trimmed.id == padded.id
    assert trimmed.function.arguments.items() <= padded.function.arguments.items()
    assert _fewer_options(padded, REGISTRY, None, random.Random(0)) is padded
    currency = call("convert_currency", amount=5, from_currency="EUR", to_currency="JPY", decimals=0).tool_calls[0]
    kept = _fewer_options(currency, REGISTRY, 0, random.Random(0)).function.arguments
    assert kept == {"amount": 5, "from_currency": "EUR", "to_currency": "JPY"}  # required ones always stay
    drawn = {len(_fewer_options(currency, REGISTRY, 1, random.Random(seed)).function.arguments) for seed in range(20)}
    assert drawn == {3, 4}  # no option or one: most requests need none
    assert all(len(_fewer_options(padded, REGISTRY, 2, random.Random(seed)).function.arguments) in (1, 2)
               for seed in range(20))  # a tool without required arguments keeps at least one option
    shift = call("add_to_date", date="2024-01-31", years=1, months=1, weeks=1, days=1).tool_calls[0]
    assert {len(_fewer_options(shift, REGISTRY, 1, random.Random(seed)).function.arguments) for seed in range(20)} == {2}
    refused = RUNNER.call("add_to_date", {"date": "2024-01-31"})  # minProperties: adding nothing is no request
    assert not refused.ok and "give at least 1 of 'years', 'months', 'weeks', 'days' as well as 'date'" in refused.content(300)
    padded_zero = call("add_to_date", date="2024-01-31", years=0, days=5).tool_calls[0]  # years: 0 adds nothing
    assert all(_fewer_options(padded_zero, REGISTRY, 1, random.Random(seed)).function.arguments
               == {"date": "2024-01-31", "days": 5} for seed in range(10))
    nothing = call("add_to_date", date="2024-01-31", years=0).tool_calls[0]
    assert _fewer_options(nothing, REGISTRY, None, random.Random(0)).function.arguments == {"date": "2024-01-31"}
    # the few-shot examples use tools that exist in no suite, so they cannot leak into evaluation
    assert not any(name in REGISTRY for name, _, _ in __import__("actors.prompts", fromlist=["x"]).QUERY_FROM_CALL_SHOTS)


def test_paraphrases_and_demonstrations(memory):
    policy = scripted_explorer()
    [batch] = list(explore(policy, REGISTRY, RUNNER, ["get_city_info"], STEConfig(trials_per_session=1), memory))
    good = batch.episodes[0]
    rephrase = ScriptedPolicy(lambda c, t, m, p: text("What is the number of inhabitants of Tokyo?"))
    [new] = paraphrase(rephrase, [good])
    assert paraphrase(ScriptedPolicy(lambda c, t, m, p: text("What is the number of inhabitants there?")), [good]) == []
    assert new.query == "What is the number of inhabitants of Tokyo?" and new.derived_from == good.id
    assert new.messages[1].content == new.query and new.messages[2:] == good.messages[2:] and new.id != good.id
    demos = Demonstrations([good, new], default_embedder()).for_query("population of Tokyo please", k=1)
    assert demos[0].role == "user" and demos[1].tool_calls[0].function.name == "get_city_info"


def test_the_calls_of_an_episode_with_a_poor_answer_can_be_kept(memory):
    """`calls_only`: an episode rejected only for its answer keeps its faithful, executed calls; the learner
    then trains on the call turns alone (the example has no answer turn to learn)."""
    from actors.exploit import without_answer
    from actors.model import smollm2_tokenizer
    from learner.examples import build_examples

    policy = scripted_explorer()
    [batch] = list(explore(policy, REGISTRY, RUNNER, ["get_city_info"], STEConfig(trials_per_session=1), memory))
    good = batch.episodes[0]
    poor = _with(good, final_answer="The answer for the user (with give_answer).")
    poor = type(good)(**{**poor.__dict__, "messages": good.messages[:-1] + [finish(poor.outcome.final_answer)]})
    assert select([poor], default_embedder()).kept == []
    [kept] = select([poor], default_embedder(), calls_only=True).kept
    assert kept == without_answer(poor) and kept.derived_from == poor.id and kept.outcome.final_answer is None
    assert [m.role for m in kept.messages] == ["system", "user", "assistant", "tool"]
    [example], skipped = build_examples([kept], smollm2_tokenizer(), 2048)
    assert skipped == [] and 0 < example.label_count < len(example)  # the call is learned, nothing after it
    unfaithful = type(poor)(**{**poor.__dict__, "query": "How many people live there?", "id": ""})
    assert select([unfaithful], default_embedder(), calls_only=True).kept == []


def test_max_per_call_keeps_few_copies_of_one_call(memory):
    """A small model repeats its example values; `max_per_call` keeps that many episodes per identical call."""
    policy = scripted_explorer()
    [batch] = list(explore(policy, REGISTRY, RUNNER, ["get_city_info"], STEConfig(trials_per_session=1), memory))
    good = batch.episodes[0]
    assert good.messages[2].tool_calls[0].function.arguments == {"city": "Tokyo"}

    def asking(episode_id: str, query: str, city: str = "Tokyo"):
        messages = []
        for m in good.messages:
            if m.role == "user":
                m = replace(m, content=query)
            elif m.tool_calls and m.tool_calls[0].function.name == "get_city_info":
                m = replace(m, tool_calls=[replace(m.tool_calls[0], function=replace(m.tool_calls[0].function,
                                                                                     arguments={"city": city}))])
            messages.append(m)
        return replace(good, id=episode_id, query=query, messages=messages)

    same_call = [asking("e0", "Tell me the population of Tokyo."), asking("e1", "Is Tokyo a capital city, and of where?"),
                 asking("e2", "How many residents does Tokyo have?")]  # all answered by the population
    assert len(select(same_call, default_embedder()).kept) == 3  # distinct queries, one call
    selection = select(same_call, default_embedder(), max_per_call=1)
    assert [e.id for e in selection.kept] == ["e0"] and selection.dropped["repeated call"] == 2
    lima = asking("e3", "How many residents does Lima have?", city="Lima")
    assert [e.id for e in select([*same_call, lima], default_embedder(), max_per_call=2).kept] == ["e0", "e1", "e3"]
