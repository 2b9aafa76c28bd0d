"""Simulated trial and error: imagine a query for a tool, try it for real, reflect on the result.

A session explores one tool over several trials; later trials see the earlier ones (short-term
memory) and ask follow-ups; imagination is also shown the most similar queries explored before
for that tool (long-term memory), to push toward new ground. Sessions run side by side: each step
of a trial is one batched model call over all sessions.

Small models get a second kind of imagination ("call"): try first, then imagine. The model makes an
example call, which is run; it then writes the request that call answers, and the trial continues from
the call and its result, judged by execution rather than by the model's reflection.
"""
from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Iterator, Literal

from actors import prompts
from actors.exploit import mentioned, repeats_a_value
from actors.memory import LongTermMemory, Memory, most_similar
from actors.policy import Policy, Sampling
from actors.search import FINISH_NAME, ReAct, SearchResult, Strategy, Task
from replay.episode import Episode, FunctionCall, Message, Reflection, TokenCounts, ToolCall
from toolenv.registry import Registry
from toolenv.runner import ToolRunner
from toolenv.validation import is_default



@dataclass(frozen=True)
class STEConfig:
    trials_per_session: int = 4  # STE's short-term memory slots
    memory_k: int = 6  # long-term memories shown to imagination
    use_long_term_memory: bool = True
    # "docs": STE's imagination, a query from the documentation; "call": execution-grounded imagination for
    # small models, where the model first makes an example call that is run, then writes the request that call
    # answers; the trial starts from that call and its result, and is judged by execution, not by the model
    imagination: Literal["docs", "call"] = "docs"
    queries_per_call: int = 4  # "call" mode: requests imagined per example call; one stating every value is kept
    # "call" mode: example calls proposed per session; of those that run, the one with the most values no earlier
    # request of the tool stated is kept. A small model ignores "choose different values" (it copies the
    # description's examples), so long-term memory widens exploration by selection instead of by instruction
    calls_per_session: int = 1
    # "call" mode: show long- and short-term memory in the example-call prompt. A 135M model echoes what it is
    # shown (a Lyon request in memory: 13 of 13 proposals that ran are Lyon; none shown: 4 cities; see
    # benchmarks/memory_echo.py), so for it memory widens exploration only through the selection above
    show_memory: bool = True
    # "call" mode: optional arguments an example call keeps (a random few of those the model gave; None: all),
    # so a tool is explored an option or two at a time, as a request would use it, not with every filter set
    max_optional_arguments: int | None = None
    seed: int = 0
    observation_chars_in_memory: int = 300
    imagine: Sampling = field(default_factory=lambda: Sampling(temperature=1.0, max_new_tokens=96))
    # "call" mode: writing the request for a call. Its values already carry the diversity, so this is sampled
    # cooler: at 1.0 a 135M model's requests drift off the call ("How many innings are in the value of")
    describe: Sampling = field(default_factory=lambda: Sampling(temperature=0.5, max_new_tokens=96))
    solve: Sampling = field(default_factory=lambda: Sampling(temperature=0.4, max_new_tokens=160))
    reflect: Sampling = field(default_factory=lambda: Sampling(temperature=0.0, max_new_tokens=80))


@dataclass
class TrialBatch:
    """What one trial step of all sessions produced: episodes to push, and trials that failed to start."""

    episodes: list[Episode]
    failed: int


def parse_query(text: str, tool: str = "") -> str | None:
    """Imagination's JSON reply → the query, or None if it is not a usable {"query": str}.

    A query that names the tool is refused: users don't know API names, and STE imagines without them.
    """
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    query = value.get("query") if isinstance(value, dict) else None
    if not isinstance(query, str) or len(query.strip()) < 8:
        return None
    if tool and tool.lower() in query.lower():
        return None
    return query.strip()


def parse_verdict(text: str) -> Reflection | None:
    """A strict verdict: exactly a boolean `solved` and a string `reason`; anything else is no verdict."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("solved"), bool) or not isinstance(value.get("reason"), str):
        return None
    return Reflection(solved=value["solved"], reason=value["reason"].strip())


@dataclass
class Imagined:
    """One session's imagination: the query (None if unusable), its token counts, and in "call" mode the
    trial's first turns: the example call the query was written from, and its result."""

    query: str | None
    tokens: TokenCounts
    prefix: tuple[Message, ...] = ()


