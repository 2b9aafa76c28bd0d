"""`imaginarium eval`: every user mistake is one line on stderr and exit code 2, before any model loads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evaluation.cli import compare_command, eval_command
from evaluation.judges import rule_judge
from evaluation.metrics import score
from evaluation.records import QueryRecord, Turn
from evaluation.report import builtin_markdown, builtin_report, load_records, write_report
from toolenv.gold import load_gold_dir

FIXTURES = Path(__file__).parent / "fixtures" / "evaluation"
QUESTIONS, ANSWERS = str(FIXTURES / "bfcl_questions.jsonl"), str(FIXTURES / "bfcl_answers.jsonl")

app = typer.Typer()
app.command()(eval_command)
app.command()(compare_command)


def invoke(*args: str):
    return CliRunner().invoke(app, ["eval-command", *args])


@pytest.mark.parametrize("args, message", [
    (["--strategy", "bfs"], "unknown strategy 'bfs': use react, react@N or dfsdt"),
    (["--strategy", "react@0"], "unknown strategy 'react@0'"),
    (["--suite", "toolbench"], "unknown suite 'toolbench'; suites: builtin"),
    (["--eval-set", "missing.jsonl", "--answers", ANSWERS], "missing.jsonl: cannot read"),
    (["--eval-set", QUESTIONS], "BFCL questions, not gold entries: give their ground truth with --answers FILE"),
    (["--answers", ANSWERS], "--answers goes with --eval-set"),
    (["--eval-set", QUESTIONS, "--answers", QUESTIONS], "field 'ground_truth': missing"),
    (["--round", "7"], "no round 7; rounds: 1, 2, 3, 4"),
    (["--tools", "get_city_info,teleport"], "no tool 'teleport'; tools: "),
    (["--model", "/no/such/model"], "no model folder '/no/such/model'"),
])
def test_mistakes_are_one_line_and_exit_2(args, message):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_tiny_model_run_writes_both_reports(tmp_path):
    """The whole path with a real (random, tiny) transformers policy: one query per tool of two tools, and the fixture."""
    result = invoke("--model", "tiny", "--tools", "get_city_info,convert_currency", "--limit", "1", "--suite", "builtin",
                    "--eval-set", QUESTIONS, "--answers", ANSWERS, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "| **all** | 2 |" in result.stdout and "| `get_city_info` | 1 |" in result.stdout
    report = json.loads((tmp_path / "builtin.json").read_text())
    assert report["summary"]["n"] == 2 and report["meta"]["strategy"] == "react"
    assert "exec_match" in report["summary"] and "| exec match % |" in result.stdout  # the built-in sets run their tools too
    assert json.loads((tmp_path / "bfcl_questions.json").read_text())["summary"]["n"] == 10
    assert (tmp_path / "builtin.md").exists() and (tmp_path / "bfcl_questions.md").exists()


def saved_run(folder: Path, answers: list[str | None]) -> Path:
    """A builtin report over the first get_city_info gold queries, answered as given."""
    entries = load_gold_dir()["get_city_info"]
    records = [QueryRecord(id=entry.id, tool=entry.tool, category="Geography", round=1, query=entry.query, gold=entry,
                           turns=(Turn("Finish", {"return_type": "give_answer", "final_answer": answer or ""}),),
                           final_answer=answer) for entry, answer in zip(entries, answers)]
    report = builtin_report(score(records, rule_judge), {"model": folder.name})
    return write_report(report, builtin_markdown(report), folder, "builtin")[0]


def test_compare_two_saved_runs(tmp_path):
    run_a = saved_run(tmp_path / "tuned", ["Africa/Nairobi", "14910000 people", None])
    run_b = saved_run(tmp_path / "base", ["Africa/Nairobi", None, None])
    assert [r.flags.solved for r in load_records(run_a)] == [True, True, False]
    result = CliRunner().invoke(app, ["compare-command", str(run_a), str(run_b)])
    assert result.exit_code == 0, result.output
    assert "| tuned vs base | 1 | 0 | 2 | 3 | 66.7 |" in result.stdout

    other = saved_run(tmp_path / "short", ["Africa/Nairobi"])
    result = CliRunner().invoke(app, ["compare-command", str(run_a), str(other)])
    assert result.exit_code == 2 and "different queries" in result.stderr
    result = CliRunner().invoke(app, ["compare-command", str(run_a), QUESTIONS])
    assert result.exit_code == 2 and "not a builtin evaluation report" in result.stderr
