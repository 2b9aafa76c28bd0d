"""Evaluation with the policy's turn cache against recomputing every prompt: same replies, less time.

    .venv/bin/python benchmarks/policy_turn_cache.py [--limit 12] [--threads 2] [--config configs/cpu-demo.yaml]

SmolLM2-135M, greedy ReAct with the config's search budget and eval.max_new_tokens, on the gold sets of
the config's round-1 tools (the demo's: 31 queries). The baseline is the same policy with the cache off
(`prefix_cache=False`); both decode with a static KV cache. Prints seconds, the ratio and whether every
query's record is identical.
"""
from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/cpu-demo.yaml")
    parser.add_argument("--limit", type=int, default=12, help="gold queries per tool")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from actors.search import make_strategy
    from actors.model import load_model, model_folder
    from actors.policy import Sampling
    from actors.transformers_policy import TransformersPolicy
    from evaluation.builtin import evaluate, gold_tasks
    from evaluation.judges import rule_judge
    from evaluation.metrics import summarize
    from launcher.config import load_config
    from toolenv.gold import load_gold_dir
    from toolenv.registry import builtin_registry
    from toolenv.runner import ToolRunner

    config = load_config(args.config)
    registry, gold = builtin_registry(), load_gold_dir()
    tools = config.tools.by_round(registry)[config.tools.rounds[0]]
    tasks = gold_tasks(registry, gold, tools, limit=args.limit)
    strategy = make_strategy(config.eval.strategy, config.explore.budget, config.explore.finish)
    sampling = Sampling(temperature=0.0, max_new_tokens=config.eval.max_new_tokens, seed=0)
    model, tokenizer = load_model(model_folder(config.model.path))
    results = {}
    for name, cached in (("recomputed", False), ("turn cache", True)):
        policy = TransformersPolicy(model, tokenizer, threads=args.threads, prefix_cache=cached)
        started = time.perf_counter()
        records = evaluate(policy, strategy, tasks, ToolRunner(registry), rule_judge, sampling)
        results[name] = (time.perf_counter() - started, records)
        print(f"{name}: {len(records)} queries of {', '.join(tools)} in {results[name][0]:.1f} s, "
              f"correct {summarize(records).correct:.1f}%")
    (plain, plain_records), (cached, cached_records) = results["recomputed"], results["turn cache"]
    same = [a.turns == b.turns and a.final_answer == b.final_answer for a, b in zip(plain_records, cached_records)]
    print(f"speed-up {plain / cached:.2f}x; identical records {sum(same)}/{len(same)}")


if __name__ == "__main__":
    main()
