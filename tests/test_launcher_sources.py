"""A run on the user's own tools: builtin, an MCP server and a Python class over two rounds, explored by a
teacher model while the learner trains a different student."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from actors.model import tiny_model

ROOT = Path(__file__).parent.parent
MCP_SERVER = ROOT / "tests" / "fixtures" / "toolenv" / "mcp_server.py"
IMAGINARIUM = [sys.executable, "-c", "from launcher.cli import app; app()"]
SHELF = '''
class Shelf:
    """A tiny shelf of books."""

    def count_books(self, genre: str = "any") -> int:
        """How many books of a genre are on the shelf.

        Args:
            genre: poetry, novel or any.
        """
        return {"poetry": 1, "novel": 2}.get(genre, 3)
'''


def test_mixed_sources_over_two_rounds_explored_by_a_teacher_for_a_different_student(tmp_path):
    (tmp_path / "shelf.py").write_text(SHELF)
    teacher = tmp_path / "teacher"
    model, tokenizer = tiny_model(seed=1)  # not the student's weights ("tiny" is seed 0)
    model.save_pretrained(teacher)
    tokenizer.save_pretrained(teacher)
    config = {
        "name": "own-tools", "seed": 0, "ray": {"num_cpus": 4}, "model": {"path": "tiny"},
        "tools": {"sources": ["builtin", f"mcp:{sys.executable} {MCP_SERVER}", f"python:{tmp_path / 'shelf.py'}:Shelf"],
                  "rounds": {1: ["convert_currency", "city_info"], 2: ["count_books", "gr*"]}},
        "explore": {"model": str(teacher), "actors": 1, "episodes_per_tool": 2, "trials_per_session": 2,
                    "sessions_per_call": 2, "budget": {"max_turns": 2, "max_tool_calls": 2}, "max_new_tokens": 48},
        "exploit": {"filter": False, "paraphrases": False},
        "learn": {"steps_per_round": 2, "publish_every": 1, "micro_batch": 2, "max_tokens": 2048, "total_steps": 10},
        "eval": {"limit_per_tool": 1},
    }
    path = tmp_path / "own-tools.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    done = subprocess.run([*IMAGINARIUM, "run", str(path), "--run-dir", str(run_dir)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr

    out = tmp_path / "explore.jsonl"
    subprocess.run([*IMAGINARIUM, "buffer", "export", str(out), "--run-dir", str(run_dir), "--table", "explore"],
                   check=True, capture_output=True, cwd=ROOT)
    episodes = [json.loads(line)["imaginarium"] for line in out.read_text().splitlines()]
    rounds = {tool: e["round"] for e in episodes for tool in e["tools"]}
    assert rounds == {"convert_currency": 1, "city_info": 1, "count_books": 2, "greet": 2}  # rounds from the config
    assert {e["model"] for e in episodes} == {str(teacher)}  # every episode says the teacher explored it
    assert {e["policy_version"] for e in episodes} == {0}  # the teacher never took a student version...
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "train" for e in events) == 4 and any(e["event"] == "publish" for e in events)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["evaluations"]["round 2"]["version"] > 0  # ...while the student's went to the evaluator
    assert set(state["evaluations"]["base"]["by_tool"]) == {"convert_currency"}  # the one tool with a gold set
    left = subprocess.run(["pgrep", "-f", str(MCP_SERVER)], capture_output=True, text=True).stdout
    assert left == "", left  # the MCP servers the actors started stopped with them
