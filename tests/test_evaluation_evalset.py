"""Eval sets for tools of your own: the gold JSONL reader (every malformed line one line naming file, line and
field), `imaginarium eval --tools-from mcp:… --eval-set FILE` end to end against a real MCP server with the tiny
model, and `imaginarium evalset draft` on a run folder, whose drafts the reader loads back."""
from __future__ import annotations

import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from factories import make_episode
from typer.testing import CliRunner

from evaluation.evalset import EvalSetFileError, load_gold_set
from evaluation.execution import ExecutionMatch
from evaluation.records import Turn
from launcher.cli import app
from replay.buffer import ReplayBuffer
from replay.episode import FunctionCall, Message, ToolCall
from replay.server import EmbeddedRedis
from replay.tables import TableConfig
from toolenv.gold import call_matches, check_entry
from toolenv.runner import ToolRunner
from toolenv.sources import close_sources, load_registry
from tests.cli_checks import one_error_line

FIXTURES = Path(__file__).parent / "fixtures"
CITY_FACTS = FIXTURES / "evaluation" / "city_facts.jsonl"
MCP = "mcp:" + shlex.join([sys.executable, str(FIXTURES / "toolenv" / "mcp_server.py")])


@pytest.fixture(scope="module", autouse=True)
def mcp_runner() -> ToolRunner:
    """The fixture server, started once: every command of this module that names MCP opens this same server."""
    yield ToolRunner(load_registry([MCP]))
    close_sources()


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


# ---- the reader ------------------------------------------------------------------------------------------


def test_the_fixture_loads_with_defaults_and_every_entry_runs_against_the_server(mcp_runner):
    entries = load_gold_set(CITY_FACTS, mcp_runner.registry)
    assert [e.id for e in entries] == ["city_facts-1", "oslo-population", "city_facts-3", "city_facts-4", "city_facts-5"]
    assert [e.tool for e in entries] == ["city_info", "city_info", "add", "add", "greet"]
    assert all(check_entry(entry, mcp_runner)[0] for entry in entries)
    add41, greet = entries[3].calls[0], entries[4].calls[0]
    assert call_matches(add41, "add", {"a": 41})[0] and not call_matches(add41, "add", {"a": 41, "b": 2})[0]  # optional
    assert call_matches(greet, "greet", {"name": "ada lovelace"})[0] and not call_matches(greet, "greet", {"name": "Bo"})[0]
    assert greet.argument_values() == {"name": "Ada"}  # an any_of gold call runs with its first value
    # execution match over MCP: 3 + 2 is spelled differently from the gold 2 + 3, and returns the same
    execution, five = ExecutionMatch(mcp_runner), entries[2].calls
    assert execution([Turn("add", {"a": 3, "b": 2})], five) and not execution([Turn("add", {"a": 3, "b": 3})], five)


GOOD = {"query": "Which country is Lima in?", "calls": [{"name": "city_info", "arguments": {"city": {"value": "Lima", "match": "normalized"}}}]}


def with_call(**arguments) -> dict:
    return {**GOOD, "calls": [{"name": "city_info", "arguments": arguments}]}


