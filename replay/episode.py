"""The episode record: the unit that flows from explorers through the buffer to the learner.

Plain dataclasses, so every part of the system can build and read them without the codec;
`replay.codec` is the one place that turns them into msgpack bytes and validates them back.
The conversation uses the OpenAI/Hugging Face chat shape (roles, `tool_calls` with a
`function` of `name` and `arguments`, `tool` messages with `tool_call_id`), so it renders with
any chat template that takes `tools=` and exports unchanged for other trainers.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

import msgspec

SCHEMA_VERSION = 1

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Role = Literal["system", "user", "assistant", "tool"]
NodeStatus = Literal["open", "expanded", "answered", "gave_up", "failed", "pruned"]  # of a search-tree node
TagKey = Literal["tool", "round", "outcome", "version"]  # what the buffer's secondary indexes are keyed by


def index_tag(key: TagKey, value: object) -> str:
    """A secondary-index entry, "key=value": the one spelling that episodes, filters and stats share.
    Entries are joined by newlines into a group signature, so a newline in a value reads as a space."""
    return f"{key}={value}".replace("\n", " ")


def tag_values(tags: Iterable[str], key: TagKey) -> list[str]:
    """The values of `key` among index entries, in their order."""
    prefix = index_tag(key, "")
    return [tag[len(prefix):] for tag in tags if tag.startswith(prefix)]


@dataclass
class FunctionCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class ToolCall:
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


@dataclass
class Message:
    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # on `tool` messages: which call this result answers
    name: str | None = None  # on `tool` messages: the tool that produced the result


@dataclass
class Reflection:
    """The policy's own strict-JSON verdict on whether the query was fulfilled (STE's reflection)."""

    solved: bool
    reason: str


@dataclass
class Outcome:
    final_answer: str | None = None  # None: the episode never reached a final answer
    gave_up: bool = False  # DFSDT's give_up_and_restart ended the search
    tool_calls_ok: NonNegative = 0
    tool_calls_failed: NonNegative = 0
    last_call_ok: bool | None = None  # None: no tool was called
    reflection: Reflection | None = None

    @property
    def label(self) -> str:
        """One word for indexes and filters: solved, unsolved, gave_up or unfinished."""
        if self.gave_up:
            return "gave_up"
        if self.final_answer is None:
            return "unfinished"
        if self.reflection is not None and self.reflection.solved:
            return "solved"
        return "unsolved"


@dataclass
class SearchNode:
    """One assistant turn (and the tool results it got) in a search tree."""

    id: NonNegative
    parent: NonNegative | None
    messages: list[Message]
    status: NodeStatus = "expanded"


@dataclass
class Search:
    """How the conversation was found: a ReAct chain has no tree; DFSDT records its whole tree."""

    strategy: str = "react"
    nodes: list[SearchNode] = field(default_factory=list)
    success_path: list[NonNegative] = field(default_factory=list)  # node ids, root first
    expansions: NonNegative = 0
    backtracks: NonNegative = 0
    tool_calls: NonNegative = 0


@dataclass
class TokenCounts:
    prompt: NonNegative = 0
    completion: NonNegative = 0


@dataclass(kw_only=True)
class Episode:
    """One explored trial: an imagined query, the conversation that tried to solve it, and how it went."""

    tools: list[str]  # the tool(s) this episode explored
    tool_specs: list[dict[str, Any]]  # OpenAI function definitions the policy was shown
    round: NonNegative  # continual-learning round the tools belong to
    query: str  # the imagined user query
    messages: list[Message]
    outcome: Outcome = field(default_factory=Outcome)
    search: Search = field(default_factory=Search)
    policy_version: NonNegative = 0
    session: str = ""  # STE: trials of one session share short-term memory
    trial: NonNegative = 0  # position of this trial within its session
    actor: str = ""
    model: str = ""  # which model explored it: "" the student the learner trains, else the teacher's name
    derived_from: str = ""  # id of the explored episode this one paraphrases (exploitation)
    created_at: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds, e.g. generate, tools, total
    tokens: TokenCounts = field(default_factory=TokenCounts)
    schema_version: int = SCHEMA_VERSION
    id: str = ""  # content id: filled in from the content, so a retried push is idempotent

    def __post_init__(self) -> None:
        if not self.id:
            self.id = content_id(self)

    def tags(self) -> list[str]:
        """The secondary-index entries of this episode in the buffer."""
        return [*(index_tag("tool", name) for name in sorted(set(self.tools))), index_tag("round", self.round),
                index_tag("outcome", self.outcome.label), index_tag("version", self.policy_version)]


def content_id(episode: Episode) -> str:
    """A 128-bit hash of everything but the id: the same content always gets the same id."""
    content = msgspec.msgpack.encode(replace(episode, id="-"))
    return hashlib.blake2b(content, digest_size=16).hexdigest()
