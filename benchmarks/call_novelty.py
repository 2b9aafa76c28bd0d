"""Example calls of `call` imagination: one per trial vs the most novel of several, in one run.

    .venv/bin/python benchmarks/call_novelty.py [--calls 3] [--sessions 4] [--trials 3] [--tools convert_currency,search_books]

For each tool, the same STE exploration (SmolLM2, the demo's settings, long-term memory in a fresh
Redis) runs twice: with one example call per trial, and with `--calls` of them of which the one with
values no earlier request stated is kept. Reports the trials that started (an example call ran), the
distinct values per argument across the kept calls, the share of calls that repeat a description's
example value, and the time.
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time

from actors.embeddings import default_embedder
from actors.explorer import make_policy
from actors.memory import LongTermMemory
from actors.search import Budget, FinishRule, ReAct
from actors.imagination import CallImagination
from actors.ste import STEConfig, explore
from replay.buffer import ReplayBuffer
from replay.server import EmbeddedRedis
from toolenv.registry import builtin_registry
from toolenv.runner import ToolRunner


def example_calls(policy, registry, memory, tool: str, calls: int, sessions: int, trials: int) -> tuple[list[dict], float]:
    config = STEConfig(trials_per_session=trials, max_new_tokens=112,
                       imagination=CallImagination(queries_per_call=6, max_optional_arguments=1, calls_per_session=calls))
    strategy = ReAct(Budget(max_turns=4, max_tool_calls=4), FinishRule(alone_after_success=True, max_answer_chars=100))
    started = time.perf_counter()
    found = []
    for batch in explore(policy, registry, ToolRunner(registry), [tool] * sessions, config, memory, strategy):
        found += [e.messages[2].tool_calls[0].function.arguments for e in batch.episodes]
    return found, time.perf_counter() - started


def description_values(spec: dict) -> set[str]:
    """The values a tool's documentation shows (its example call and the e.g. of each parameter)."""
    text = json.dumps(spec, ensure_ascii=False)
    return {token.strip("'\".,()") for token in text.replace("'", " ").split() if token.strip("'\".,()")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--tools", default="convert_currency,search_books")
    args = parser.parse_args()
    registry = builtin_registry()
    policy = make_policy("default", threads=2)
    print(f"{'tool':<20} {'calls/trial':>11} {'started':>8} {'distinct values per argument':<44} {'doc values':>10} {'time':>7}")
    with EmbeddedRedis(tempfile.mkdtemp(prefix="bench-novelty-")) as server:
        for tool in args.tools.split(","):
            shown = description_values(registry.get(tool).spec.openai())
            for calls in (1, args.calls):
                memory = LongTermMemory(ReplayBuffer(server.url).redis, default_embedder(), namespace=f"bench{calls}")
                found, seconds = example_calls(policy, registry, memory, tool, calls, args.sessions, args.trials)
                values = collections.defaultdict(set)
                for arguments in found:
                    for key, value in arguments.items():
                        values[key].add(json.dumps(value))
                per_key = ", ".join(f"{key} {len(v)}" for key, v in sorted(values.items()))
                copied = sum(any(str(v).strip('"') in shown for v in a.values() if isinstance(v, str)) for a in found)
                print(f"{tool:<20} {calls:>11} {len(found):>4}/{args.sessions * args.trials:<3} {per_key:<44} "
                      f"{copied:>4}/{len(found):<5} {seconds:>6.0f}s")


if __name__ == "__main__":
    main()
