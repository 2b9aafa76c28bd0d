"""A scripted policy: deterministic replies chosen by a function of the conversation, for testing
search and STE logic without a model (as ToolBench tests DFSDT)."""
from __future__ import annotations

import json
from typing import Callable

from actors.policy import Reply
from replay.episode import FunctionCall, Message, ToolCall


def call(name: str, **arguments) -> Message:
    return Message(role="assistant", tool_calls=[ToolCall(id=f"call_{name}", function=FunctionCall(name, arguments))])


def finish(answer: str | None = None) -> Message:
    if answer is None:
        return call("Finish", return_type="give_up_and_restart", final_answer="")
    return call("Finish", return_type="give_answer", final_answer=answer)


def text(content) -> Message:
    return Message(role="assistant", content=content if isinstance(content, str) else json.dumps(content))


class ScriptedPolicy:
    """`respond(conversation, tools, mode, position_in_batch)` → the assistant Message to return."""

    def __init__(self, respond: Callable[[list[Message], list[dict], str, int], Message]):
        self.respond = respond
        self.version = 0
        self.calls: list[tuple[str, list[list[Message]]]] = []  # (mode, conversations) per batched call

    def chat(self, conversations, tools, sampling, mode="tool_call", json_schema=None):
        self.calls.append((mode, conversations))
        replies = []
        for position, (conversation, tool_list) in enumerate(zip(conversations, tools)):
            message = self.respond(conversation, tool_list, mode, position)
            replies.append(Reply(message=message, raw=message.content or "", parse_error=None,
                                 prompt_tokens=10, completion_tokens=5))
        return replies

    def load_weights(self, version, state_dict):
        self.version = version
