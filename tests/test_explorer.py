"""Explorer actors on real Ray with a tiny model, pushing into a real Redis; crash and restart."""
from __future__ import annotations

import os
import signal
import threading
import time

import jsonschema
import pytest
import ray
from typer.testing import CliRunner

from actors.explorer import ExplorerConfig
from actors.search import Budget
from actors.ste import STEConfig
from launcher.cli import app
from launcher.cluster import start_ray
from launcher.explore import plan_units, run_units, start_explorers
from replay.tables import TableConfig

FAST = STEConfig(trials_per_session=2, max_new_tokens=48)


@pytest.fixture(scope="module")
def ray_local():
    start_ray(num_cpus=2)
    yield
    ray.shutdown()


def config(url: str) -> ExplorerConfig:
    return ExplorerConfig(redis_url=url, model="tiny", budget=Budget(max_turns=2, max_tool_calls=2), ste=FAST)


def test_units_are_as_even_as_the_sessions_allow():
    """A pure function, tested without Ray: a round lasts as long as its slowest actor's unit."""
    assert [len(unit) for unit in plan_units(["a", "b", "c"], 30, 4, 5)] == [4, 4]  # even, not 5 + 3
    assert [len(unit) for unit in plan_units(["a"], 11, 1, 4)] == [4, 4, 3]
    assert plan_units(["a"], 0, 4, 5) == []
    assert sum(plan_units(["a", "b", "c"], 30, 4, 5), []) == ["a", "b", "c"] * 2 + ["a", "b"]


def test_two_actors_fill_the_buffer(ray_local, buffer):
    buffer.create_table(TableConfig(name="explore"))
    actors = start_explorers(config(buffer.url), 2, num_cpus=1)
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


@pytest.fixture
def process_state(monkeypatch):
    """An in-process Explorer seeds torch and sets its threads and OMP_NUM_THREADS for the whole process;
    later tests get the state they had back."""
    import torch

    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))  # restored on teardown
    with torch.random.fork_rng(devices=[]):
        yield
    torch.set_num_threads(threads)


def check_react_turns(episode, tool: str, max_turns: int) -> None:
    """What ReAct records whatever the model writes: each assistant turn is one well-formed call of an offered
    function or a reply that failed to parse, followed by what it caused; the outcome counts those calls."""
    from actors.search import FINISH_NAME

    schema = episode.tool_specs[0]["function"]["parameters"]
    turns = episode.messages[2:]
    assistant = [i for i, m in enumerate(turns) if m.role == "assistant"]
    assert turns and turns[0].role == "assistant" and 1 <= len(assistant) <= max_turns
    results = []
    for i in assistant:
        message, following = turns[i], turns[i + 1:i + 2]
        if not message.tool_calls:  # cut off or unparsable: the model is told so
            assert following and following[0].role == "user" and "not a valid tool call" in following[0].content
            continue
        (call,) = message.tool_calls
        if call.function.name == FINISH_NAME:
            assert results and not following  # offered only after a real call; it ends the chain
            assert call.function.arguments["return_type"] in ("give_answer", "give_up_and_restart")
            continue
        assert call.function.name == tool
        jsonschema.validate(call.function.arguments, schema)  # the grammar allows only schema-valid arguments
        (result,) = following
        assert result.role == "tool" and result.tool_call_id == call.id and result.name == tool
        results.append(result.content)
    failed = sum(content.startswith('{"error": ') for content in results)
    assert (episode.outcome.tool_calls_ok, episode.outcome.tool_calls_failed) == (len(results) - failed, failed)
    finish = [m.tool_calls[0].function for m in turns if m.tool_calls and m.tool_calls[0].function.name == FINISH_NAME]
    answered = [f.arguments.get("final_answer") for f in finish if f.arguments["return_type"] == "give_answer"]
    assert episode.outcome.final_answer == (answered[0] if answered else None)


def test_the_real_smollm2_explores_a_built_in_tool_into_redis(buffer, process_state):
    """STE trials with the real pretrained model, real tool calls, a real Redis; no Ray, to keep it short.

    The imagined queries are sampled and the calls decoded on this CPU's kernels, and the trajectory even
    changes with what ran before in the process (the first use of SmolLM2 builds its fp32 cache with a
    randomly initialised model, drawing from the RNG the Explorer had just seeded). So the test checks what
    holds under any numerics (accounting, the grammar, ReAct's structure, the codec's round trip), never
    which query or call one trajectory happened to take.
    """
    from actors.exploit import rejection
    from actors.explorer import Explorer
    from replay.codec import decode, encode
    from replay.render import render_episode
    from rich.console import Console

    buffer.create_table(TableConfig(name="explore"))
    budget = Budget(max_turns=3, max_tool_calls=3)
    real = ExplorerConfig(redis_url=buffer.url, model="default", budget=budget,
                          ste=STEConfig(trials_per_session=1, solve_temperature=0.0, max_new_tokens=64))
    counts = Explorer(real, "explorer-real").explore(["get_city_info", "get_city_info"])

    assert counts["episodes"] + counts["failed"] == 2  # each session pushed its trial or failed to imagine one
    stored = list(buffer.episodes("explore"))
    assert len(stored) == buffer.stats("explore").size == counts["episodes"]
    assert counts["solved"] == sum(e.outcome.label == "solved" for _, e in stored)
    assert counts["kept"] == sum(rejection(e) is None for _, e in stored)
    console = Console(record=True, width=100)
    for key, episode in stored:
        assert key == episode.id and decode(encode(episode)) == episode
        assert episode.tools == ["get_city_info"] and episode.actor == "explorer-real" and episode.trial == 0
        assert len(episode.query) >= 8 and "get_city_info" not in episode.query.lower()  # STE's imagination rule
        assert [m.role for m in episode.messages[:2]] == ["system", "user"]
        assert episode.messages[1].content == episode.query
        check_react_turns(episode, "get_city_info", budget.max_turns)
        console.print(render_episode(episode))
        assert "imagined query" in console.export_text()