@dataclass
class _Session:
    tool: str
    round: int
    id: str
    trials: list[tuple[str, str, bool]] = field(default_factory=list)  # (query, what the tool returned, solved)


def explore(
    policy: Policy,
    registry: Registry,
    runner: ToolRunner,
    tools: list[str],
    config: STEConfig = STEConfig(),
    memory: LongTermMemory | None = None,
    strategy: Strategy | None = None,
    actor: str = "",
    model: str = "",
) -> Iterator[TrialBatch]:
    """One session per entry of `tools`; yields after every trial so the caller can push what is done."""
    strategy = strategy or ReAct()
    sessions = [_Session(tool, registry.get(tool).spec.round or 0, uuid.uuid4().hex[:12]) for tool in tools]
    for trial in range(config.trials_per_session):
        started = time.perf_counter()
        # 1. imagine
        if config.imagination == "call":
            imagined = _imagine_from_calls(policy, registry, runner, sessions, config, memory,
                                           strategy.budget.max_observation_chars)
        else:
            imagined = _imagine_from_docs(policy, registry, sessions, config, memory)
        imagine_s = time.perf_counter() - started
        failed = sum(1 for i in imagined if i.query is None)
        live = [(s, i) for s, i in zip(sessions, imagined) if i.query is not None]
        if not live:
            yield TrialBatch([], failed)
            continue
        # 2. try, with real tool calls
        tasks = [Task(query=i.query, tools=(registry.get(s.tool).spec.openai(),), prefix=i.prefix) for s, i in live]
        results = strategy.run(policy, runner, tasks, config.solve)
        # 3. reflect (a chain that never answered cannot have solved the query); a request written from a
        #    call that ran is judged by execution instead of by the model
        reflect_started = time.perf_counter()
        if config.imagination == "call":
            verdicts = [_judged_by_execution(result) for result in results]
        else:
            verdicts = _reflect(policy, [i.query for _, i in live], results, config)
        reflect_s = time.perf_counter() - reflect_started
        episodes = []
        for (session, idea), result, verdict in zip(live, results, verdicts):
            result.outcome.reflection = verdict
            solved = verdict is not None and verdict.solved
            session.trials.append((idea.query, _last_observation(result, config.observation_chars_in_memory), solved))
            tokens = TokenCounts(prompt=result.tokens.prompt + idea.tokens.prompt,
                                 completion=result.tokens.completion + idea.tokens.completion)
            episodes.append(Episode(
                tools=[session.tool], tool_specs=[registry.get(session.tool).spec.openai(), strategy.budget.finish],
                round=session.round, query=idea.query, messages=result.messages, outcome=result.outcome,
                search=result.search, policy_version=policy.version, session=session.id, trial=trial, actor=actor, model=model,
                created_at=time.time(), tokens=tokens,
                timings={**result.timings, "imagine": round(imagine_s / len(sessions), 4),
                         "reflect": round(reflect_s / len(live), 4),
                         "total": round((time.perf_counter() - started) / len(live), 4)},
            ))
        if memory is not None:
            for session in {s.tool: s for s, _ in live}.values():
                memory.add(session.tool, [(e.query, e.outcome.label == "solved") for e in episodes if e.tools == [session.tool]])
        yield TrialBatch(episodes, failed)


def _recall(memory: LongTermMemory | None, remembered: dict[str, list[Memory]], sessions: list[_Session],
            registry: Registry, config: STEConfig) -> list[list[tuple[str, bool]]]:
    """Per session, the remembered queries most similar to its last trial (the tool's description at first)."""
    if memory is None or not config.use_long_term_memory:
        return [[] for _ in sessions]
    contexts = [s.trials[-1][0] if s.trials else registry.get(s.tool).spec.openai()["function"]["description"]
                for s in sessions]
    return [most_similar(remembered[s.tool], vector, config.memory_k) for s, vector in zip(sessions, memory.embed(contexts))]


def _remembered(memory: LongTermMemory | None, sessions: list[_Session]) -> dict[str, list[Memory]]:
    """The long-term memory of every tool the sessions explore, read once per trial step."""
    return {tool: memory.read(tool) if memory is not None else [] for tool in {s.tool for s in sessions}}


