"""Export to the OpenAI/HF chat format and import back: lossless, and strict about bad lines."""
from __future__ import annotations

import json

import pytest
from factories import make_dfsdt_episode, make_episode

from replay.codec import RecordError
from replay.export import read_jsonl, to_chat_record, write_jsonl
from replay.tables import TableConfig


def test_export_is_chat_format_with_tools():
    record = to_chat_record(make_episode(3))
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    call = record["messages"][2]["tool_calls"][0]
    assert call == {"id": "call_3", "function": {"name": "get_weather", "arguments": {"city": "City 3", "date": "2023-05-01"}},
                    "type": "function"}
    assert record["messages"][3]["tool_call_id"] == "call_3" and record["messages"][3]["name"] == "get_weather"
    assert "tool_calls" not in record["messages"][1]
    assert record["tools"][0]["function"]["name"] == "get_weather"
    assert record["imaginarium"]["id"] == make_episode(3).id


def test_export_import_round_trip_through_the_buffer_is_identical(buffer, tmp_path):
    episodes = [make_episode(i, round=i % 3) for i in range(30)] + [make_dfsdt_episode()]
    buffer.create_table(TableConfig(name="a"))
    buffer.insert("a", episodes)
    first = tmp_path / "a.jsonl"
    write_jsonl((e for _, e in buffer.episodes("a")), first)
    buffer.create_table(TableConfig(name="b"))
    buffer.insert("b", list(read_jsonl(first)))
    second = tmp_path / "b.jsonl"
    write_jsonl((e for _, e in buffer.episodes("b")), second)
    assert first.read_bytes() == second.read_bytes()
    assert [e for _, e in buffer.episodes("b")] == episodes


@pytest.mark.parametrize(
    "line, where",
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is a JSON list, not an object"),
        ('{"messages": [], "tools": []}', "field 'imaginarium': is missing"),
    ],
)
def test_bad_lines_name_the_file_and_line(tmp_path, line, where):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(to_chat_record(make_episode(1)))
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(RecordError) as caught:
        list(read_jsonl(path))
    assert f"{path}:2" in str(caught.value) and where in str(caught.value)


def test_a_wrong_field_in_an_export_line_is_named(tmp_path):
    record = to_chat_record(make_episode(1))
    record["messages"][2]["tool_calls"][0]["function"]["arguments"] = "{\"city\": 1}"
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(RecordError, match=r"bad.jsonl:1: field 'messages\[2\].tool_calls\[0\].function.arguments'"):
        list(read_jsonl(path))
