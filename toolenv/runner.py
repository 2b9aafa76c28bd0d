"""Execute tool calls with limits: every call, however it goes wrong, comes back as an Observation.

Trusted built-ins run in this process on a worker thread (a thread cannot be killed: one that runs past its
time limit is abandoned and finishes on its own); tools marked `isolate` run in a killable subprocess
(toolenv.sandbox); tools another program serves (MCP, HTTP APIs: toolenv.sources) keep the limit themselves. Either way the result is capped by its JSON size and handed back as a fresh copy of JSON
data, so nothing the tool holds on to can change a recorded observation later.
"""
from __future__ import annotations

import difflib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

from toolenv.cache import NotCached
from toolenv.observation import ErrorKind, Observation, OutputTooLarge, encode_result
from toolenv.registry import Registry
from toolenv.sandbox import failure_outcome, run_isolated
from toolenv.spec import RemoteCall, Tool, ToolError
from toolenv.validation import BadArguments, validate_arguments


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    max_output_bytes: int = 1_000_000  # of the JSON-serialized result; printed output counts too when isolated
    memory_bytes: int = 512 * 2**20  # what an isolated call may allocate beyond its worker's start-up footprint


def run_tool(tool: Tool, arguments: dict[str, Any] | str | None, limits: Limits = Limits()) -> Observation:
    """Validate, execute within the limits, and return the observation."""
    started = time.perf_counter()
    try:
        validated = validate_arguments(tool.spec, arguments)
    except BadArguments as error:
        return Observation.failure(tool.name, ErrorKind.BAD_ARGUMENTS, str(error), time.perf_counter() - started)
    if isinstance(tool.run, RemoteCall):
        outcome = _run_remote(tool.run, validated, limits)
    elif tool.isolate:
        outcome = run_isolated(
            tool.run, validated, timeout_s=limits.timeout_s, max_output_bytes=limits.max_output_bytes, memory_bytes=limits.memory_bytes
        )
    else:
        outcome = _run_in_thread(tool, validated, limits)
    elapsed = time.perf_counter() - started
    if outcome["ok"]:
        return Observation(tool=tool.name, ok=True, result=outcome["result"], elapsed_s=elapsed)
    return Observation.failure(tool.name, ErrorKind(outcome["error"]), outcome["message"], elapsed)


def _run_in_thread(tool: Tool, arguments: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Call a trusted tool on a daemon thread, wait up to the time limit, and check its result is small JSON."""
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["result"] = tool.run(**arguments)
        except BaseException as error:  # handed to the caller's thread, which decides what it means
            box["error"] = error

    worker = threading.Thread(target=call, name=f"tool:{tool.name}", daemon=True)
    worker.start()
    worker.join(limits.timeout_s)
    if worker.is_alive():
        return failure_outcome(ErrorKind.TIMEOUT, f"no result within {limits.timeout_s:g} s; the call was abandoned")
    if "error" in box:
        return failure_outcome(*_classify(box["error"]))
    return _checked(box["result"], limits.max_output_bytes)


def _run_remote(run: RemoteCall, arguments: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Another program's tool: it keeps the time limit; its result is capped and copied here like a local one's."""
    try:
        outcome = run.outcome(arguments, limits.timeout_s, limits.max_output_bytes)
    except Exception as error:  # a RemoteCall must not raise; if one does, the caller still gets an observation
        return failure_outcome(ErrorKind.CRASHED, f"{type(error).__name__}: {error}")
    return _checked(outcome["result"], limits.max_output_bytes) if outcome["ok"] else outcome


def _checked(result: Any, max_output_bytes: int) -> dict[str, Any]:
    """The outcome of a result: a fresh copy of it if it is JSON data within the cap, else the error."""
    try:
        text = encode_result(result, max_output_bytes)
    except OutputTooLarge as error:
        return failure_outcome(ErrorKind.OUTPUT_TOO_LARGE, str(error))
    except (TypeError, ValueError) as error:
        return failure_outcome(ErrorKind.CRASHED, f"returned a value that is not JSON data: {error}")
    return {"ok": True, "result": json.loads(text)}


def _classify(error: BaseException) -> tuple[ErrorKind, str]:
    if isinstance(error, NotCached):
        return ErrorKind.NOT_CACHED, str(error)
    if isinstance(error, ToolError):
        return ErrorKind.TOOL_ERROR, str(error)
    if isinstance(error, MemoryError):
        return ErrorKind.MEMORY_LIMIT, "ran out of memory"
    return ErrorKind.CRASHED, f"{type(error).__name__}: {error}"


class ToolRunner:
    """Runs calls by name against a fixed set of tools (an episode's tool set, or the whole registry)."""

    def __init__(self, tools: Registry | Iterable[Tool], limits: Limits = Limits()):
        self.registry = tools if isinstance(tools, Registry) else Registry(tools)
        self.limits = limits

    def call(self, name: str, arguments: dict[str, Any] | str | None = None) -> Observation:
        if name not in self.registry:
            return Observation.failure(name, ErrorKind.UNKNOWN_TOOL, unknown_tool_message(name, self.registry.names()))
        return run_tool(self.registry.get(name), arguments, self.limits)


def unknown_tool_message(name: str, known: Iterable[str]) -> str:
    """"no tool named X", with the closest known names, so a model (or a person) can correct a typo."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(candidate) for candidate in close)}?" if close else ""
    return f"no tool named {name!r}{hint}"
