"""The evaluation actor: a policy that takes published weights like an explorer, scored on the gold sets."""
from __future__ import annotations

import os


class Evaluator:
    def __init__(self, model: str, threads: int, strategy: str, budget, seed: int = 0, max_new_tokens: int = 160,
                 tool_sources: tuple[str, ...] = ("builtin",), tool_rounds: dict | None = None,
                 eval_sets: tuple[str, ...] = ()):
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
        from actors.explorer import make_policy, make_strategy
        from toolenv.gold import load_gold_dir
        from toolenv.sources import load_tools
        from toolenv.runner import ToolRunner

        self.policy = make_policy(model, threads)
        self.strategy = make_strategy(strategy, budget)
        self.registry = load_tools(tool_sources, tool_rounds)
        self.runner = ToolRunner(self.registry)
        from evaluation.evalset import by_tool, load_gold_set

        self.gold = load_gold_dir()
        for path in eval_sets:
            self.gold.update(by_tool(load_gold_set(path, self.registry)))
        self.seed = seed
        self.max_new_tokens = max_new_tokens

    def load_weights(self, version: int, state_dict: dict) -> int:
        self.policy.load_weights(version, state_dict)
        return self.policy.version

    def evaluate(self, tools: list[str], limit: int) -> dict:
        """`imaginarium eval`'s report for the policy's current version: summary, breakdowns, per-query records."""
        from actors.policy import Sampling
        from evaluation.builtin import evaluate, gold_tasks
        from evaluation.judges import rule_judge
        from evaluation.report import builtin_report

        tools = [name for name in tools if name in self.gold]  # a tool of the user's own has no built-in gold set
        tasks = gold_tasks(self.registry, self.gold, tools, limit=limit, seed=self.seed)
        records = evaluate(self.policy, self.strategy, tasks, self.runner, rule_judge,
                           Sampling(temperature=0.0, max_new_tokens=self.max_new_tokens, seed=self.seed), batch_size=32)
        meta = {"version": self.policy.version, "strategy": self.strategy.name, "seed": self.seed, "limit": limit,
                "temperature": 0.0, "judge": "rules"}
        return builtin_report(records, meta)
