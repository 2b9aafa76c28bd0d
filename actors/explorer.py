"""Explorer actors: a policy, the tools, the long-term memory and a buffer client in one Ray actor.

The launcher creates them (`ray.remote(Explorer).options(max_restarts=...)`), hands them units of
work (a list of tools, one STE session each), and sends new weights with `load_weights` between
units. Episodes are pushed after every trial, so a crash loses at most the trial in flight; the
push blocks while the buffer's rate limiter holds explorers back (backpressure, bounded memory).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from actors.exploit import rejection
from actors.search import DFSDT, Budget, ReAct, Strategy
from actors.ste import STEConfig, explore


@dataclass(frozen=True)
class ExplorerConfig:
    redis_url: str
    table: str = "explore"
    model: str = "default"  # "default" (SmolLM2-135M-Instruct), "tiny" (random weights, tests), or a path
    threads: int = 1
    strategy: str = "react"  # react | react@N | dfsdt
    budget: Budget = field(default_factory=Budget)
    ste: STEConfig = field(default_factory=STEConfig)
    tool_timeout_s: float = 5.0
    push_timeout_s: float | None = None  # None: wait on the rate limiter as long as it takes
    seed: int = 0


def make_strategy(name: str, budget: Budget) -> Strategy:
    if name == "react":
        return ReAct(budget)
    if name.startswith("react@") and name[6:].isdigit() and int(name[6:]) >= 1:
        return ReAct(budget, n=int(name[6:]))
    if name == "dfsdt":
        return DFSDT(budget)
    raise ValueError(f"unknown strategy '{name}': use react, react@N or dfsdt")


def make_policy(model: str, threads: int):
    """A policy for a config's model: "default", "tiny" (both built on this node if needed) or a folder."""
    from actors.model import load_model, model_folder
    from actors.policy import TransformersPolicy

    loaded, tokenizer = load_model(model_folder(model))
    return TransformersPolicy(loaded, tokenizer, threads=threads)


class Explorer:
    def __init__(self, config: ExplorerConfig, name: str):
        # thread counts first: two processes with 2 threads each on 2 cores run 5-10x slower than 1 each
        os.environ["OMP_NUM_THREADS"] = str(config.threads)
        import torch

        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)

        from actors.embeddings import default_embedder
        from actors.memory import LongTermMemory
        from replay.buffer import ReplayBuffer
        from toolenv.registry import builtin_registry
        from toolenv.runner import Limits, ToolRunner

        self.config = config
        self.name = name
        self.policy = make_policy(config.model, config.threads)
        self.registry = builtin_registry()
        self.runner = ToolRunner(self.registry, Limits(timeout_s=config.tool_timeout_s))
        self.buffer = ReplayBuffer(config.redis_url, seed=config.seed)
        self.memory = LongTermMemory(self.buffer.redis, default_embedder())
        self.strategy = make_strategy(config.strategy, config.budget)

    def explore(self, tools: list[str]) -> dict[str, int]:
        """One STE session per tool; returns counts for the progress display."""
        counts = {"episodes": 0, "kept": 0, "solved": 0, "failed": 0, "duplicates": 0}
        for batch in explore(self.policy, self.registry, self.runner, tools, self.config.ste, self.memory,
                             self.strategy, actor=self.name):
            counts["failed"] += batch.failed
            if not batch.episodes:
                continue
            result = self.buffer.insert(self.config.table, batch.episodes, timeout=self.config.push_timeout_s)
            counts["episodes"] += result.inserted
            counts["duplicates"] += result.duplicates
            counts["kept"] += sum(rejection(e) is None for e in batch.episodes)
            counts["solved"] += sum(e.outcome.label == "solved" for e in batch.episodes)
        return counts

    def exploit(self, round: int, target_table: str, duplicate_threshold: float, paraphrases: bool,
                filtered: bool = True, calls_only: bool = False, max_per_call: int | None = None) -> dict[str, int]:
        """STE's exploitation of one round: keep the good episodes, add paraphrases, push them for the learner.

        `filtered=False` keeps every explored episode (the ablation "no exploitation filter"); `calls_only`
        keeps the calls of episodes rejected only for their answer (`actors.exploit.without_answer`);
        `max_per_call` caps the episodes kept per identical set of calls.
        """
        from actors.embeddings import default_embedder
        from collections import Counter

        from actors.exploit import Selection, paraphrase, select
        from replay.buffer import Filters
        from replay.codec import RecordError

        explored = [e for _, e in self.buffer.episodes(self.config.table, Filters(round=round))
                    if not isinstance(e, RecordError)]
        selection = select(explored, default_embedder(), duplicate_threshold, calls_only, max_per_call) if filtered else \
            Selection(explored, Counter())
        extra = paraphrase(self.policy, selection.kept) if paraphrases else []
        result = self.buffer.insert(target_table, selection.kept + extra, ignore_rate_limiter=True)
        return {"explored": len(explored), "kept": len(selection.kept), "paraphrased": len(extra),
                "inserted": result.inserted, **{f"dropped: {k}": v for k, v in selection.dropped.items()}}

    def load_weights(self, version: int, state_dict: dict) -> int:
        """Take policy version `version`; called between units, so an episode never mixes two versions."""
        self.policy.load_weights(version, state_dict)
        return self.policy.version

    def version(self) -> int:
        return self.policy.version

    def pid(self) -> int:
        return os.getpid()
