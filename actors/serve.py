"""An OpenAI-compatible chat server over a local policy: `python -m actors.serve --model PATH`.

This is how a fine-tuned checkpoint reaches other tools (and how `EndpointPolicy` is tested
against a real server). `POST /v1/chat/completions` maps the request onto `policy.chat`:

- `response_format` json_schema / json_object → "json" mode;
- `tool_choice` "required", or a named function → "tool_call" mode (grammar-constrained);
- `tool_choice` "auto" (the default with tools) → free text, returned as a tool call if it holds one;
- no tools, or `tool_choice` "none" → "text" mode.

Requests run one at a time: they share the model and its torch threads.
"""
from __future__ import annotations

import argparse
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterator, Literal

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from actors.calls import parse_tool_call
from actors.endpoint import from_openai, to_openai
from actors.policy import Mode, Reply, Sampling, new_call_id
from actors.transformers_policy import TransformersPolicy
from replay.episode import Message, ToolCall

DEFAULT_MAX_TOKENS = 512


class ChatRequest(BaseModel):
    """The part of the chat-completions request this server honours; other fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = ""
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    n: int = 1
    stream: bool = False


def create_app(policy: TransformersPolicy, model_name: str = "imaginarium") -> FastAPI:
    app = FastAPI(title="imaginarium policy server")
    lock = threading.Lock()

    @app.exception_handler(HTTPException)
    @app.exception_handler(RequestValidationError)
    def openai_error(request: Request, error: Exception) -> JSONResponse:
        """Errors in OpenAI's shape, so that clients show the reason rather than a bare status."""
        message = error.detail if isinstance(error, HTTPException) else str(error.errors())
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "code": None}},
                            status_code=getattr(error, "status_code", 400))

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "imaginarium"}]}

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatRequest) -> dict:
        if request.stream or request.n != 1:
            raise HTTPException(400, "streaming and n > 1 are not supported")
        try:
            messages = [from_openai(wire) for wire in request.messages]
        except (KeyError, TypeError, ValueError) as error:
            raise HTTPException(400, f"bad message: {error}") from None
        mode, tools, schema = _mode(request)
        sampling = Sampling(temperature=request.temperature, top_p=request.top_p, seed=request.seed,
                            max_new_tokens=request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS)
        with lock:
            reply = policy.chat([messages], [tools], sampling, "text" if mode == "auto" else mode, schema)[0]
        return _completion(reply, tools if mode == "auto" else None, model_name)

    return app


def _mode(request: ChatRequest) -> tuple[Mode | Literal["auto"], list[dict], dict | None]:
    """(mode, the tools to offer, the JSON schema) for a request; "auto" is text that may hold a call."""
    tools = request.tools or []
    response_format = request.response_format or {}
    if response_format.get("type") == "json_schema":
        return "json", tools, (response_format.get("json_schema") or {}).get("schema")
    if response_format.get("type") == "json_object":
        return "json", tools, None
    choice = request.tool_choice
    if not tools or choice == "none":
        return "text", tools, None
    if choice == "required":
        return "tool_call", tools, None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        chosen = [tool for tool in tools if tool.get("function", {}).get("name") == name]
        if not chosen:
            raise HTTPException(400, f"tool_choice names {name!r}, which is not among the tools")
        return "tool_call", chosen, None
    return "auto", tools, None


def _completion(reply: Reply, auto_tools: list[dict] | None, model_name: str) -> dict:
    """The chat.completion response for a reply; with `auto_tools`, a <tool_call> in free text becomes a call."""
    message = reply.message
    if auto_tools is not None:
        call, _ = parse_tool_call(reply.raw, auto_tools)
        if call is not None:
            message = Message(role="assistant", tool_calls=[ToolCall(id=new_call_id(), function=call)])
    finish = "tool_calls" if message.tool_calls else reply.finish_reason
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": model_name,
        "choices": [{"index": 0, "message": to_openai(message), "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                  "total_tokens": reply.prompt_tokens + reply.completion_tokens},
    }


@contextmanager
def serving(policy: TransformersPolicy, model_name: str = "imaginarium", host: str = "127.0.0.1",
            port: int = 0) -> Iterator[str]:
    """Serve in a background thread for the duration of the block; yields the base URL (…/v1).

    Port 0 takes a free port: the socket is bound here, so its number is known before serving.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(create_app(policy, model_name), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the policy server failed to start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def main() -> None:
    from actors.model import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help='a transformers causal LM folder, or "default" (SmolLM2-135M-Instruct)')
    parser.add_argument("--name", default="imaginarium", help="the model id clients send and /v1/models lists")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    model, tokenizer = load_model(args.model, threads=args.threads)
    app = create_app(TransformersPolicy(model, tokenizer, threads=args.threads), args.name)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
