"""`imaginarium eval --retrieve K`: each query sees the retriever's top K tools, not its gold tools."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from evaluation.builtin import gold_tasks, with_retrieved_tools
from toolenv.gold import load_gold_dir
from toolenv.registry import builtin_registry

ROOT = Path(__file__).parent.parent


class Fixed:
    """A retriever stand-in that returns the same ranking for every query."""

    def __init__(self, names: list[str]):
        self.names = names

    def top_k(self, queries, k):
        return [self.names[:k] for _ in queries]


def test_the_policy_sees_only_the_retrieved_tools_and_a_missed_gold_tool_counts_against_recall():
    registry, gold = builtin_registry(), load_gold_dir()
    tasks = gold_tasks(registry, gold, ["convert_currency", "get_city_info"], limit=2)
    retrieved, recall = with_retrieved_tools(tasks, registry, Fixed(["convert_currency", "add_to_date", "get_weather"]), 2)
    offered = [[spec["function"]["name"] for spec in item.task.tools] for item in retrieved]
    assert offered == [["convert_currency", "add_to_date"]] * 4  # K = 2 of 50: the gold tool only where retrieved
    assert recall == 0.5  # the two get_city_info queries cannot call their tool: scored as misses
    assert [item.entry for item in retrieved] == [item.entry for item in tasks]  # the same gold, to score against


def test_eval_retrieve_runs_end_to_end_and_records_its_recall(tmp_path):
    done = subprocess.run([sys.executable, "-c", "from launcher.cli import app; app()", "eval", "--model", "tiny",
                           "--tools", "convert_currency", "--limit", "2", "--retrieve", "3", "--retriever", "bm25",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    import json

    report = json.loads((tmp_path / "builtin.json").read_text())
    assert report["meta"]["retrieve"] == 3 and 0.0 <= report["meta"]["retrieval recall"] <= 1.0
    assert report["summary"]["n"] == 2
