"""How a trial's query comes about, and who judges the trial: one strategy per kind of imagination.

- `DocsImagination`, STE's own: the model writes a query from the tool's documentation and both memories, and
  reflects afterwards on whether its answer solved it.
- `CallImagination`, for small models: try first, then imagine. The model makes example calls, which are run;
  of those that succeed, the most novel is kept, the model writes the request that call answers, and the trial
  continues from the call and its result, judged by execution rather than by the model's reflection.

Each brings its own settings, prompts and judge; the search strategies and the budget know nothing of either.
A config names one by `kind` (`imagination: call`, or a mapping with its settings).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from actors import prompts
from actors.exploit import MIN_QUERY_CHARS, mentioned, repeats_a_value
from actors.memory import LongTermMemory, Memory, most_similar
from actors.policy import Policy, Sampling
from actors.search import FINISH_NAME, SearchResult
from replay.episode import FunctionCall, Message, Reflection, TokenCounts, ToolCall
from toolenv.registry import Registry
from toolenv.runner import ToolRunner
from toolenv.validation import is_default


@dataclass
class Session:
    """One tool explored over several trials; its trials are STE's short-term memory."""

    tool: str
    round: int
    id: str
    trials: list[tuple[str, str, bool]] = field(default_factory=list)  # (query, what the tool returned, solved)


@dataclass
class Imagined:
    """One session's imagination: the query (None if unusable), its token counts, and (call imagination) the
    trial's first turns: the example call the query was written from, and its result."""

    query: str | None
    tokens: TokenCounts
    prefix: tuple[Message, ...] = ()


class Recollection:
    """Long-term memory as one trial step sees it: every session's tool read once, similar queries on demand."""

    def __init__(self, memory: LongTermMemory | None, sessions: list[Session], registry: Registry, k: int,
                 shown: bool):
        self.memory, self.sessions, self.registry, self.k, self.shown = memory, sessions, registry, k, shown
        self.remembered: dict[str, list[Memory]] = {
            tool: memory.read(tool) if memory is not None else [] for tool in {s.tool for s in sessions}}

    def recalled(self) -> list[list[tuple[str, bool]]]:
        """Per session, the `k` remembered queries most similar to its last trial (the tool's description at
        first); none where long-term memory is not shown."""
        if self.memory is None or not self.shown:
            return [[] for _ in self.sessions]
        contexts = [s.trials[-1][0] if s.trials else self.registry.get(s.tool).spec.openai()["function"]["description"]
                    for s in self.sessions]
        return [most_similar(self.remembered[s.tool], vector, self.k)
                for s, vector in zip(self.sessions, self.memory.embed(contexts))]


def parse_query(text: str, tool: str = "") -> str | None:
    """Imagination's JSON reply → the query, or None if it is not a usable {"query": str}.

    A query that names the tool is refused: users don't know API names, and STE imagines without them.
    """
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    query = value.get("query") if isinstance(value, dict) else None
    if not isinstance(query, str) or len(query.strip()) < MIN_QUERY_CHARS:
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


class DocsImagination(BaseModel):
    """STE's imagination: a query from the documentation and both memories; the model's reflection judges."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["docs"] = "docs"
    temperature: float = Field(1.0, ge=0)  # writing the query: hot, for diverse requests
    max_new_tokens: int = Field(96, ge=16)

    def imagine(self, policy: Policy, registry: Registry, runner: ToolRunner, sessions: list[Session],
                memory: Recollection, observation_chars: int, seed: int) -> list[Imagined]:
        conversations = [prompts.imagination(registry.get(s.tool).spec.openai()["function"], memories, s.trials)
                         for s, memories in zip(sessions, memory.recalled())]
        replies = policy.chat(conversations, [[] for _ in sessions], Sampling(self.temperature, max_new_tokens=self.max_new_tokens),
                              mode="json", json_schema=prompts.QUERY_SCHEMA)
        return [Imagined(parse_query(r.message.content or "", s.tool), TokenCounts(r.prompt_tokens, r.completion_tokens))
                for s, r in zip(sessions, replies)]

    def judge(self, policy: Policy, queries: list[str], results: list[SearchResult]) -> list[Reflection | None]:
        """The model's verdicts on chains that answered (None if unusable); no answer is never solved."""
        verdicts: list[Reflection | None] = [
            Reflection(solved=False, reason="no final answer") if r.outcome.final_answer is None else None for r in results
        ]
        asked = [i for i, r in enumerate(results) if r.outcome.final_answer is not None]
        if asked:
            conversations = [prompts.reflection(queries[i], _calls(results[i]), results[i].outcome.final_answer) for i in asked]
            replies = policy.chat(conversations, [[] for _ in asked], Sampling(temperature=0.0, max_new_tokens=80),
                                  mode="json", json_schema=prompts.VERDICT_SCHEMA)
            for i, reply in zip(asked, replies):
                verdicts[i] = parse_verdict(reply.message.content or "")
        return verdicts


