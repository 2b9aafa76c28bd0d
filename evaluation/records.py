"""What one evaluated query leaves behind: the calls made on the chosen path, the answer, the flags.

Records carry their gold entry, so every metric is a pure function of records and tests can feed
hand-made ones; they serialize to JSON as they are, for reports and for comparing runs later.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from actors.calls import check_call
from actors.search import FINISH_NAME
from replay.episode import Message
from toolenv.gold import GoldEntry


@dataclass(frozen=True)
class Turn:
    """One assistant turn of the chosen path, as a call (name None when the turn was no call at all)."""

    name: str | None
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # None: a valid call to one of the tools the query offered (Finish included)

    @property
    def is_finish(self) -> bool:
        return self.name == FINISH_NAME


@dataclass(frozen=True)
class Flags:
    well_formed: bool = False
    api_match: bool = False
    argument_match: bool = False
    correct: bool = False
    answered: bool = False  # Finish with give_answer
    solved: bool = False  # answered, and the judge accepted the answer
    exec_match: bool = False  # the path's calls return what every gold call returns (evaluation.execution)


@dataclass(frozen=True)
class QueryRecord:
    id: str
    tool: str
    category: str
    round: int | None
    query: str
    gold: GoldEntry
    turns: tuple[Turn, ...]
    final_answer: str | None  # None: no Finish with give_answer on the chosen path
    gave_up: bool = False
    strategy: str = ""
    tool_calls: int = 0  # real calls over the whole search, not only the chosen path
    tokens: int = 0
    flags: Flags | None = None  # filled by `metrics.score`

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def path_turns(messages: list[Message], tools: list[dict], start: int = 0) -> tuple[Turn, ...]:
    """The assistant turns of `messages[start:]`, each checked against `tools` (the name and the schema).

    Checked here rather than trusted from the policy: a scripted or endpoint policy may return a call
    that names a tool the query never offered, and STE counts that as not well-formed.
    """
    turns = []
    for message in messages[start:]:
        if message.role != "assistant":
            continue
        if not message.tool_calls:
            text = " ".join((message.content or "").split())[:200]
            turns.append(Turn(name=None, error=f"no tool call: {text!r}"))
            continue
        call = message.tool_calls[0].function
        _, error = check_call({"name": call.name, "arguments": call.arguments}, tools)
        turns.append(Turn(name=call.name, arguments=dict(call.arguments), error=error))
    return tuple(turns)
