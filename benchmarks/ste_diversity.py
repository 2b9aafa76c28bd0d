"""Diversity of imagined queries with and without long-term memory, in one run.

    .venv/bin/python benchmarks/ste_diversity.py [--queries 16] [--tools get_city_info,convert_currency]

For each tool, imagination writes `--queries` queries one after another. With long-term memory,
each one is shown the most similar earlier queries (as the explorers do); without, it sees none.
Reports distinct queries and mean pairwise cosine similarity (MiniLM): lower similarity = wider.
"""
from __future__ import annotations

import argparse
import tempfile

from actors import prompts
from actors.embeddings import default_embedder, mean_pairwise_similarity
from actors.explorer import make_policy
from actors.memory import LongTermMemory
from actors.policy import Sampling
from actors.imagination import parse_query
from replay.buffer import ReplayBuffer
from replay.server import EmbeddedRedis
from toolenv.registry import builtin_registry


def imagine(policy, tool, memory, n: int, k: int) -> list[str]:
    spec = builtin_registry().get(tool).spec.openai()["function"]
    queries: list[str] = []
    for _ in range(n):
        explored = memory.recall(tool, queries[-1] if queries else spec["description"], k) if memory else []
        [reply] = policy.chat([prompts.imagination(spec, explored, [])], [[]], Sampling(temperature=1.0, max_new_tokens=96),
                              mode="json", json_schema=prompts.QUERY_SCHEMA)
        query = parse_query(reply.message.content or "", tool)
        if query:
            queries.append(query)
            if memory:
                memory.add(tool, [(query, False)])
    return queries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--tools", default="get_city_info,convert_currency")
    parser.add_argument("--k", type=int, default=6)
    args = parser.parse_args()
    policy = make_policy("default", threads=2)
    embed = default_embedder()
    print(f"{'tool':<22} {'memory':<7} {'queries':>7} {'distinct':>8} {'mean sim':>9}")
    with EmbeddedRedis(tempfile.mkdtemp(prefix="bench-diversity-")) as server:
        memory = LongTermMemory(ReplayBuffer(server.url).redis, embed)
        for tool in args.tools.split(","):
            for label, mem in (("none", None), ("ltm", memory)):
                queries = imagine(policy, tool, mem, args.queries, args.k)
                distinct = len({q.lower() for q in queries})
                similarity = mean_pairwise_similarity(embed(queries)) if queries else float("nan")
                print(f"{tool:<22} {label:<7} {len(queries):>7} {distinct:>8} {similarity:>9.3f}")


if __name__ == "__main__":
    main()
