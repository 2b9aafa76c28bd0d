"""DFSDT with batched expansion vs one task at a time, with the real SmolLM2-135M on CPU.

    .venv/bin/python benchmarks/dfsdt_batching.py [--tasks 6] [--expansions 3] [--threads 2] [--model default]

The same tasks (one gold query from each of the first N round-1 tools) and the same budgets are
searched twice with greedy decoding: sequentially (`DFSDT.run` on one task at a time) and batched
(`DFSDT.run` on all of them, so every step expands the open node of every task in one `generate`).
Prints expanded nodes per second for each and the ratio (goal: batched ≥ 2x), and how many trees
came out identical (left padding can change a float here and there, so not always all of them).
"""
from __future__ import annotations

import argparse
import os
import time

from rich.console import Console
from rich.table import Table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=6, help="tasks (one gold query of each of the first N round-1 tools)")
    parser.add_argument("--expansions", type=int, default=3, help="DFSDT expansions per task")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--model", default="default", help="default (SmolLM2), tiny (a smoke test), or a path")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from actors.explorer import make_policy
    from actors.policy import Sampling
    from actors.search import DFSDT, Budget
    from evaluation.builtin import gold_tasks
    from toolenv.gold import load_gold_dir
    from toolenv.registry import builtin_registry
    from toolenv.runner import ToolRunner

    registry, gold = builtin_registry(), load_gold_dir()
    tools = [tool.name for tool in registry.by_round(1) if gold.get(tool.name)][:args.tasks]
    tasks = [item.task for item in gold_tasks(registry, gold, tools, limit=1)]
    runner = ToolRunner(registry)
    policy = make_policy(args.model, threads=args.threads)
    sampling = Sampling(temperature=0.0, max_new_tokens=args.max_new_tokens)
    strategy = DFSDT(Budget(max_expansions=args.expansions, max_turns=3, max_children=2))
    # one batched expansion first: grammars compile once per tool set, and neither timed run should pay for it
    DFSDT(Budget(max_expansions=1)).run(policy, runner, tasks, sampling)

    started = time.perf_counter()
    sequential = [strategy.run(policy, runner, [task], sampling)[0] for task in tasks]
    sequential_s = time.perf_counter() - started
    started = time.perf_counter()
    batched = strategy.run(policy, runner, tasks, sampling)
    batched_s = time.perf_counter() - started

    def nodes(results) -> int:
        return sum(result.search.expansions for result in results)

    def shape(result) -> list:
        return [(node.parent, node.status, [call.function.name for m in node.messages for call in m.tool_calls])
                for node in result.search.nodes]

    same = sum(shape(a) == shape(b) for a, b in zip(sequential, batched))
    table = Table("DFSDT expansion", "tasks", "nodes", "seconds", "nodes/s", "ratio")
    rate_sequential, rate_batched = nodes(sequential) / sequential_s, nodes(batched) / batched_s
    table.add_row("one task at a time", str(len(tasks)), str(nodes(sequential)), f"{sequential_s:.1f}",
                  f"{rate_sequential:.2f}", "1.00")
    table.add_row("all tasks batched", str(len(tasks)), str(nodes(batched)), f"{batched_s:.1f}",
                  f"{rate_batched:.2f}", f"{rate_batched / rate_sequential:.2f}")
    console = Console()
    console.print(table)
    console.print(f"identical trees: {same}/{len(tasks)}; threads {args.threads}, greedy, "
                  f"max_new_tokens {args.max_new_tokens}, {args.expansions} expansions per task")


if __name__ == "__main__":
    main()
