"""Experiment configs: every preset validates; each kind of mistake is one line naming the key."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from launcher.cli import app
from launcher.config import ConfigError, load_config, tools_registry
from toolenv.registry import builtin_registry

ROOT = Path(__file__).parent.parent
REGISTRY = builtin_registry()


@pytest.fixture(scope="module")
def bookshelf_service():
    """configs/own-tools.yaml reads this service's OpenAPI document, as the README starts it."""
    import subprocess
    import sys
    import time

    import httpx2

    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "examples.bookshelf_api:app", "--port", "8765",
                               "--log-level", "warning"], cwd=ROOT)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx2.get("http://127.0.0.1:8765/openapi.json", timeout=1).raise_for_status()
            break
        except httpx2.HTTPError:
            assert time.monotonic() < deadline and server.poll() is None, "the bookshelf service did not start"
            time.sleep(0.2)
    yield
    server.terminate()
    server.wait(10)


@pytest.mark.parametrize("preset", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_validates(preset, bookshelf_service):
    config = load_config(preset, tools_registry(load_config(preset)))  # its own sources: MCP servers started
    assert config.name and config.tools.rounds


MISTAKES = [
    ("name: x\nexplore: {actors: 0}\n", "explore.actors: Input should be greater than or equal to 1"),
    ("name: x\nexplore: {actor: 2}\n", "explore.actor: unknown key"),
    ("name: x\nlearn: {lr: -1}\n", "learn.lr: Input should be greater than 0"),
    ("name: x\nlearn: {zero_stage: 4}\n", "learn.zero_stage"),
    ("name: x\nlearn: {lr: fast}\n", "learn.lr: Input should be a valid number"),
    ("name: x\nexplore: {strategy: bfs}\n", "explore.strategy: String should match pattern"),
    ("name: x\ntools: {rounds: [2, 1]}\n", "tools.rounds must be increasing"),
    ("name: x\ntools: {rounds: [7]}\n", "tools.rounds: no round 7 in the suite"),
    ("name: x\nlearn: {publish_every: 50, steps_per_round: 10}\n", "learn.publish_every (50) exceeds learn.steps_per_round"),
    ("name: x\nschedule: continual\nbuffer: {rate_limiter: {kind: sample_to_insert_ratio, samples_per_insert: 8, "
     "error_buffer: 2}}\n", "error_buffer (2.0) must be at least max(1, samples_per_insert=8.0)"),
    # the limiter guards the table the learner samples; configs under which it could block both sides are refused
    ("name: x\nbuffer: {rate_limiter: {kind: sample_to_insert_ratio}}\n",
     "buffer.rate_limiter: sample_to_insert_ratio needs schedule: continual"),
    ("name: x\nschedule: continual\n", "buffer.rate_limiter: schedule continual needs kind sample_to_insert_ratio"),
    ("name: x\nschedule: continual\nlearn: {micro_batch: 8, grad_accum: 2}\n"
     "buffer: {rate_limiter: {kind: sample_to_insert_ratio, samples_per_insert: 2, error_buffer: 4}}\n",
     "buffer.rate_limiter.error_buffer: 4.0 lets the learner run at most 8 samples ahead, less than one batch of 16"),
    ("name: x\nschedule: continual\ntools: {rounds: [1], names: {1: [search_books]}}\nexplore: {episodes_per_tool: 8}\n"
     "buffer: {rate_limiter: {kind: sample_to_insert_ratio, min_size_to_sample: 9}}\n",
     "buffer.rate_limiter.min_size_to_sample: 9 exceeds the 8 episodes round 1 explores"),
    ("name: x\nschedule: sometimes\n", "schedule: Input should be 'rounds' or 'continual'"),
    ("name: x\nlearn: {warmup_steps: 50, total_steps: 10}\n", "warmup_steps (50) exceeds total_steps (10)"),
    ("explore: {actors: 2}\n", "name: Field required"),
    ("name: x\nexplore: [1, 2]\n", "explore: Input should be a valid dictionary"),
    ("- just\n- a list\n", "the top level must be a mapping"),
    ("name: x\nexplore: {actors: 2\n", "not valid YAML"),
    ("name: 'bad name!'\n", "name: String should match pattern"),
    ("name: x\ntools: {rounds: [1, 2], names: {1: [search_books]}}\n", "tools.names: no tools listed for round 2"),
    ("name: x\ntools: {rounds: {1: [serch_books]}}\n", "tools.rounds.1: no tool named 'serch_books'; did you mean 'search_books'"),
    ("name: x\ntools: {rounds: {1: [search_books], 3: ['mars_*']}}\n", "tools.rounds.3: no tool matches 'mars_*'"),
    ("name: x\ntools: {rounds: {1: [search_books], 2: ['search_*']}}\n", "tools.rounds.2: 'search_books' is already in round 1"),
    ("name: x\ntools: {rounds: {1: [search_books, search_books]}}\n", "tools.names.1: a tool is listed twice"),
    ("name: x\ntools: {rounds: {1: [search_books]}, names: {1: [search_books]}}\n",
     "tools.rounds as a mapping already names each round's tools"),
]


@pytest.mark.parametrize("text, expected", MISTAKES)
def test_each_mistake_is_one_line_naming_the_key(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, REGISTRY)
    message = str(caught.value)
    assert expected in message and "\n" not in message and message.startswith(str(path))


def test_the_cli_prints_config_errors_on_one_line_and_plans_a_dry_run(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nlearn: {lr: -1}\n")
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "learn.lr" in result.stderr
    result = CliRunner().invoke(app, ["run", str(ROOT / "configs" / "cpu-demo.yaml"), "--dry-run"])
    assert result.exit_code == 0 and "round 1: 2 tools" in result.stdout and "explorers: 2" in result.stdout
    assert CliRunner().invoke(app, ["run", "--resume", str(tmp_path)]).exit_code == 2
    assert CliRunner().invoke(app, ["run", str(tmp_path / "missing.yaml")]).exit_code == 2


def test_a_round_with_few_new_episodes_is_trained_for_fewer_steps():
    from launcher.config import LearnSection
    from launcher.run import round_steps

    capped = LearnSection(micro_batch=4, steps_per_round=8, max_epochs=3)
    assert round_steps(capped, 11, 0.0) == 8  # 3 passes over 11 episodes need 9 steps of 4: the round's 8 stay
    assert round_steps(capped, 1, 0.25) == 1  # one episode, 3 new per step: once, not 24 times
    assert round_steps(capped, 4, 0.25) == 4 and round_steps(capped, 0, 0.25) == 1
    assert round_steps(LearnSection(micro_batch=4, steps_per_round=8), 1, 0.25) == 8  # no cap: as configured