def _imagine_from_docs(policy: Policy, registry: Registry, sessions: list[_Session], config: STEConfig,
                       memory: LongTermMemory | None) -> list[Imagined]:
    """STE's imagination: one query per session from the tool's documentation and both memories."""
    remembered = _remembered(memory if config.use_long_term_memory else None, sessions)
    recalled = _recall(memory, remembered, sessions, registry, config)
    conversations = [prompts.imagination(registry.get(s.tool).spec.openai()["function"], memories, s.trials)
                     for s, memories in zip(sessions, recalled)]
    replies = policy.chat(conversations, [[] for _ in sessions], config.imagine, mode="json", json_schema=prompts.QUERY_SCHEMA)
    return [Imagined(parse_query(r.message.content or "", s.tool), TokenCounts(r.prompt_tokens, r.completion_tokens))
            for s, r in zip(sessions, replies)]


def _imagine_from_calls(policy: Policy, registry: Registry, runner: ToolRunner, sessions: list[_Session],
                        config: STEConfig, memory: LongTermMemory | None, observation_chars: int) -> list[Imagined]:
    """Execution-grounded imagination: example calls, run for real; a call that fails yields no query
    (its values are not usable); of those that succeed, the most novel one that does not repeat a value is
    turned into the request it answers."""
    rng = random.Random(f"{config.seed}:{sessions[0].id}")
    k = config.calls_per_session
    specs = [[registry.get(s.tool).spec.openai()] for s in sessions]
    remembered = _remembered(memory, sessions)
    recalled = _recall(memory, remembered, sessions, registry, config) if config.show_memory else [[] for _ in sessions]
    conversations = [prompts.example_call(memories, s.trials if config.show_memory else [])
                     for s, memories in zip(sessions, recalled)]
    proposals = policy.chat([c for c in conversations for _ in range(k)], [s for s in specs for _ in range(k)],
                            config.imagine, mode="tool_call")
    counts = [TokenCounts(sum(r.prompt_tokens for r in proposals[i * k:(i + 1) * k]),
                          sum(r.completion_tokens for r in proposals[i * k:(i + 1) * k])) for i in range(len(sessions))]
    explored = _explored_requests(remembered, sessions)
    ran: dict[int, tuple[Message, ...]] = {}
    for i, session in enumerate(sessions):
        candidates = []
        for reply in proposals[i * k:(i + 1) * k]:
            if not reply.message.tool_calls:
                continue
            call = _fewer_options(reply.message.tool_calls[0], registry, config.max_optional_arguments, rng)
            observation = runner.call(call.function.name, call.function.arguments)
            if observation.ok:
                score = (not repeats_a_value(call.function.arguments), _novel_values(call.function, registry, explored[session.tool]))
                candidates.append((score, reply, call, observation))
        if not candidates:
            continue
        _, reply, call, observation = max(candidates, key=lambda c: c[0])  # the first on ties
        explored[session.tool].append(prompts.show_call(call.function.name, call.function.arguments))
        ran[i] = (replace(reply.message, tool_calls=[call]),
                  Message(role="tool", tool_call_id=call.id, name=call.function.name,
                          content=observation.content(observation_chars)))
    out = [Imagined(None, c) for c in counts]
    if ran:
        asked = sorted(ran)
        calls = [ran[i][0].tool_calls[0].function for i in asked]
        n = config.queries_per_call
        replies = policy.chat([prompts.query_from_call(call.name, call.arguments) for call in calls for _ in range(n)],
                              [[] for _ in range(len(asked) * n)], config.describe, mode="json",
                              json_schema=prompts.QUERY_SCHEMA)
        for j, (i, call) in enumerate(zip(asked, calls)):
            candidates = replies[j * n:(j + 1) * n]
            queries = [q for q in (parse_query(r.message.content or "", sessions[i].tool) for r in candidates) if q]
            tokens = TokenCounts(counts[i].prompt + sum(r.prompt_tokens for r in candidates),
                                 counts[i].completion + sum(r.completion_tokens for r in candidates))
            out[i] = Imagined(_most_faithful(queries, call, registry), tokens, ran[i])
    return out


def _explored_requests(remembered: dict[str, list[Memory]], sessions: list[_Session]) -> dict[str, list[str]]:
    """Per tool, what was explored before: every remembered request, and this batch's trials so far."""
    explored = {tool: [m.query for m in memories] for tool, memories in remembered.items()}
    for session in sessions:
        explored[session.tool] += [query for query, _, _ in session.trials]
    return explored


