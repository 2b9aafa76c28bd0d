"""Does showing memory in the example-call prompt widen a small model's exploration, or narrow it?

    .venv/bin/python benchmarks/memory_echo.py [--proposals 24] [--tools get_city_info,add_to_date,convert_currency]

For each tool, `call` imagination's first half (propose an example call) is sampled `--proposals` times at
the imagination temperature with three prompts: no memory shown (the baseline), one earlier request shown as
long-term memory, and the same request with its result shown as short-term memory (an earlier trial of the
session). The earlier request is the one the model writes for the tool's first documented example call.
Reports the proposals that ran, the distinct values of their required arguments, and how many repeat the
value shown; STE shows memories to push a model toward new ground, and a 135M model copies them instead.
"""
from __future__ import annotations

import argparse
import collections
import json

from actors import prompts
from actors.explorer import make_policy
from actors.policy import Sampling
from actors.imagination import CallImagination, parse_query
from toolenv.registry import builtin_registry
from toolenv.runner import ToolRunner


def proposals(policy, runner, spec: dict, conversation, n: int, sampling: Sampling) -> list[dict]:
    """The required arguments of the proposed calls that ran."""
    required = spec["function"]["parameters"].get("required", [])
    ran = []
    for reply in policy.chat([conversation] * n, [[spec]] * n, sampling, mode="tool_call"):
        if reply.message.tool_calls:
            call = reply.message.tool_calls[0].function
            if runner.call(call.name, call.arguments).ok:
                ran.append({key: call.arguments.get(key) for key in required})
    return ran


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--proposals", type=int, default=24)
    parser.add_argument("--tools", default="get_city_info,add_to_date,convert_currency")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    registry, policy = builtin_registry(), make_policy("default", threads=2)
    runner = ToolRunner(registry)
    proposing = CallImagination()  # how a run samples example calls
    sampling = Sampling(temperature=proposing.call_temperature, max_new_tokens=proposing.max_new_tokens, seed=args.seed)
    print(f"{'tool':<18} {'prompt shows':<22} {'ran':>5} {'distinct':>9} {'repeat shown':>13} {'distinct vs none':>17}")
    for tool in args.tools.split(","):
        spec = registry.get(tool).spec
        example = spec.examples[0]["arguments"]
        reply = policy.chat([prompts.query_from_call(tool, example)], [[]], Sampling(temperature=0.0, max_new_tokens=96),
                            mode="json", json_schema=prompts.QUERY_SCHEMA)[0]
        request = parse_query(reply.message.content or "", tool) or prompts.show_call(tool, example)
        result = runner.call(tool, example).content(300)
        shown = {key: example.get(key) for key in spec.parameters.get("required", [])}
        baseline = None
        for label, conversation in (("nothing", prompts.example_call([], [])),
                                    ("long-term memory", prompts.example_call([(request, True)], [])),
                                    ("short-term memory", prompts.example_call([], [(request, result, True)]))):
            ran = proposals(policy, runner, spec.openai(), conversation, args.proposals, sampling)
            distinct = len({json.dumps(values, sort_keys=True) for values in ran})
            repeats = sum(values == shown for values in ran)
            baseline = baseline or distinct
            print(f"{tool:<18} {label:<22} {len(ran):>5} {distinct:>9} {repeats:>13} {distinct / baseline:>16.2f}x")
        print(f"{'':<18} shown: {request!r} ({json.dumps(shown)})")
        common = collections.Counter(json.dumps(v) for v in ran).most_common(1)
        print(f"{'':<18} most common with short-term memory shown: {common}")


if __name__ == "__main__":
    main()
