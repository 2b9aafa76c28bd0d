"""EndpointPolicy against the real local server (`actors.serve` on uvicorn, loopback, a free port)."""
from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from test_policy import CONVERT, DIALOGUE, FINISH, GREEDY, SEARCH, VERDICT, conversation

from actors.endpoint import EndpointPolicy, from_openai, to_openai
from actors.model import tiny_model
from actors.transformers_policy import TransformersPolicy
from actors.serve import serving


@pytest.fixture(scope="module")
def local() -> TransformersPolicy:
    return TransformersPolicy(*tiny_model(seed=0))


@pytest.fixture(scope="module")
def url(local):
    with serving(local, model_name="tiny") as base_url:
        yield base_url


def test_wire_messages_round_trip():
    wire = [to_openai(m) for m in DIALOGUE]
    assert wire[2]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris", "date": "2023-05-01"}'
    assert wire[3] == {"role": "tool", "content": '{"temperature_c": 18}', "tool_call_id": "call_1"}
    back = [from_openai(w) for w in wire]
    assert back[:3] + back[4:] == DIALOGUE[:3] + DIALOGUE[4:]
    assert back[3].tool_call_id == "call_1"


def test_endpoint_round_trip_matches_the_local_policy(local, url):
    remote = EndpointPolicy(url, "tiny")
    assert [m.id for m in remote.client.models.list().data] == ["tiny"]
    history = conversation("Convert 5 km.") + DIALOGUE[2:4]  # a past call and its result cross the wire too
    conversations, tools = [conversation("Find a flight."), history], [[SEARCH, FINISH], [CONVERT, FINISH]]
    over_http = remote.chat(conversations, tools, GREEDY)
    direct = local.chat(conversations, tools, GREEDY)
    for got, want in zip(over_http, direct):
        assert got.parse_error is None and want.parse_error is None
        assert got.message.tool_calls[0].function == want.message.tool_calls[0].function
        assert (got.prompt_tokens, got.completion_tokens) == (want.prompt_tokens, want.completion_tokens)

    (verdict,) = remote.chat([conversation("Solved?")], [[SEARCH]], GREEDY, mode="json", json_schema=VERDICT)
    assert verdict.parse_error is None
    jsonschema.validate(json.loads(verdict.message.content), VERDICT)

    (text,) = remote.chat([conversation("Paraphrase.")], [[]], GREEDY, mode="text")
    assert text.message.content == local.chat([conversation("Paraphrase.")], [[]], GREEDY, mode="text")[0].message.content
    assert text.finish_reason == "length"


def test_server_honours_a_named_tool_choice_and_rejects_bad_requests(url):
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    messages = [to_openai(m) for m in conversation("Go.")]
    response = client.chat.completions.create(
        model="tiny", messages=messages, tools=[SEARCH, CONVERT], max_tokens=60, temperature=0,
        tool_choice={"type": "function", "function": {"name": "convert_units"}})
    assert response.choices[0].finish_reason == "tool_calls"
    assert response.choices[0].message.tool_calls[0].function.name == "convert_units"
    with pytest.raises(openai.BadRequestError, match="streaming"):
        client.chat.completions.create(model="tiny", messages=messages, stream=True)
    bad_call = {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}
    with pytest.raises(openai.BadRequestError, match="bad message: arguments of tool call c are not a JSON object"):
        client.chat.completions.create(model="tiny", messages=[*messages, bad_call])


def test_imaginarium_explore_through_an_endpoint_records_the_teacher(url, tmp_path):
    """`imaginarium explore --endpoint`: explorer actors call the project's own server over HTTP, and every episode
    names the model that explored it."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parent.parent
    imaginarium = [sys.executable, "-c", "from launcher.cli import app; app()"]
    run_dir = tmp_path / "run"
    done = subprocess.run([*imaginarium, "explore", "--endpoint", url, "--model", "tiny", "--tools", "convert_currency",
                           "--episodes", "2", "--actors", "1", "--trials", "2", "--run-dir", str(run_dir)],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "explore.jsonl"
    subprocess.run([*imaginarium, "buffer", "export", str(out), "--run-dir", str(run_dir)], check=True, cwd=root,
                   capture_output=True)
    episodes = [json.loads(line)["imaginarium"] for line in out.read_text().splitlines()]
    assert episodes and {e["model"] for e in episodes} == {f"tiny@{url}"}
    bad = subprocess.run([*imaginarium, "explore", "--endpoint", "localhost:8000", "--run-dir", str(tmp_path / "b")],
                         cwd=root, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--endpoint localhost:8000: give the server's base URL" in bad.stderr
