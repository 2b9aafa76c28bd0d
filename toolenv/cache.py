"""Recorded responses for tools that exist only as documentation (ToolBench's RapidAPI tools).

Live APIs break and results do not reproduce (ToolBench users' top complaint; StableToolBench's answer is a
response cache). A cached tool replays what was recorded for exactly these arguments and says so plainly
when nothing was; given a live backend, it records what it fetches for next time.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from toolenv.spec import ToolError

Backend = Callable[[str, dict[str, Any]], Any]  # (tool name, arguments) -> response, e.g. a live HTTP call


class NotCached(ToolError):
    """No recorded response for this call; the runner reports it as a `not_cached` observation."""


def canonical_arguments(arguments: dict[str, Any]) -> str:
    """One text per argument set however the keys were ordered or spaced: the cache key."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class ResponseCache:
    """Responses keyed by tool name, then canonical arguments; stored as one JSON file (or only in memory)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self._responses: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            loaded = json.loads(self.path.read_text())
            if not isinstance(loaded, dict) or not all(isinstance(entries, dict) for entries in loaded.values()):
                raise ValueError(f"{self.path}: a response cache is a JSON object {{tool name: {{arguments JSON: response}}}}")
            self._responses = loaded

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._responses.values())

    def lookup(self, name: str, arguments: dict[str, Any]) -> tuple[bool, Any]:
        """(found, response): a recorded response may itself be null, hence the flag."""
        entries = self._responses.get(name, {})
        key = canonical_arguments(arguments)
        return (key in entries, entries.get(key))

    def record(self, name: str, arguments: dict[str, Any], response: Any) -> None:
        """Remember a response and, for a file-backed cache, write the file (atomically: a crash leaves the old one)."""
        self._responses.setdefault(name, {})[canonical_arguments(arguments)] = response
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.path.parent, suffix=".tmp", delete=False) as temporary:
            json.dump(self._responses, temporary, ensure_ascii=False, indent=1, sort_keys=True)
        os.replace(temporary.name, self.path)


def cached_executor(name: str, cache: ResponseCache, backend: Backend | None = None) -> Callable[..., Any]:
    """The `run` of a documentation-only tool: replay from the cache, else ask the backend and record, else NotCached."""

    def run(**arguments: Any) -> Any:
        found, response = cache.lookup(name, arguments)
        if found:
            return response
        if backend is None:
            raise NotCached(f"{name}: no recorded response for arguments {canonical_arguments(arguments)} (offline, no live backend)")
        response = backend(name, arguments)
        cache.record(name, arguments, response)
        return response

    return run