def _novel_values(call: FunctionCall, registry: Registry, explored: list[str]) -> int:
    """How many of the call's own values (defaults aside) no explored request states. A flag is never
    stated verbatim, so it does not count: otherwise every call that sets one would look new."""
    return sum(not any(mentioned(value, text) for text in explored) for value in _stated_values(call, registry)
               if not isinstance(value, (bool, type(None))))


def _stated_values(call: FunctionCall, registry: Registry) -> list:
    """The call's values a request has to state: every argument that is not its parameter's default."""
    parameters = registry.get(call.name).spec.parameters
    return [v for key, v in call.arguments.items() if not is_default(parameters, key, v)]


def _fewer_options(call: ToolCall, registry: Registry, keep: int | None, rng: random.Random) -> ToolCall:
    """The call with its required arguments and a random few (at most `keep`; None: all) of its optional ones.

    Zero options is a draw too: most requests need none, and a model trained only on calls that set one
    learns to always set one (an extra non-default argument is a wrong call). A tool with no required
    arguments keeps at least one, since its options are the request, and a schema's `minProperties` is kept
    (add_to_date needs an amount to add). An option set to its default states nothing and is dropped: a
    model that pads `years: 0` into every call would otherwise learn to add nothing."""
    parameters = registry.get(call.function.name).spec.parameters
    required = set(parameters.get("required", []))
    optional = [key for key, value in call.function.arguments.items()
                if key not in required and not is_default(parameters, key, value)]
    least = min(max(parameters.get("minProperties", 0) - len(required), 0 if required else 1), len(optional))
    count = len(optional) if keep is None else rng.randint(least, max(least, min(keep, len(optional))))
    kept = set(rng.sample(optional, count))
    arguments = {key: value for key, value in call.function.arguments.items() if key in required or key in kept}
    if arguments == call.function.arguments:
        return call
    return replace(call, function=replace(call.function, arguments=arguments))


def _most_faithful(queries: list[str], call: FunctionCall, registry: Registry) -> str | None:
    """The candidate request that states the most of the call's values (verbatim), the first on ties."""
    values = _stated_values(call, registry)
    return max(queries, key=lambda q: sum(mentioned(v, q) for v in values), default=None)


def _judged_by_execution(result: SearchResult) -> Reflection:
    """The verdict of a trial that began with the call its request was written from: solved when it answered
    and its last call ran. No model is asked: a small model's own reflection is noise, and whether the
    answer is faithful to the results is exploitation's check."""
    if result.outcome.final_answer is None:
        return Reflection(solved=False, reason="no final answer")
    if not result.outcome.last_call_ok:
        return Reflection(solved=False, reason="its last call failed")
    return Reflection(solved=True, reason="answered after the call the request was written from, which ran")


def _reflect(policy: Policy, queries: list[str], results: list[SearchResult], config: STEConfig) -> list[Reflection | None]:
    """Verdicts for chains that answered (None if the verdict was unusable); no answer is never solved."""
    verdicts: list[Reflection | None] = [
        Reflection(solved=False, reason="no final answer") if r.outcome.final_answer is None else None for r in results
    ]
    asked = [i for i, r in enumerate(results) if r.outcome.final_answer is not None]
    if asked:
        conversations = [prompts.reflection(queries[i], _calls(results[i]), results[i].outcome.final_answer) for i in asked]
        replies = policy.chat(conversations, [[] for _ in asked], config.reflect, mode="json", json_schema=prompts.VERDICT_SCHEMA)
        for i, reply in zip(asked, replies):
            verdicts[i] = parse_verdict(reply.message.content or "")
    return verdicts


def _calls(result: SearchResult) -> list[tuple[str, str]]:
    """(call, result) pairs of a conversation, for the reflection prompt."""
    results = {m.tool_call_id: m.content or "" for m in result.messages if m.role == "tool"}
    pairs = []
    for message in result.messages:
        for call in message.tool_calls:
            if call.function.name != FINISH_NAME:
                arguments = json.dumps(call.function.arguments, ensure_ascii=False)
                pairs.append((f"{call.function.name}({arguments})", results.get(call.id, "(no result)")[:600]))
    return pairs


def _last_observation(result: SearchResult, limit: int) -> str:
    for message in reversed(result.messages):
        if message.role == "tool":
            return (message.content or "")[:limit]
    return "(no tool result)"