class CallImagination(BaseModel):
    """Execution-grounded imagination for small models: an example call first, then the request it answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["call"] = "call"
    # example calls proposed per trial; of those that run, the one with the most values no earlier request of the
    # tool stated is kept. A small model ignores "choose different values" (it copies the description's examples),
    # so long-term memory widens exploration by selection instead of by instruction
    calls_per_session: int = Field(1, ge=1)
    call_temperature: float = Field(1.0, ge=0)
    # optional arguments an example call keeps (a random few of those the model gave; None: all), so a tool is
    # explored an option or two at a time, as a request would use it, not with every filter set
    max_optional_arguments: int | None = Field(None, ge=0)
    queries_per_call: int = Field(4, ge=1)  # requests imagined per example call; the one stating most values is kept
    # the call's values already carry the diversity, so requests are sampled cooler: at 1.0 a 135M model's
    # requests drift off the call ("How many innings are in the value of")
    request_temperature: float = Field(0.5, ge=0)
    max_new_tokens: int = Field(96, ge=16)
    # memories in the example-call prompt. A 135M model echoes what it is shown (a Lyon request in memory: 13 of
    # 13 proposals that ran are Lyon; none shown: 4 cities; benchmarks/memory_echo.py), so for it memory widens
    # exploration only through the selection above
    show_memory: bool = True

    def imagine(self, policy: Policy, registry: Registry, runner: ToolRunner, sessions: list[Session],
                memory: Recollection, observation_chars: int, seed: int) -> list[Imagined]:
        """Example calls, run for real; a call that fails yields no query (its values are not usable); of those
        that succeed, the most novel one that does not repeat a value is turned into the request it answers."""
        rng = random.Random(f"{seed}:{sessions[0].id}")
        k = self.calls_per_session
        specs = [[registry.get(s.tool).spec.openai()] for s in sessions]
        recalled = memory.recalled() if self.show_memory else [[] for _ in sessions]
        conversations = [prompts.example_call(memories, s.trials if self.show_memory else [])
                         for s, memories in zip(sessions, recalled)]
        proposals = policy.chat([c for c in conversations for _ in range(k)], [s for s in specs for _ in range(k)],
                                Sampling(self.call_temperature, max_new_tokens=self.max_new_tokens), mode="tool_call")
        counts = [TokenCounts(sum(r.prompt_tokens for r in proposals[i * k:(i + 1) * k]),
                              sum(r.completion_tokens for r in proposals[i * k:(i + 1) * k])) for i in range(len(sessions))]
        explored = _explored_requests(memory.remembered, sessions)
        ran: dict[int, tuple[Message, ...]] = {}
        for i, session in enumerate(sessions):
            candidates = []
            for reply in proposals[i * k:(i + 1) * k]:
                if not reply.message.tool_calls:
                    continue
                call = _fewer_options(reply.message.tool_calls[0], registry, self.max_optional_arguments, rng)
                observation = runner.call(call.function.name, call.function.arguments)
                if observation.ok:
                    score = (not repeats_a_value(call.function.arguments),
                             _novel_values(call.function, registry, explored[session.tool]))
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
            n = self.queries_per_call
            replies = policy.chat([prompts.query_from_call(call.name, call.arguments) for call in calls for _ in range(n)],
                                  [[] for _ in range(len(asked) * n)],
                                  Sampling(self.request_temperature, max_new_tokens=self.max_new_tokens), mode="json",
                                  json_schema=prompts.QUERY_SCHEMA)
            for j, (i, call) in enumerate(zip(asked, calls)):
                candidates = replies[j * n:(j + 1) * n]
                queries = [q for q in (parse_query(r.message.content or "", sessions[i].tool) for r in candidates) if q]
                tokens = TokenCounts(counts[i].prompt + sum(r.prompt_tokens for r in candidates),
                                     counts[i].completion + sum(r.completion_tokens for r in candidates))
                out[i] = Imagined(_most_faithful(queries, call, registry), tokens, ran[i])
        return out

    def judge(self, policy: Policy, queries: list[str], results: list[SearchResult]) -> list[Reflection | None]:
        """Solved when the trial, which began with the call its request was written from, answered and its last
        call ran. No model is asked: a small model's own reflection is noise, and whether the answer is faithful
        to the results is exploitation's check."""
        return [_judged_by_execution(result) for result in results]


def _imagination_kind(value):
    """`imagination: call` is `imagination: {kind: call}` with that kind's defaults."""
    return {"kind": value} if isinstance(value, str) else value


Imagination = Annotated[Union[DocsImagination, CallImagination], Field(discriminator="kind"),
                        BeforeValidator(_imagination_kind)]


def _explored_requests(remembered: dict[str, list[Memory]], sessions: list[Session]) -> dict[str, list[str]]:
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
    if result.outcome.final_answer is None:
        return Reflection(solved=False, reason="no final answer")
    if not result.outcome.last_call_ok:
        return Reflection(solved=False, reason="its last call failed")
    return Reflection(solved=True, reason="answered after the call the request was written from, which ran")


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
