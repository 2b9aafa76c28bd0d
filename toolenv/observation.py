"""What a tool call gives back: a result or a typed error, never an exception into the caller.

The error kinds play the part of ToolBench's status codes: search (DFSDT) and evaluation branch on them,
and the model reads them in the `tool` message.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DFSDT_MAX_CHARS = 1024  # ToolBench truncates observations at 1024 characters
_RESULT_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


class ErrorKind(StrEnum):
    UNKNOWN_TOOL = "unknown_tool"  # no tool by that name (the message suggests close names)
    BAD_ARGUMENTS = "bad_arguments"  # unparsable JSON, wrong type, missing or unknown argument, enum violation
    TIMEOUT = "timeout"  # ran past the per-call time limit
    TOOL_ERROR = "tool_error"  # the tool reported a meaningful failure (ToolError)
    NOT_CACHED = "not_cached"  # a cached-response tool has no recording for these arguments
    OUTPUT_TOO_LARGE = "output_too_large"  # the JSON-serialized result (or printed output) passed the cap
    MEMORY_LIMIT = "memory_limit"  # an isolated tool ran out of its memory allowance
    CRASHED = "crashed"  # anything the tool did not mean: an unexpected exception, a non-JSON result, a dead worker


@dataclass(frozen=True)
class Observation:
    """The outcome of one tool call: `result` (JSON data) when ok, else an error kind and a message."""

    tool: str
    ok: bool
    result: Any = None
    error: ErrorKind | None = None
    message: str = ""
    elapsed_s: float = 0.0

    @classmethod
    def failure(cls, tool: str, error: ErrorKind, message: str, elapsed_s: float = 0.0) -> Observation:
        return cls(tool=tool, ok=False, error=error, message=message, elapsed_s=elapsed_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "ok": self.ok,
            "result": self.result,
            "error": None if self.error is None else str(self.error),
            "message": self.message,
            "elapsed_s": round(self.elapsed_s, 6),
        }

    def content(self, max_chars: int | None = DFSDT_MAX_CHARS) -> str:
        """The `tool` message the model reads: JSON text, cut at max_chars (None: whole).

        The result is only ever rendered as JSON data; nothing in it is interpreted or executed.
        """
        payload = self.result if self.ok else {"error": str(self.error), "message": self.message}
        text = json.dumps(payload, ensure_ascii=False)
        if max_chars is not None and len(text) > max_chars:
            return text[:max_chars] + "..."
        return text


class OutputTooLarge(ValueError):
    """A result whose JSON text passes the output cap."""


def encode_result(result: Any, max_bytes: int) -> str:
    """A tool result as JSON text, built piece by piece so that a huge result stops at the cap instead of
    being copied whole; TypeError/ValueError if it is not JSON data (a set, NaN), OutputTooLarge past the cap."""
    pieces, size = [], 0
    for piece in _RESULT_ENCODER.iterencode(result):
        size += len(piece) if piece.isascii() else len(piece.encode())
        if size > max_bytes:
            raise OutputTooLarge(f"result passed the cap of {max_bytes} bytes of JSON")
        pieces.append(piece)
    return "".join(pieces)
