"""BFCL-style eval sets: loading the fixture, one clear error per malformed input, one-call scoring."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.policy import Sampling
from evaluation.bfcl import EvalSetError, call_matches_truth, evaluate_eval_set, load_eval_set, summarize_eval_set
from scripted import ScriptedPolicy, call, text

FIXTURES = Path(__file__).parent / "fixtures" / "evaluation"
QUESTIONS, ANSWERS = FIXTURES / "bfcl_questions.jsonl", FIXTURES / "bfcl_answers.jsonl"


def test_the_fixture_loads_with_json_schema_types():
    entries = load_eval_set(QUESTIONS, ANSWERS)
    assert len(entries) == 10 and entries[0].id == "simple_0"
    function = entries[0].tools[0]["function"]
    assert entries[0].tools[0]["type"] == "function" and function["parameters"]["type"] == "object"
    by_id = {entry.id: entry for entry in entries}
    amount = by_id["simple_2"].tools[0]["function"]["parameters"]["properties"]["amount"]
    assert amount["type"] == "number"
    assert by_id["simple_4"].tools[0]["function"]["parameters"]["properties"]["numbers"]["items"] == {"type": "number"}
    assert by_id["simple_5"].tools[0]["function"]["parameters"]["properties"]["options"]["type"] == "object"
    assert [m.role for m in by_id["simple_4"].messages] == ["system", "user"]
    assert len(by_id["multiple_0"].tools) == 2


def test_a_json_array_works_like_jsonl(tmp_path):
    questions, answers = tmp_path / "q.json", tmp_path / "a.json"
    questions.write_text(json.dumps([json.loads(line) for line in QUESTIONS.read_text().splitlines()]))
    answers.write_text(json.dumps([json.loads(line) for line in ANSWERS.read_text().splitlines()]))
    assert load_eval_set(questions, answers) == load_eval_set(QUESTIONS, ANSWERS)


QUESTION = {"id": "x", "question": [[{"role": "user", "content": "hi"}]], "function": [{"name": "f", "parameters": {"type": "dict", "properties": {}}}]}
ANSWER = {"id": "x", "ground_truth": [{"f": {}}]}


@pytest.mark.parametrize("questions, answers, message", [
    (["{not json"], [ANSWER], r"q\.jsonl:1: not JSON"),
    ([{**QUESTION, "id": 3}], [ANSWER], r"q\.jsonl:1: field 'id': must be a non-empty string"),
    ([{k: v for k, v in QUESTION.items() if k != "question"}], [ANSWER], r"q\.jsonl:1: field 'question': missing"),
    ([{k: v for k, v in QUESTION.items() if k != "function"}], [ANSWER], r"q\.jsonl:1: field 'function': missing"),
    ([{k: v for k, v in QUESTION.items() if k != "id"}], [ANSWER], r"q\.jsonl:1: field 'id': missing"),
    ([{**QUESTION, "question": "hi"}], [ANSWER], r"q\.jsonl:1: field 'question': must be"),
    ([{**QUESTION, "question": [[{"role": "robot", "content": "hi"}]]}], [ANSWER], r"field 'question\.0\.0'"),
    ([{**QUESTION, "function": [{"description": "no name"}]}], [ANSWER], r"field 'function\.0\.name': missing"),
    ([QUESTION, QUESTION], [ANSWER], r"q\.jsonl:2: field 'id': 'x' appears twice"),
    ([QUESTION, {**QUESTION, "id": "y"}], [ANSWER], r"q\.jsonl:2: id 'y' has no ground truth in .*a\.jsonl"),
    ([QUESTION], [ANSWER, {**ANSWER, "id": "z"}], r"a\.jsonl: ground truth for id 'z', which is not in .*q\.jsonl"),
    ([QUESTION], [{"id": "x", "ground_truth": {"f": {}}}], r"a\.jsonl:1: field 'ground_truth': must be"),
    ([QUESTION], [{"id": "x", "ground_truth": [{"f": {"a": 1}}]}], r"a\.jsonl:1: field 'ground_truth'"),
    ([QUESTION], [{"id": "x"}], r"a\.jsonl:1: field 'ground_truth': missing"),
    ([QUESTION], ["[1, 2"], r"a\.jsonl:2: not JSON"),  # a JSON array cut short
    ([QUESTION], [ANSWER, "{\"id\""], r"a\.jsonl:2: not JSON"),
    ([QUESTION], [], r"a\.jsonl: no entries"),
])
def test_malformed_sets_fail_with_one_clear_line(tmp_path, questions, answers, message):
    q, a = tmp_path / "q.jsonl", tmp_path / "a.jsonl"
    q.write_text("".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in questions))
    a.write_text("".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in answers))
    with pytest.raises(EvalSetError, match=message) as error:
        load_eval_set(q, a)
    assert "\n" not in str(error.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(EvalSetError, match=r"nope\.jsonl: cannot read"):
        load_eval_set(tmp_path / "nope.jsonl", ANSWERS)


@pytest.mark.parametrize("name, arguments, expected", [
    ("calculate_triangle_area", {"base": 10, "height": 5}, (True, True)),  # "" lets unit be left out
    ("calculate_triangle_area", {"base": 10.0, "height": 5, "unit": "Units"}, (True, True)),  # numbers numerically, strings normalized
    ("calculate_triangle_area", {"base": 10, "height": 6}, (True, False)),
    ("calculate_triangle_area", {"base": 10, "height": 5, "color": "red"}, (True, False)),  # an argument nobody allows
    ("calculate_triangle_area", {"base": 10}, (True, False)),  # height may not be left out
    ("calculate_area", {"base": 10, "height": 5}, (False, False)),
])
def test_call_matches_truth(name, arguments, expected):
    truth = [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]
    assert call_matches_truth(name, arguments, truth) == expected


def test_scoring_a_scripted_policy_on_the_fixture():
    """Right on 8 entries; wrong arguments on simple_1, wrong function on multiple_0, text on multiple_2."""
    truths = {entry.id: entry.ground_truth[0] for entry in load_eval_set(QUESTIONS, ANSWERS)}
    entries = load_eval_set(QUESTIONS, ANSWERS)
    by_query = {entry.messages[-1].content: entry.id for entry in entries}

    def respond(conversation, tools, mode, position):
        entry_id = by_query[conversation[-1].content]
        [(name, allowed)] = truths[entry_id].items()
        arguments = {key: values[0] for key, values in allowed.items() if values[0] != ""}
        if entry_id == "simple_1":
            return call(name, number=6)
        if entry_id == "multiple_0":
            return call("convert_weight", **arguments)
        if entry_id == "multiple_2":
            return text("2024 is a leap year")
        return call(name, **arguments)

    done = []
    records = evaluate_eval_set(ScriptedPolicy(respond), entries, Sampling(), batch_size=4, progress=done.append)
    assert done == [4, 8, 10]
    assert summarize_eval_set(records) == {"n": 10, "well_formed": 90.0, "api_match": 80.0, "argument_match": 70.0}
    failed = {r.id: r for r in records if not r.argument_match}
    assert set(failed) == {"simple_1", "multiple_0", "multiple_2"}
    assert failed["multiple_2"].error == "no tool call" and failed["multiple_0"].name == "convert_weight"
