"""The policy: the model that picks the next tool call, behind one batched interface.

Explorers hand `chat` a batch of conversations (each with its own tools) and get one `Reply`
per conversation. Three modes cover everything STE and DFSDT ask of a model:

- "tool_call": the turn is exactly one call to one of the conversation's tools (final answers
  too: the explorer always offers DFSDT's `Finish` tool);
- "json": a JSON object under a schema (imagined queries, reflection verdicts);
- "text": free text (paraphrasing).

This module is the interface and its types, importable without torch. The backends:
`actors.transformers_policy` (a local model, replies well-formed by construction) and `actors.endpoint`
(any OpenAI-compatible server). Both read a reply with `actors.calls`, so a reply that still fails to
parse (the token budget ran out mid-JSON) comes back with `parse_error` set, never as an exception.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal, Protocol

from replay.episode import Message

Mode = Literal["tool_call", "json", "text"]


@dataclass
class Sampling:
    temperature: float = 0.7  # 0 means greedy
    top_p: float = 0.95
    max_new_tokens: int = 256
    seed: int | None = None


@dataclass
class Reply:
    message: Message  # the assistant turn: one tool call, or `content` (JSON text, free text, or raw text on a parse error)
    raw: str  # the completion as the model wrote it, without the stop token
    parse_error: str | None  # one line; None when the reply is well-formed
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"] = "stop"  # "length": max_new_tokens ran out


class Policy(Protocol):
    version: int

    def chat(self, conversations: list[list[Message]], tools: list[list[dict]], sampling: Sampling,
             mode: Mode = "tool_call", json_schema: dict | None = None) -> list[Reply]: ...

    def load_weights(self, version: int, state_dict: dict) -> None: ...


def check_batch(conversations: list[list[Message]], tools: list[list[dict]]) -> bool:
    """Every backend's precondition: one tool list per conversation. False for an empty batch."""
    if len(tools) != len(conversations):
        raise ValueError(f"{len(conversations)} conversations but {len(tools)} tool lists")
    return bool(conversations)


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
