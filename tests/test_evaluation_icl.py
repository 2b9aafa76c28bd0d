"""STE's in-context learning: a run's kept episodes as demonstrations, never the answer to the query asked."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from actors.embeddings import default_embedder
from actors.exploit import Demonstrations
from evaluation.builtin import gold_tasks, with_demonstrations
from replay.buffer import ReplayBuffer
from replay.server import redis_url
from replay.tables import TableConfig
from tests.factories import make_episode
from toolenv.gold import load_gold_dir
from toolenv.registry import builtin_registry

ROOT = Path(__file__).parent.parent


def _kept(tool: str, queries: list[str]) -> list:
    episodes = []
    for i, query in enumerate(queries):
        episode = make_episode(i, tool=tool)
        messages = [replace(m, content=query) if m.role == "user" else m for m in episode.messages]
        episodes.append(replace(episode, query=query, messages=messages, id=""))
    return episodes


def test_demonstrations_are_never_the_query_itself_nor_any_evaluation_query():
    registry, gold = builtin_registry(), load_gold_dir()
    tasks = gold_tasks(registry, gold, ["convert_currency"], limit=3)
    asked = [item.task.query for item in tasks]
    episodes = _kept("convert_currency", [asked[0], asked[1].upper(), "Change 5 dollars into yen", "10 EUR in GBP?"])
    shown = with_demonstrations(tasks, Demonstrations(episodes, default_embedder()), k=4)
    for item in shown:
        users = [m.content for m in item.task.demonstrations if m.role == "user"]
        assert sorted(users) == ["10 EUR in GBP?", "Change 5 dollars into yen"]  # the two evaluation queries left out


def test_demonstrations_too_long_for_the_context_are_dropped_least_similar_first():
    episodes = _kept("convert_currency", ["Convert 5 dollars to yen", "What is the capital of France, in euros?"])
    demos = Demonstrations(episodes, default_embedder())
    two = demos.for_query("How many yen is 7 dollars?", k=2)
    one = demos.for_query("How many yen is 7 dollars?", k=2, fits=lambda messages: len(messages) <= len(two) // 2)
    assert [m.content for m in one if m.role == "user"] == ["Convert 5 dollars to yen"]  # the closest one stays
    assert demos.for_query("How many yen is 7 dollars?", k=2, fits=lambda messages: False) == []


def test_eval_icl_reads_a_runs_kept_episodes(tmp_path):
    run_dir = tmp_path / "run"
    with redis_url(None, run_dir) as url:
        buffer = ReplayBuffer(url)
        buffer.create_table(TableConfig(name="explore-train"))
        buffer.insert("explore-train", _kept("convert_currency", ["Convert 5 dollars to yen", "10 EUR in GBP?"]))
    done = subprocess.run([sys.executable, "-c", "from launcher.cli import app; app()", "eval", "--model", "tiny",
                           "--tools", "convert_currency", "--limit", "2", "--icl", "2", "--run-dir", str(run_dir),
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "out" / "builtin.json").read_text())
    assert report["meta"]["icl"] == 2 and report["summary"]["n"] == 2
    missing = subprocess.run([sys.executable, "-c", "from launcher.cli import app; app()", "eval", "--model", "tiny",
                              "--icl", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "--icl needs --run-dir" in missing.stderr
