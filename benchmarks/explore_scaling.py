"""Explorer episodes/s with 1 actor vs 2 actors on this machine, in one run (goal ≥ 1.7×).

    .venv/bin/python benchmarks/explore_scaling.py [--model default] [--episodes 8]

Each actor runs with 1 torch thread, so two actors on two cores don't fight over them.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import ray

from actors.explorer import ExplorerConfig
from actors.search import Budget
from actors.ste import STEConfig
from launcher.cluster import start_ray
from launcher.explore import plan_units, run_units, start_explorers
from replay.buffer import ReplayBuffer
from replay.server import EmbeddedRedis
from replay.tables import TableConfig

TOOLS = ["get_city_info", "convert_currency", "get_daily_weather", "convert_units"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--episodes", type=int, default=8, help="episodes per actor")
    args = parser.parse_args()
    start_ray(num_cpus=2)
    ste = STEConfig(trials_per_session=2, max_new_tokens=64)
    rows = []
    with EmbeddedRedis(tempfile.mkdtemp(prefix="bench-explore-")) as server:
        for count in (1, 2):
            buffer = ReplayBuffer(server.url)
            table = f"scale{count}"
            buffer.create_table(TableConfig(name=table))
            config = ExplorerConfig(redis_url=server.url, table=table, model=args.model, threads=1,
                                    budget=Budget(max_turns=3, max_tool_calls=3), ste=ste)
            actors = start_explorers(config, count, num_cpus=1)
            ray.get([a.version.remote() for a in actors])  # models loaded before the clock starts
            units = plan_units(TOOLS, args.episodes * count, trials_per_session=2, sessions_per_unit=2)
            started = time.perf_counter()
            totals = run_units(actors, units, trials_per_session=2)
            seconds = time.perf_counter() - started
            trials = totals.get("episodes", 0) + totals.get("failed", 0)
            rows.append((count, trials, seconds))
            for actor in actors:
                ray.kill(actor)
    base = rows[0][1] / rows[0][2]
    print(f"{'actors':>6} {'trials':>7} {'seconds':>8} {'trials/s':>9} {'speed-up':>9}")
    for count, trials, seconds in rows:
        print(f"{count:>6} {trials:>7} {seconds:>8.1f} {trials / seconds:>9.3f} {trials / seconds / base:>8.2f}x")


if __name__ == "__main__":
    main()
