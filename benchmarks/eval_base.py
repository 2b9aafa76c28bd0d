"""Base SmolLM2-135M on the built-in gold sets: STE's metrics and pass rate with ReAct and with DFSDT.

    .venv/bin/python benchmarks/eval_base.py [--limit 1] [--round 1] [--threads 2] [--out runs/eval-base]

The starting point exploration has to improve on. Greedy decoding, one seed, the gold tool offered
alone; `--limit` (queries per tool) and `--round` keep it within a few minutes on 2 cores. Prints one
markdown table per strategy and writes the JSON and markdown reports to --out/<strategy>/.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=1, help="gold queries per tool")
    parser.add_argument("--round", type=int, default=1, help="tools of this round (0: all rounds)")
    parser.add_argument("--strategies", default="react,dfsdt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--model", default="default", help="default (SmolLM2), tiny (a smoke test), or a path")
    parser.add_argument("--out", type=Path, default=Path("runs/eval-base"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from actors.explorer import make_policy
    from actors.policy import Sampling
    from actors.search import Budget, make_strategy
    from evaluation.builtin import select_tools
    from evaluation.evaluator import evaluate_gold
    from evaluation.report import builtin_markdown, write_report
    from toolenv.gold import load_gold_dir
    from toolenv.registry import builtin_registry

    registry, gold = builtin_registry(), load_gold_dir()
    tools = select_tools(registry, gold, round=args.round or None)
    policy = make_policy(args.model, threads=args.threads)
    budget = Budget(max_turns=4, max_expansions=6)
    for name in args.strategies.split(","):
        started = time.perf_counter()
        report = evaluate_gold(policy, make_strategy(name, budget), registry, gold, tools, limit=args.limit, seed=0,
                               sampling=Sampling(temperature=0.0, max_new_tokens=args.max_new_tokens, seed=0),
                               meta={"model": args.model, "round": args.round or "all"})
        report["meta"]["seconds"] = round(time.perf_counter() - started, 1)
        markdown = builtin_markdown(report)
        print(markdown)
        write_report(report, markdown, args.out / name, "builtin")


if __name__ == "__main__":
    main()
