"""Explorer actors on real Ray with a tiny model, pushing into a real Redis; crash and restart."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import ray
from typer.testing import CliRunner

from actors.explorer import ExplorerConfig
from actors.policy import Sampling
from actors.search import Budget
from actors.ste import STEConfig
from launcher.cli import app
from launcher.cluster import start_ray
from launcher.explore import plan_units, run_units, start_explorers
from replay.tables import TableConfig

FAST = STEConfig(trials_per_session=2, imagine=Sampling(max_new_tokens=96), solve=Sampling(max_new_tokens=48),
                 reflect=Sampling(max_new_tokens=32, temperature=0.0))


@pytest.fixture(scope="module")
def ray_local():
    start_ray(num_cpus=2)
    yield
    ray.shutdown()


def config(url: str) -> ExplorerConfig:
    return ExplorerConfig(redis_url=url, model="tiny", budget=Budget(max_turns=2, max_tool_calls=2), ste=FAST)


def test_two_actors_fill_the_buffer(ray_local, buffer):
    buffer.create_table(TableConfig(name="explore"))
    actors = start_explorers(config(buffer.url), 2, num_cpus=1)
    assert [len(unit) for unit in plan_units(["a", "b", "c"], 30, 4, 5)] == [4, 4]  # even, not 5 + 3
    assert [len(unit) for unit in plan_units(["a"], 11, 1, 4)] == [4, 4, 3]
    assert plan_units(["a"], 0, 4, 5) == []
    assert sum(plan_units(["a", "b", "c"], 30, 4, 5), []) == ["a", "b", "c"] * 2 + ["a", "b"]
    units = plan_units(["get_city_info", "convert_currency"], episodes=8, trials_per_session=2, sessions_per_unit=2)
    totals = run_units(actors, units, trials_per_session=2)
    stats = buffer.stats("explore")
    assert totals["episodes"] + totals.get("failed", 0) == 8
    assert stats.size == totals["episodes"] > 0
    assert set(stats.by_index) >= {"tool=get_city_info", "tool=convert_currency"}
    _, episode = next(buffer.episodes("explore"))
    assert episode.actor.startswith("explorer-") and episode.policy_version == 0
    assert episode.messages[0].role == "system" and episode.messages[1].role == "user"
    for actor in actors:
        ray.kill(actor)


def test_a_killed_actor_loses_nothing_acknowledged_and_is_restarted(ray_local, buffer):
    buffer.create_table(TableConfig(name="explore"))
    [actor] = start_explorers(config(buffer.url), 1, max_restarts=2, num_cpus=1)
    first_pid = ray.get(actor.pid.remote())
    units = plan_units(["get_city_info"], episodes=12, trials_per_session=2, sessions_per_unit=1)
    acknowledged: list[set[str]] = []

    def kill_after_first_push():
        while buffer.stats("explore").size == 0:
            time.sleep(0.05)
        acknowledged.append(set(buffer.ids("explore")))
        os.kill(first_pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_push)
    killer.start()
    totals = run_units([actor], units, trials_per_session=2)
    killer.join()
    assert totals["actor restarts"] >= 1
    assert ray.get(actor.pid.remote()) != first_pid  # Ray restarted it and it kept working
    assert acknowledged[0] <= set(buffer.ids("explore"))  # every pushed episode is still there
    ray.kill(actor)


def test_explore_cli_with_an_unknown_tool_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["explore", "--tools", "nope", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2 and "unknown tool(s) nope" in result.stderr
    result = CliRunner().invoke(app, ["explore", "--tools", "round:9", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no such round" in result.stderr
    result = CliRunner().invoke(app, ["explore", "--strategy", "bfs", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2 and "unknown strategy 'bfs'" in result.stderr


def test_the_real_smollm2_explores_a_built_in_tool_into_redis(buffer):
    """One STE trial with the real pretrained model, real tool calls, a real Redis; no Ray, to keep it short."""
    from actors.explorer import Explorer
    from replay.render import render_episode
    from rich.console import Console

    buffer.create_table(TableConfig(name="explore"))
    real = ExplorerConfig(redis_url=buffer.url, model="default", budget=Budget(max_turns=3, max_tool_calls=3),
                          ste=STEConfig(trials_per_session=1, solve=Sampling(temperature=0.0, max_new_tokens=64)))
    counts = Explorer(real, "explorer-real").explore(["get_city_info", "get_city_info"])
    assert counts["episodes"] + counts["failed"] == 2 and counts["episodes"] >= 1
    _, episode = next(buffer.episodes("explore"))
    assert "get_city_info" not in episode.query.lower()
    calls = [m.tool_calls[0].function for m in episode.messages if m.tool_calls]
    assert calls and all(c.name in ("get_city_info", "Finish") for c in calls)  # well-formed under the grammar
    tool_results = [m for m in episode.messages if m.role == "tool"]
    assert all(m.name == "get_city_info" for m in tool_results)
    console = Console(record=True, width=100)
    console.print(render_episode(episode))
    assert "imagined query" in console.export_text()