@pytest.mark.parametrize(("line", "field"), [
    ("{oops", "not JSON"),
    ("[1, 2]", "an entry must be a JSON object"),
    ({"calls": GOOD["calls"]}, "field 'query': missing"),
    ({**GOOD, "query": " "}, "field 'query': must be a non-empty string"),
    ({**GOOD, "calls": []}, "field 'calls': must be a non-empty list"),
    ({**GOOD, "notes": "x"}, "field 'notes': unknown field"),
    ({**GOOD, "tool": "add"}, "field 'tool': 'add' is not the tool of any of the gold calls"),
    ({**GOOD, "draft": "yes"}, "field 'draft': must be true or false"),
    ({**GOOD, "id": "dup"}, "field 'id': 'dup' appears twice (first on line 1)"),
    ({**GOOD, "calls": [{"name": "city_inf", "arguments": {}}]}, "field 'calls.0.name': --tools-from offers no tool named 'city_inf'; did you mean 'city_info'?"),
    (with_call(town={"value": "Lima", "match": "exact"}), "field 'calls.0.arguments.town': 'city_info' takes no such argument (it takes: city)"),
    (with_call(city="Lima"), "field 'calls.0.arguments.city': must be an object"),
    (with_call(city={"value": "Lima", "match": "fuzzy"}), "field 'calls.0.arguments.city.match': must be one of"),
    (with_call(city={"value": "Lima", "match": "any_of"}), "field 'calls.0.arguments.city.value': an any_of match needs a non-empty list"),
    (with_call(city={"value": "Lima", "match": "exact", "optional": 1}), "field 'calls.0.arguments.city.optional': must be true or false"),
    (with_call(city={"value": "Lima", "match": "exact", "tolerance": 0.1}), "field 'calls.0.arguments.city.tolerance'"),
    ({**GOOD, "answer": {"value": "many", "match": "numeric"}}, "field 'answer.value': a numeric match needs a number"),
    ({**GOOD, "answer": {"value": "Peru"}}, "field 'answer.match': missing"),
])
def test_each_malformed_line_is_one_line_naming_file_line_and_field(tmp_path, mcp_runner, line, field):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({**GOOD, "id": "dup"}) + "\n\n" + (line if isinstance(line, str) else json.dumps(line)) + "\n")
    with pytest.raises(EvalSetFileError) as caught:
        load_gold_set(path, mcp_runner.registry)
    assert caught.value.lines == [caught.value.lines[0]] and caught.value.lines[0].startswith(f"{path}:3: ")
    assert field in caught.value.lines[0]


def test_every_malformed_line_is_reported_in_one_pass(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join([json.dumps(GOOD), "{oops", json.dumps({**GOOD, "query": ""}), json.dumps(GOOD),
                               json.dumps({**GOOD, "calls": [{"name": "teleport", "arguments": {}}]})]) + "\n")
    result = invoke("eval", "--tools-from", MCP, "--eval-set", str(path), "--model", "tiny")
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[1] for line in lines] == [f"{path}:2", f"{path}:3", f"{path}:5"]
    assert "field 'query'" in lines[1] and "field 'calls.0.name': --tools-from offers no tool named 'teleport'" in lines[2]


@pytest.mark.parametrize(("args", "message"), [
    (["--answers", str(CITY_FACTS)], "--answers goes with --eval-set"),
    (["--eval-set", str(FIXTURES / "evaluation" / "bfcl_questions.jsonl")], "BFCL questions, not gold entries: give their ground truth with --answers"),
    (["--eval-set", "missing.jsonl"], "missing.jsonl: cannot read"),
    (["--tools-from", "nowhere:x"], "unknown source kind 'nowhere'"),
    (["--tools-from", f"python:{FIXTURES / 'toolenv' / 'misbehaving_plugin.py'}"], "has a built-in gold set: give --eval-set FILE"),
    (["--tools-from", MCP, "--eval-set", str(CITY_FACTS), "--tools", "greet,teleport"], "no tool 'teleport'"),
])
def test_eval_set_mistakes_are_one_line_before_any_model_loads(args, message):
    assert message in one_error_line(invoke("eval", "--model", "/no/such/model", *args))


# ---- evaluation end to end --------------------------------------------------------------------------------


