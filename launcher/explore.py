"""Drive explorer actors over a list of tools until the requested number of episodes is pushed."""
from __future__ import annotations

import collections
import math
from dataclasses import replace

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from actors.explorer import Explorer, ExplorerConfig


def start_explorers(config: ExplorerConfig, count: int, max_restarts: int = 3, num_cpus: float = 1.0,
                    resources: dict | None = None) -> list:
    """N explorer actors; Ray restarts a dead one (`max_restarts`), the driver resubmits its unit or stream.

    Threaded (`max_concurrency`): in continual mode `load_weights`, `stop` and `progress` arrive while `stream` runs.
    """
    import ray

    remote = ray.remote(Explorer).options(max_restarts=max_restarts, num_cpus=num_cpus, resources=resources or {},
                                          max_concurrency=4)
    return [remote.remote(replace(config, seed=config.seed + i), f"explorer-{i}") for i in range(count)]


def plan_units(tools: list[str], episodes: int, trials_per_session: int, sessions_per_unit: int) -> list[list[str]]:
    """Sessions (one tool each, round-robin over tools) grouped into units of work, one actor call each.

    Units are as even as `sessions_per_unit` allows (8 sessions at 5 per unit: 4 + 4, not 5 + 3): a
    round lasts as long as its slowest actor.
    """
    sessions = [tools[i % len(tools)] for i in range(math.ceil(episodes / trials_per_session))]
    if not sessions:
        return []
    count = math.ceil(len(sessions) / sessions_per_unit)
    sizes = [len(sessions) // count + (i < len(sessions) % count) for i in range(count)]
    starts = [sum(sizes[:i]) for i in range(count)]
    return [sessions[start : start + size] for start, size in zip(starts, sizes)]


def run_units(actors: list, units: list[list[str]], trials_per_session: int, retries: int = 1) -> dict[str, int]:
    """Hand units to idle actors; a unit whose actor died is resubmitted (its pushed trials are kept)."""
    import ray
    from ray.exceptions import RayActorError

    totals: collections.Counter = collections.Counter()
    pending = [(unit, 0) for unit in units]
    in_flight: dict = {}
    idle = list(actors)
    columns = [TextColumn("[bold]exploring"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn()]
    with Progress(*columns, transient=False) as progress:
        bar = progress.add_task("explore", total=sum(len(u) for u in units) * trials_per_session, info="")
        while pending or in_flight:
            while pending and idle:
                actor = idle.pop()
                unit, attempt = pending.pop(0)
                in_flight[actor.explore.remote(unit)] = (actor, unit, attempt)
            done, _ = ray.wait(list(in_flight), num_returns=1)
            actor, unit, attempt = in_flight.pop(done[0])
            idle.append(actor)
            try:
                counts = ray.get(done[0])
            except RayActorError:
                totals["actor restarts"] += 1
                if attempt < retries:
                    pending.append((unit, attempt + 1))
                continue
            totals.update(counts)
            progress.update(bar, advance=len(unit) * trials_per_session,
                            info=f"episodes {totals['episodes']}  kept {totals['kept']}  failed {totals['failed']}")
    return dict(totals)
