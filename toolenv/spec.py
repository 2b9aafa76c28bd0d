"""What a tool is: an OpenAI-style function spec plus the Python callable that runs it."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it (the OpenAI function format chat templates take via `tools=`)."""

    name: str
    description: str
    category: str
    parameters: dict[str, Any]  # a JSON Schema object: {"type": "object", "properties": ..., "required": [...]}
    returns: str = ""
    examples: tuple[dict[str, Any], ...] = ()  # each {"arguments": {...}, "result": ...}
    suite: str = ""
    round: int | None = None  # the continual-learning round that introduces this tool

    def openai(self) -> dict[str, Any]:
        """The function definition to hand to `apply_chat_template(tools=...)` or an OpenAI endpoint."""
        description = self.description if not self.returns else f"{self.description}\nReturns: {self.returns}"
        return {
            "type": "function",
            "function": {"name": self.name, "description": description, "parameters": self.parameters},
        }


class RemoteCall(ABC):
    """The `run` of a tool that another program serves (an MCP server, an HTTP API).

    It keeps the time limit itself, because only it can cancel the request or stop the server, and it never
    raises: it returns an outcome dict like the sandbox's ({"ok": true, "result": ...} or {"ok": false, "error":
    <ErrorKind>, "message": ...}), whose result the runner then caps like any other.
    """

    @abstractmethod
    def outcome(self, arguments: dict[str, Any], timeout_s: float, max_output_bytes: int) -> dict[str, Any]:
        """Call the tool with validated arguments within the limits."""


@dataclass(frozen=True)
class Tool:
    """A spec and the callable that executes it; the callable takes the validated arguments as keywords.

    `isolate=True` runs each call in a memory-limited subprocess that is killed on timeout: for tools that
    run code the model wrote and for untrusted plug-ins. Such a `run` must be picklable (a module-level
    function, or a method of an instance whose class can be imported) because it travels to the worker.
    """

    spec: ToolSpec
    run: Callable[..., Any] = field(compare=False)
    isolate: bool = False

    @property
    def name(self) -> str:
        return self.spec.name


class ToolError(Exception):
    """Raised by a tool for a meaningful, user-facing failure (e.g. "city 'Atlantis' not found").

    The runner turns it into an error observation of kind `tool_error`; the message is what the model reads.
    """
