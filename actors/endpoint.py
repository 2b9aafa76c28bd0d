"""The policy over any OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp, `actors.serve`, OpenAI).

Also the one place that maps our `Message` records to and from the wire format, which
`actors.serve` shares. On the wire, tool-call arguments are JSON *strings*; in our records
they are objects.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai

from actors.calls import check_call, check_json, parse_tool_call
from actors.policy import Mode, Reply, Sampling, check_batch, new_call_id
from replay.episode import FunctionCall, Message, ToolCall

MAX_CONCURRENT_REQUESTS = 16


class EndpointPolicy:
    """Sends each conversation of a batch as its own request, concurrently; the server batches them."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 300.0):
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout, max_retries=2)
        self.model = model
        self.version = 0

    def chat(self, conversations: list[list[Message]], tools: list[list[dict]], sampling: Sampling,
             mode: Mode = "tool_call", json_schema: dict | None = None) -> list[Reply]:
        if not check_batch(conversations, tools):
            return []
        workers = min(len(conversations), MAX_CONCURRENT_REQUESTS)
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda pair: self._one(*pair, sampling, mode, json_schema), zip(conversations, tools)))

    def load_weights(self, version: int, state_dict: dict) -> None:
        raise NotImplementedError("an endpoint serves its own weights: restart its server on the new checkpoint")

    def _one(self, messages: list[Message], tools: list[dict], sampling: Sampling, mode: Mode,
             json_schema: dict | None) -> Reply:
        request: dict[str, Any] = dict(
            model=self.model, messages=[to_openai(m) for m in messages], temperature=sampling.temperature,
            top_p=sampling.top_p, max_tokens=sampling.max_new_tokens,
        )
        if sampling.seed is not None:
            request["seed"] = sampling.seed
        if tools:
            request["tools"] = tools
            request["tool_choice"] = "required" if mode == "tool_call" else "none"
        if mode == "json":
            request["response_format"] = (
                {"type": "json_object"} if json_schema is None
                else {"type": "json_schema", "json_schema": {"name": "reply", "schema": json_schema, "strict": True}})
        response = self.client.chat.completions.create(**request)
        choice = response.choices[0]
        usage = response.usage
        counts = dict(prompt_tokens=usage.prompt_tokens if usage else 0,
                      completion_tokens=usage.completion_tokens if usage else 0,
                      finish_reason="length" if choice.finish_reason == "length" else "stop")
        content = choice.message.content or ""
        if mode != "tool_call":
            error = check_json(content, json_schema) if mode == "json" else None
            return Reply(Message(role="assistant", content=content), content, error, **counts)
        if not choice.message.tool_calls:  # some servers answer in text: read a <tool_call> out of it
            call, error = parse_tool_call(content, tools)
            raw, call_id = content, new_call_id()
        else:
            wire = choice.message.tool_calls[0]
            raw, call_id = wire.model_dump_json(), wire.id  # the call as the server sent it
            call, error = _decode_call(wire.function.name, wire.function.arguments, tools)
        if call is None:
            return Reply(Message(role="assistant", content=content or raw), raw, error, **counts)
        return Reply(Message(role="assistant", tool_calls=[ToolCall(id=call_id, function=call)]), raw, None, **counts)


def _decode_call(name: str, arguments: str, tools: list[dict]) -> tuple[FunctionCall | None, str | None]:
    try:
        decoded = json.loads(arguments or "{}", strict=False)
    except (ValueError, RecursionError) as error:
        return None, f"arguments of {name} are not valid JSON: {error}"
    return check_call({"name": name, "arguments": decoded}, tools)


def to_openai(message: Message) -> dict[str, Any]:
    """A record message in the OpenAI chat wire format."""
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.function.name, "arguments": json.dumps(call.function.arguments, ensure_ascii=False)}}
            for call in message.tool_calls]
    if message.role == "tool":
        wire["tool_call_id"] = message.tool_call_id
    elif message.name is not None:
        wire["name"] = message.name
    return wire


def from_openai(wire: dict[str, Any]) -> Message:
    """An OpenAI wire message as a record message; raises ValueError on arguments that are not a JSON object."""
    content = wire.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    calls = []
    for call in wire.get("tool_calls") or []:
        function = call["function"]
        arguments = function.get("arguments") or "{}"
        arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
        if not isinstance(arguments, dict):
            raise ValueError(f"arguments of tool call {call.get('id')} are not a JSON object")
        calls.append(ToolCall(id=call.get("id") or new_call_id(), function=FunctionCall(function["name"], arguments)))
    role = "system" if wire["role"] == "developer" else wire["role"]
    return Message(role=role, content=content, tool_calls=calls, tool_call_id=wire.get("tool_call_id"),
                   name=wire.get("name"))