def test_an_mcp_server_is_evaluated_on_an_eval_set_with_the_tiny_model(tmp_path):
    result = invoke("eval", "--model", "tiny", "--tools-from", MCP, "--eval-set", str(CITY_FACTS), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "| argument match % | exec match % |" in result.stdout and "| **all** | 5 |" in result.stdout
    report = json.loads((tmp_path / "city_facts.json").read_text())
    assert (tmp_path / "city_facts.md").read_text() in result.stdout
    assert {tool: summary["n"] for tool, summary in report["by_tool"].items()} == {"add": 2, "city_info": 2, "greet": 1}
    assert "exec_match" in report["summary"] and "exec_match" in report["summary"]["ci95"]
    assert all("exec_match" in record["flags"] for record in report["records"])
    assert report["meta"]["tools from"] == [MCP] and report["meta"]["eval set"] == str(CITY_FACTS)
    assert not (tmp_path / "builtin.json").exists()  # the built-in sets run only when asked (--suite builtin)


# ---- drafting from a run -----------------------------------------------------------------------------------


def trial(i: int, query: str, calls: list[tuple[str, dict]], answer: str, table_tool: str = "city_info"):
    """An explored episode: the request, then each call and its (recorded) result, then the answer."""
    base = make_episode(i, tool=table_tool)
    messages = [base.messages[0], Message(role="user", content=query)]
    for n, (name, arguments) in enumerate(calls):
        call = ToolCall(id=f"call_{i}_{n}", function=FunctionCall(name=name, arguments=arguments))
        messages += [Message(role="assistant", tool_calls=[call]),
                     Message(role="tool", content="{}", tool_call_id=call.id, name=name)]
    messages.append(Message(role="assistant", content=answer))
    return replace(base, query=query, messages=messages, outcome=replace(base.outcome, final_answer=answer), id="")


def run_folder(path: Path) -> Path:
    """A run folder whose buffer holds kept episodes in `explore-train` (and an unsolved one in `explore`)."""
    kept = [
        trial(0, "How many people live in Lima?", [("city_info", {"city": "Lima"})], "About 10000000 people live in Lima."),
        trial(1, "Which country is Oslo in?", [("city_info", {"city": "Osloo"}), ("city_info", {"city": "Oslo"})],
              "Oslo is in Norway."),
        trial(2, "What is 2 plus one?", [("add", {"a": 2, "b": 1})], "2 plus one is 3.", table_tool="add"),
        trial(3, "Tell me the population of Lima", [("city_info", {"city": "Lima"})], "10000000."),  # same calls
        trial(4, "What is the capital of Peru?", [("get_city_info", {"city": "Lima"})], "Lima.", table_tool="get_city_info"),
        trial(5, "Where is Atlantis?", [("city_info", {"city": "Atlantis"})], "Nowhere."),
    ]
    with EmbeddedRedis(path) as server:
        buffer = ReplayBuffer(server.url)
        for table in ("explore", "explore-train"):
            buffer.create_table(TableConfig(name=table))
        buffer.insert("explore-train", kept)
        buffer.insert("explore", [make_episode(9, solved=False)])
    return path


def test_a_draft_from_a_run_is_marked_draft_and_loads_back(tmp_path, mcp_runner):
    run_dir, out = run_folder(tmp_path / "run"), tmp_path / "mine.jsonl"
    result = invoke("evalset", "draft", "--tools-from", MCP, "--run-dir", str(run_dir), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 3 draft entries (add 1, city_info 2) from table 'explore-train'" in result.stderr
    for reason in ("same calls as an earlier entry 1", "calls a tool not in --tools-from 1", "no call succeeds when run again 1"):
        assert reason in result.stderr
    assert f"imaginarium eval --tools-from {shlex.quote(MCP)} --eval-set {out}" in " ".join(result.stderr.split())
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(line["draft"] is True for line in lines)
    lima, oslo, add = lines
    assert lima["calls"] == [{"name": "city_info", "arguments": {"city": {"value": "Lima", "match": "normalized"}}}]
    assert lima["answer"] == {"value": 10000000, "match": "numeric", "tolerance": 0.001, "path": "population"}
    assert oslo["calls"][0]["arguments"]["city"]["value"] == "Oslo"  # the call that worked, not the try before it
    assert oslo["answer"] == {"value": "Norway", "match": "normalized", "path": "country"}
    assert add["calls"][0]["arguments"] == {"a": {"value": 2, "match": "numeric"},
                                            "b": {"value": 1, "match": "numeric", "optional": True}}  # b's default
    assert add["answer"] == {"value": 3, "match": "numeric", "tolerance": 0.001}

    entries = load_gold_set(out, mcp_runner.registry)
    assert all(entry.draft for entry in entries) and all(check_entry(entry, mcp_runner)[0] for entry in entries)
    refused = one_error_line(invoke("eval", "--model", "/no/such/model", "--tools-from", MCP, "--eval-set", str(out)))
    assert f"{out}:1: an entry marked \"draft\": true (3 of the 3 entries are)" in refused and "--allow-drafts" in refused
    assert "no model folder" in one_error_line(invoke("eval", "--model", "/no/such/model", "--tools-from", MCP,
                                                      "--eval-set", str(out), "--allow-drafts"))  # past the drafts

    again = one_error_line(invoke("evalset", "draft", "--tools-from", MCP, "--run-dir", str(run_dir), "--out", str(out)))
    assert f"{out} exists" in again
    solved_only = invoke("evalset", "draft", "--tools-from", MCP, "--run-dir", str(run_dir), "--table", "explore",
                         "--out", str(tmp_path / "none.jsonl"))
    assert "no episode of table 'explore' gave a draft entry (the table holds no such episodes)" in one_error_line(solved_only)
