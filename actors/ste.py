"""Simulated trial and error: imagine a query for a tool, try it for real, reflect on the result.

A session explores one tool over several trials; later trials see the earlier ones (short-term
memory) and ask follow-ups; imagination is also shown the most similar queries explored before
for that tool (long-term memory), to push toward new ground. Sessions run side by side: each step
of a trial is one batched model call over all sessions. How a query is imagined and who judges the
trial is the config's `Imagination` (`actors.imagination`: STE's `docs`, or `call` for small models).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Iterator

from pydantic import BaseModel, ConfigDict, Field

from actors.imagination import DocsImagination, Imagination, Recollection, Session
from actors.memory import LongTermMemory
from actors.policy import Policy, Sampling
from actors.search import ReAct, SearchResult, Strategy, Task
from replay.episode import Episode, TokenCounts
from toolenv.registry import Registry
from toolenv.runner import ToolRunner


class STEConfig(BaseModel):
    """STE's settings, one model: a run's `explore:` section holds these keys (and the explorers' own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials_per_session: int = Field(4, ge=1)  # STE's short-term memory slots
    use_long_term_memory: bool = True
    memory_k: int = Field(6, ge=1)  # long-term memories shown to imagination
    imagination: Imagination = Field(default_factory=DocsImagination)
    observation_chars_in_memory: int = Field(300, ge=1)
    solve_temperature: float = Field(0.4, ge=0)  # trying the query: warm enough that trials differ
    max_new_tokens: int = Field(160, ge=16)  # per turn while trying

    @property
    def solve(self) -> Sampling:
        return Sampling(temperature=self.solve_temperature, max_new_tokens=self.max_new_tokens)


@dataclass
class TrialBatch:
    """What one trial step of all sessions produced: episodes to push, and trials that failed to start."""

    episodes: list[Episode]
    failed: int


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
    seed: int = 0,
) -> Iterator[TrialBatch]:
    """One session per entry of `tools`; yields after every trial so the caller can push what is done."""
    strategy = strategy or ReAct()
    sessions = [Session(tool, registry.get(tool).spec.round or 0, uuid.uuid4().hex[:12]) for tool in tools]
    for trial in range(config.trials_per_session):
        started = time.perf_counter()
        # 1. imagine
        recollection = Recollection(memory, sessions, registry, config.memory_k, config.use_long_term_memory)
        imagined = config.imagination.imagine(policy, registry, runner, sessions, recollection,
                                              strategy.budget.max_observation_chars, seed)
        imagine_s = time.perf_counter() - started
        failed = sum(1 for i in imagined if i.query is None)
        live = [(s, i) for s, i in zip(sessions, imagined) if i.query is not None]
        if not live:
            yield TrialBatch([], failed)
            continue
        # 2. try, with real tool calls
        tasks = [Task(query=i.query, tools=(registry.get(s.tool).spec.openai(),), prefix=i.prefix) for s, i in live]
        results = strategy.run(policy, runner, tasks, config.solve)
        # 3. reflect (a chain that never answered cannot have solved the query), or judge by execution
        reflect_started = time.perf_counter()
        verdicts = config.imagination.judge(policy, [i.query for _, i in live], results)
        reflect_s = time.perf_counter() - reflect_started
        episodes = []
        for (session, idea), result, verdict in zip(live, results, verdicts):
            result.outcome.reflection = verdict
            solved = verdict is not None and verdict.solved
            session.trials.append((idea.query, _last_observation(result, config.observation_chars_in_memory), solved))
            tokens = TokenCounts(prompt=result.tokens.prompt + idea.tokens.prompt,
                                 completion=result.tokens.completion + idea.tokens.completion)
            episodes.append(Episode(
                tools=[session.tool], tool_specs=[registry.get(session.tool).spec.openai(), strategy.finish.tool],
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


def _last_observation(result: SearchResult, limit: int) -> str:
    for message in reversed(result.messages):
        if message.role == "tool":
            return (message.content or "")[:limit]
    return "(no tool result)"
