"""Episodes ⇄ JSONL in the OpenAI / Hugging Face chat format with `tools`.

Each line is `{"messages": [...], "tools": [...], "imaginarium": {...}}`: `messages` and `tools`
are what TRL's SFT trainer and LLaMA-Factory read (tool-call arguments as objects, as HF chat
templates take them); `imaginarium` carries the rest of the record, so importing a file gives
back the very same episodes (ids included).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator

import msgspec

from replay.codec import RecordError
from replay.episode import SCHEMA_VERSION, Episode, Message

_CHAT_FIELDS = ("messages", "tool_specs")


def message_to_chat(message: Message) -> dict[str, Any]:
    chat: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        chat["tool_calls"] = msgspec.to_builtins(message.tool_calls)
    if message.tool_call_id is not None:
        chat["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        chat["name"] = message.name
    return chat


def to_chat_record(episode: Episode) -> dict[str, Any]:
    metadata = msgspec.to_builtins(episode)
    for name in _CHAT_FIELDS:
        del metadata[name]
    return {
        "messages": [message_to_chat(m) for m in episode.messages],
        "tools": episode.tool_specs,
        "imaginarium": metadata,
    }


def from_chat_record(record: Any, where: str) -> Episode:
    """A chat record → Episode, or RecordError naming `where` (file:line) and the field."""
    if not isinstance(record, dict):
        raise RecordError(where, "", f"is a JSON {type(record).__name__}, not an object")
    for key in ("messages", "tools", "imaginarium"):
        if key not in record:
            raise RecordError(where, key, "is missing (not an imaginarium export line)")
    metadata = record["imaginarium"]
    if not isinstance(metadata, dict):
        raise RecordError(where, "imaginarium", "must be an object")
    version = metadata.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(where, "imaginarium.schema_version", f"unknown schema version {version!r}")
    fields = {**metadata, "messages": record["messages"], "tool_specs": record["tools"]}
    try:
        return msgspec.convert(fields, Episode)
    except msgspec.ValidationError as error:
        reason, _, path = str(error).partition(" - at `$")
        raise RecordError(where, path.rstrip("`").lstrip("."), reason) from None


def write_jsonl(episodes: Iterable[Episode], path: str | Path) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for episode in episodes:
            out.write(json.dumps(to_chat_record(episode), ensure_ascii=False) + "\n")
            count += 1
    return count


def read_jsonl(path: str | Path) -> Iterator[Episode]:
    """Episodes from an export file; the first bad line stops with an error naming file, line and field."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise RecordError(where, "", f"is not valid JSON ({error.msg} at column {error.colno})") from None
            yield from_chat_record(record, where)  # a line without an id gets its content id
