"""Evaluation on gold sets (the built-in ones, or an eval set of your own tools): one task per gold entry,
through any policy and strategy.

A task offers the tools of the entry's gold calls (plus, optionally, distractor tools of the same round, so
picking the right API is part of the test) and runs through the strategy in batches, exactly as exploration
does, calling the real tools. Everything random (distractors, tool order, sampling) is seeded: a run repeats.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from actors.policy import Policy, Sampling
from actors.search import Strategy, Task
from evaluation.execution import ExecutionMatch
from evaluation.metrics import Judge, score
from evaluation.records import QueryRecord, path_turns
from toolenv.gold import GoldEntry
from toolenv.registry import Registry
from toolenv.runner import ToolRunner


@dataclass(frozen=True)
class GoldTask:
    entry: GoldEntry
    category: str
    round: int | None
    task: Task


def select_tools(registry: Registry, gold: dict[str, list[GoldEntry]], tools: Sequence[str] = (),
                 round: int | None = None) -> list[str]:
    """The tools to evaluate: those named (or all), of one round if given, that have a gold set.

    ValueError for an unknown tool or round, or a tool without gold entries, listing what exists.
    """
    if round is not None and round not in registry.rounds():
        raise ValueError(f"no round {round}; rounds: {', '.join(map(str, registry.rounds()))}")
    for name in tools:
        if name not in registry:
            raise ValueError(f"no tool {name!r}; tools: {', '.join(registry.names())}")
        if not gold.get(name):
            raise ValueError(f"tool {name!r} has no gold set; tools with one: {', '.join(sorted(gold))}")
    names = list(tools) or [name for name in registry.names() if gold.get(name)]
    selected = [name for name in names if round is None or registry.get(name).spec.round == round]
    if not selected:
        raise ValueError(f"none of {', '.join(names)} belongs to round {round}")
    return selected


def gold_tasks(registry: Registry, gold: dict[str, list[GoldEntry]], tools: Sequence[str], limit: int | None = None,
               distractors: int = 0, seed: int = 0) -> list[GoldTask]:
    """One task per gold entry (the first `limit` of each tool), with `distractors` other tools of its round."""
    tasks = []
    for name in tools:
        spec = registry.get(name).spec
        for entry in gold[name][:limit]:
            called = list(dict.fromkeys([name, *(call.name for call in entry.calls)]))
            pool = sorted(tool.name for tool in registry if tool.spec.round == spec.round and tool.name not in called)
            rng = random.Random(f"{seed}:{entry.id}")
            offered = [*called, *rng.sample(pool, min(distractors, len(pool)))]
            rng.shuffle(offered)  # the gold tool is not always first
            specs = tuple(registry.get(tool).spec.openai() for tool in offered)
            tasks.append(GoldTask(entry, spec.category, spec.round, Task(query=entry.query, tools=specs)))
    return tasks


def with_retrieved_tools(tasks: Sequence[GoldTask], registry: Registry, retriever, k: int) -> tuple[list[GoldTask], float]:
    """ToolLLM's "retrieved APIs" setting: each query is offered the retriever's top `k` tools of the whole registry
    instead of its gold tools. A gold tool left out cannot be called, so its query is scored a miss. Returns the
    tasks and the recall (share of queries whose gold tools were all retrieved)."""
    top = retriever.top_k([item.task.query for item in tasks], k)
    out, hits = [], 0
    for item, names in zip(tasks, top):
        hits += {call.name for call in item.entry.calls} <= set(names)
        out.append(replace(item, task=replace(item.task, tools=tuple(registry.get(name).spec.openai() for name in names))))
    return out, hits / max(1, len(tasks))


def with_demonstrations(tasks: Sequence[GoldTask], demonstrations, k: int,
                        fits: Callable[[list], bool] = lambda messages: True) -> list[GoldTask]:
    """STE's in-context learning: before each query, the `k` kept episodes most similar to it that use only the
    query's offered tools. None is the query's own episode or one whose query is any evaluation query."""
    queries = {item.task.query for item in tasks}
    out = []
    for item in tasks:
        offered = {spec["function"]["name"] for spec in item.task.tools}
        shown = demonstrations.for_query(item.task.query, k, offered, exclude=queries, fits=fits)
        out.append(replace(item, task=replace(item.task, demonstrations=tuple(shown))))
    return out


def evaluate(policy: Policy, strategy: Strategy, tasks: Sequence[GoldTask], runner: ToolRunner, judge: Judge,
             sampling: Sampling, batch_size: int = 16,
             progress: Callable[[int], None] = lambda done: None) -> list[QueryRecord]:
    """Run every task through the strategy, `batch_size` at a time, and score the records (execution match
    runs the gold calls and the model's calls again through `runner`).

    Batch b samples with seed `sampling.seed + b`: the same seed and batch size repeat the run.
    """
    records = []
    for start in range(0, len(tasks), batch_size):
        batch = tasks[start:start + batch_size]
        seeded = replace(sampling, seed=None if sampling.seed is None else sampling.seed + start // batch_size)
        results = strategy.run(policy, runner, [item.task for item in batch], seeded)
        for item, result in zip(batch, results):
            prefix = 2 + len(item.task.demonstrations)  # system, demonstrations, user: not the model's turns
            records.append(QueryRecord(
                id=item.entry.id, tool=item.entry.tool, category=item.category, round=item.round,
                query=item.entry.query, gold=item.entry,
                turns=path_turns(result.messages, [*item.task.tools, strategy.finish.tool], start=prefix),
                final_answer=result.outcome.final_answer, gave_up=result.outcome.gave_up, strategy=strategy.name,
                tool_calls=result.search.tool_calls, tokens=result.tokens.prompt + result.tokens.completion,
            ))
        progress(len(records))
    specs = {call.name: runner.registry.get(call.name).spec for task in tasks for call in task.entry.calls}
    return score(records, judge, specs, ExecutionMatch(runner))
