"""One config model per component: `imaginarium run`, `explore` and `eval` resolve the same defaults, and `eval
--config` reads a run's search settings as the run did."""
from __future__ import annotations

import inspect
from pathlib import Path

from actors.explorer import ExplorerConfig
from actors.ste import STEConfig
from evaluation.cli import _settings
from launcher.cli import explore
from launcher.config import ExperimentConfig, load_config

ROOT = Path(__file__).parent.parent


def _flag_default(command, parameter: str):
    return inspect.signature(command).parameters[parameter].default.default


def test_run_explore_and_eval_resolve_the_same_defaults():
    run = ExperimentConfig(name="defaults").explore
    budget, finish, evaluation = _settings(None)  # `imaginarium eval` without --config
    explorer = ExplorerConfig(redis_url="redis://unused")  # what `imaginarium explore` hands its actors
    assert run.budget == budget == explorer.budget
    assert run.finish == finish == explorer.finish
    assert ExperimentConfig(name="defaults").eval == evaluation
    flags = {name: _flag_default(explore, name) for name in ("actors", "strategy", "trials", "imagination",
                                                             "sessions_per_call", "threads")}
    assert flags == {"actors": run.actors, "strategy": run.strategy, "trials": run.trials_per_session,
                     "imagination": run.imagination.kind, "sessions_per_call": run.sessions_per_call,
                     "threads": run.threads}
    assert STEConfig(trials_per_session=flags["trials"], imagination=flags["imagination"]) == run.ste() == explorer.ste


def test_eval_reads_a_run_config_as_the_run_does():
    for preset in ("cpu-demo.yaml", "own-tools.yaml", "cluster.yaml"):
        config = load_config(ROOT / "configs" / preset)
        assert _settings(ROOT / "configs" / preset) == (config.explore.budget, config.explore.finish, config.eval)
