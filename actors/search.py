"""Search over tool calls: ReAct, ReAct@N and DFSDT behind one interface, batched over tasks.

Every assistant turn is one tool call; a final answer is a call to ToolBench's `Finish` function
(`give_answer` with the answer, or `give_up_and_restart`). All strategies step their open chains
in lockstep, so each step is one batched model call however many tasks and branches are open.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from actors.policy import Policy, Reply, Sampling
from replay.episode import Message, NodeStatus, Outcome, Search, SearchNode, TokenCounts
from toolenv.runner import ToolRunner

FINISH_NAME = "Finish"


def finish_tool(max_answer_chars: int | None = None) -> dict:
    """ToolBench's Finish function. `max_answer_chars` caps final_answer in the schema, so that under
    constrained decoding a model that repeats itself still closes its answer: a complete call, not a cut one."""
    answer = {"type": "string", "description": "The answer for the user (with give_answer)."}
    if max_answer_chars is not None:
        answer["maxLength"] = max_answer_chars
    return {
        "type": "function",
        "function": {
            "name": FINISH_NAME,
            "description": (
                "Call this when the task is done. With return_type 'give_answer', final_answer is the complete answer "
                "for the user. With 'give_up_and_restart', the current attempt is abandoned and a new one starts."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "return_type": {"type": "string", "enum": ["give_answer", "give_up_and_restart"]},
                    "final_answer": answer,
                },
                "required": ["return_type", "final_answer"],
            },
        },
    }


FINISH = finish_tool()

REPEATED_CALL = (
    '{"error": "repeated_call", "message": "You already made this exact call and its result is above. '
    'Answer with Finish, or call a tool with different arguments."}'
)

SOLVER_SYSTEM = (
    "You are a helpful assistant that answers the user's question by calling tools. Call one tool at a time and "
    "read its result. When the results answer the question, call Finish with return_type \"give_answer\" and "
    "the answer in final_answer. If you cannot make progress, call Finish with \"give_up_and_restart\"."
)


@dataclass(frozen=True)
class Task:
    """One query to solve with a set of tools (OpenAI function dicts, Finish added by the search)."""

    query: str
    tools: tuple[dict, ...]
    system: str = SOLVER_SYSTEM
    demonstrations: tuple[Message, ...] = ()  # in-context examples placed before the query
    prefix: tuple[Message, ...] = ()  # turns already taken after the query (calls that ran, and their results)


class Budget(BaseModel):
    """How far one search may go: the one budget of exploration and evaluation (a run's `explore.budget`; the
    defaults are the run's, so `imaginarium explore`, `eval` and `run` search alike unless told otherwise)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_turns: int = Field(4, ge=1)  # assistant turns in one chain (ToolBench: about 12)
    max_tool_calls: int = Field(6, ge=1)  # real tool calls over the whole search of a task
    max_expansions: int = Field(12, ge=1)  # DFSDT: model calls that create nodes
    max_children: int = Field(2, ge=1)  # DFSDT: siblings tried under one node before backtracking past it
    max_observation_chars: int = Field(1024, ge=64)  # ToolBench truncates tool results to 1024 characters


class FinishRule(BaseModel):
    """When the search offers Finish, and how long an answer it takes: rules of the search, not budgets
    (a run's `explore.finish`; evaluation searches under the same rule)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after_a_call: bool = True  # Finish is offered only once a real tool has been called: a trial tries the tool
    alone_after_success: bool = False  # after a call that succeeded only Finish is offered (small models loop)
    max_answer_chars: int | None = Field(None, ge=16)  # Finish's final_answer cap (see finish_tool); None: uncapped

    @property
    def tool(self) -> dict:
        """The Finish function offered: the one every episode and evaluation under this rule records."""
        return finish_tool(self.max_answer_chars)


@dataclass
class SearchResult:
    messages: list[Message]  # the chosen path: system, (demonstrations), user, assistant/tool turns
    outcome: Outcome
    search: Search
    tokens: TokenCounts = field(default_factory=TokenCounts)
    timings: dict[str, float] = field(default_factory=dict)


class Strategy(Protocol):
    name: str
    budget: Budget
    finish: FinishRule

    def run(self, policy: Policy, runner: ToolRunner, tasks: list[Task], sampling: Sampling) -> list[SearchResult]: ...


# ---- one chain: the state all strategies share --------------------------------------------------


@dataclass
class _Chain:
    task_index: int
    messages: list[Message]
    tools: list[dict]
    turns: int = 0
    final_answer: str | None = None
    gave_up: bool = False
    done: bool = False


@dataclass
class _Tally:
    """What one task's search spent, whatever the strategy."""

    tool_calls: int = 0
    calls_ok: int = 0
    calls_failed: int = 0
    last_call_ok: bool | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generate_s: float = 0.0
    tools_s: float = 0.0


def _start(task: Task, index: int, finish: FinishRule) -> _Chain:
    messages = [Message(role="system", content=task.system), *task.demonstrations, Message(role="user", content=task.query),
                *task.prefix]
    called = any(m.role == "tool" for m in task.prefix)
    tools = list(task.tools) if finish.after_a_call and not called else [*task.tools, finish.tool]
    if called and finish.alone_after_success:
        tools = [finish.tool]
    return _Chain(task_index=index, messages=messages, tools=tools, turns=sum(m.role == "assistant" for m in task.prefix))


def _tally(task: Task) -> _Tally:
    """What a task's prefix already spent: its calls, all of which ran."""
    calls = sum(m.role == "tool" for m in task.prefix)
    return _Tally(tool_calls=calls, calls_ok=calls, last_call_ok=True if calls else None)


def _generate(policy: Policy, chains: list[_Chain], sampling: Sampling, tallies: list[_Tally],
              extra: list[list[Message]] | None = None) -> list[Reply]:
    """One batched model call over the chains' conversations (plus optional per-chain extra messages)."""
    conversations = [c.messages + (extra[i] if extra else []) for i, c in enumerate(chains)]
    started = time.perf_counter()
    replies = policy.chat(conversations, [c.tools for c in chains], sampling, mode="tool_call")
    elapsed = (time.perf_counter() - started) / max(len(chains), 1)
    for chain, reply in zip(chains, replies):
        tally = tallies[chain.task_index]
        tally.prompt_tokens += reply.prompt_tokens
        tally.completion_tokens += reply.completion_tokens
        tally.generate_s += elapsed
    return replies


def _apply(chain: _Chain, reply: Reply, runner: ToolRunner, tally: _Tally, budget: Budget,
           finish: FinishRule) -> list[Message]:
    """Append the assistant turn and what it caused; returns the new messages (for tree nodes)."""
    new = [reply.message]
    chain.turns += 1
    if reply.parse_error or not reply.message.tool_calls:
        # the model sees its mistake as feedback, as STE does with unparsable actions
        new.append(Message(role="user", content=f"That was not a valid tool call ({reply.parse_error}). "
                                                "Reply with exactly one tool call."))
    else:
        call = reply.message.tool_calls[0]
        if call.function.name == FINISH_NAME:
            kind = call.function.arguments.get("return_type")
            if kind == "give_up_and_restart":
                chain.gave_up = True
            else:
                chain.final_answer = str(call.function.arguments.get("final_answer", ""))
            chain.done = True
        elif _repeats_last_call(chain.messages, call):
            # small models loop on one call; say so instead of running it again
            tally.calls_failed += 1
            tally.last_call_ok = False
            new.append(Message(role="tool", tool_call_id=call.id, name=call.function.name, content=REPEATED_CALL))
        elif tally.tool_calls >= budget.max_tool_calls:
            new.append(Message(role="tool", tool_call_id=call.id, name=call.function.name,
                               content='{"error": "budget", "message": "tool-call budget spent; call Finish"}'))
            chain.done = True
        else:
            started = time.perf_counter()
            observation = runner.call(call.function.name, call.function.arguments)
            tally.tools_s += time.perf_counter() - started
            tally.tool_calls += 1
            tally.calls_ok += observation.ok
            tally.calls_failed += not observation.ok
            tally.last_call_ok = observation.ok
            new.append(Message(role="tool", tool_call_id=call.id, name=call.function.name,
                               content=observation.content(budget.max_observation_chars)))
            if finish.alone_after_success and observation.ok:
                chain.tools = [finish.tool]
            elif finish.tool not in chain.tools:
                chain.tools = [*chain.tools, finish.tool]
    chain.messages = chain.messages + new
    if chain.turns >= budget.max_turns:
        chain.done = True
    return new


def _repeats_last_call(messages: list[Message], call) -> bool:
    for message in reversed(messages):
        if message.role == "assistant" and message.tool_calls:
            last = message.tool_calls[0].function
            return (last.name, last.arguments) == (call.function.name, call.function.arguments)
    return False


def _result(chain: _Chain, tally: _Tally, search: Search) -> SearchResult:
    search.tool_calls = tally.tool_calls
    outcome = Outcome(final_answer=chain.final_answer, gave_up=chain.gave_up and chain.final_answer is None,
                      tool_calls_ok=tally.calls_ok, tool_calls_failed=tally.calls_failed, last_call_ok=tally.last_call_ok)
    return SearchResult(
        messages=chain.messages, outcome=outcome, search=search,
        tokens=TokenCounts(prompt=tally.prompt_tokens, completion=tally.completion_tokens),
        timings={"generate": round(tally.generate_s, 4), "tools": round(tally.tools_s, 4)},
    )


# ---- ReAct and ReAct@N ---------------------------------------------------------------------------


@dataclass
class ReAct:
    """One chain per task; ReAct@N (n > 1) runs n chains per task and keeps the first to give an answer."""

    budget: Budget = Budget()
    finish: FinishRule = FinishRule()
    n: int = 1

    @property
    def name(self) -> str:
        return "react" if self.n == 1 else f"react@{self.n}"

    def run(self, policy: Policy, runner: ToolRunner, tasks: list[Task], sampling: Sampling) -> list[SearchResult]:
        chains = [_start(task, i, self.finish) for i, task in enumerate(tasks) for _ in range(self.n)]
        tallies = [_tally(task) for task in tasks]
        winner: dict[int, _Chain] = {}
        while True:
            open_chains = [c for c in chains if not c.done and c.task_index not in winner]
            if not open_chains:
                break
            for chain, reply in zip(open_chains, _generate(policy, open_chains, sampling, tallies)):
                _apply(chain, reply, runner, tallies[chain.task_index], self.budget, self.finish)
                if chain.final_answer is not None and chain.task_index not in winner:
                    winner[chain.task_index] = chain  # the others of this task stop here
        results = []
        for i in range(len(tasks)):
            group = chains[i * self.n : (i + 1) * self.n]
            chosen = winner.get(i, group[0])
            tried = sum(1 for c in group if c.turns > 0)
            results.append(_result(chosen, tallies[i], Search(strategy=self.name, expansions=tried)))
        return results


# ---- DFSDT ---------------------------------------------------------------------------------------


DIVERSITY_PROMPT = (
    "This is not the first time you try this step. Earlier attempts from this point were:\n{previous}\n"
    "They did not lead to an answer. Do something different from all of them."
)


@dataclass
class DFSDT:
    """ToolLLM's depth-first search decision tree over assistant turns.

    A node is one assistant turn with its tool results. The search expands the deepest open node;
    when a chain gives up, fails (turn limit) or a node has `max_children` children already, it
    backtracks to the parent. A node that already has children is expanded with the diversity
    prompt, which lists its children and asks for something different. Expansions of all open
    tasks run as one batched model call.
    """

    budget: Budget = Budget()
    finish: FinishRule = FinishRule()
    name: str = "dfsdt"

    def run(self, policy: Policy, runner: ToolRunner, tasks: list[Task], sampling: Sampling) -> list[SearchResult]:
        tallies = [_tally(task) for task in tasks]
        trees = [_Tree(_start(task, i, self.finish)) for i, task in enumerate(tasks)]
        while True:
            frontier = [(t, t.next_node(self.budget)) for t in trees if not t.finished]
            frontier = [(t, n) for t, n in frontier if n is not None]
            for tree in trees:
                if not tree.finished and all(t is not tree for t, _ in frontier):
                    tree.finished = True  # nothing left to expand within the budgets
            if not frontier:
                break
            chains = [tree.chain_to(node) for tree, node in frontier]
            extra = [tree.diversity_hint(node) for tree, node in frontier]
            replies = _generate(policy, chains, sampling, tallies, extra)
            for (tree, parent), chain, reply in zip(frontier, chains, replies):
                tree.expansions += 1
                new = _apply(chain, reply, runner, tallies[chain.task_index], self.budget, self.finish)
                status: NodeStatus = "answered" if chain.final_answer is not None else "gave_up" if chain.gave_up else "expanded"
                node = tree.add(parent, new, status, chain)
                if chain.final_answer is not None:
                    tree.solution = node
                    tree.finished = True
                elif chain.gave_up or (chain.done and chain.final_answer is None):
                    if status == "expanded":
                        tree.nodes[node].status = "failed"
                    tree.backtracks += 1
                if tallies[chain.task_index].tool_calls >= self.budget.max_tool_calls or tree.expansions >= self.budget.max_expansions:
                    tree.finished = True
        return [tree.result(tallies[i]) for i, tree in enumerate(trees)]


@dataclass
class _Node:
    parent: int | None
    messages: list[Message]
    status: NodeStatus
    depth: int
    children: list[int] = field(default_factory=list)
    chain: _Chain | None = None


class _Tree:
    def __init__(self, root_chain: _Chain):
        self.root_chain = root_chain
        self.nodes = [_Node(parent=None, messages=list(root_chain.messages), status="open", depth=0, chain=root_chain)]
        self.expansions = 0
        self.backtracks = 0
        self.solution: int | None = None
        self.finished = False

    def next_node(self, budget: Budget) -> int | None:
        """Depth first: the deepest, latest node that can still take a child."""
        for index in sorted(range(len(self.nodes)), key=lambda i: (self.nodes[i].depth, i), reverse=True):
            node = self.nodes[index]
            if node.status in ("gave_up", "failed", "answered"):
                continue
            if len(node.children) >= budget.max_children or node.depth >= budget.max_turns:
                continue
            return index
        return None

    def chain_to(self, index: int) -> _Chain:
        """A fresh chain holding the conversation from the root to this node."""
        node = self.nodes[index]
        base = node.chain
        return _Chain(task_index=base.task_index, messages=list(base.messages), tools=base.tools, turns=node.depth)

    def diversity_hint(self, index: int) -> list[Message]:
        children = self.nodes[index].children
        if not children:
            return []
        previous = "\n".join(f"- {_describe(self.nodes[c].messages)}" for c in children)
        return [Message(role="user", content=DIVERSITY_PROMPT.format(previous=previous))]

    def add(self, parent: int, messages: list[Message], status: NodeStatus, chain: _Chain) -> int:
        self.nodes.append(_Node(parent=parent, messages=messages, status=status,
                                depth=self.nodes[parent].depth + 1, chain=chain))
        index = len(self.nodes) - 1
        self.nodes[parent].children.append(index)
        self.nodes[parent].status = "expanded" if self.nodes[parent].status == "open" else self.nodes[parent].status
        return index

    def path(self, index: int) -> list[int]:
        path = []
        while index is not None:
            path.append(index)
            index = self.nodes[index].parent
        return path[::-1]

    def result(self, tally: _Tally) -> SearchResult:
        end = self.solution if self.solution is not None else max(range(len(self.nodes)), key=lambda i: (self.nodes[i].depth, -i))
        chain = self.nodes[end].chain
        nodes = [SearchNode(id=i, parent=n.parent, messages=n.messages, status=n.status) for i, n in enumerate(self.nodes)]
        search = Search(strategy="dfsdt", nodes=nodes, success_path=self.path(self.solution) if self.solution is not None else [],
                        expansions=self.expansions, backtracks=self.backtracks)
        return _result(chain, tally, search)


def _describe(messages: list[Message]) -> str:
    for message in messages:
        if message.tool_calls:
            call = message.tool_calls[0].function
            return f"{call.name}({call.arguments})"
    return (messages[0].content or "")[:200] if messages else ""


STRATEGY_PATTERN = r"^(react|react@[1-9][0-9]*|dfsdt)$"  # the strategy grammar; configs validate against it too


def make_strategy(name: str, budget: Budget = Budget(), finish: FinishRule = FinishRule()) -> Strategy:
    """A strategy by name: react, react@N (N chains per task, the first answer kept) or dfsdt."""
    if re.fullmatch(STRATEGY_PATTERN, name) is None:
        raise ValueError(f"unknown strategy '{name}': use react, react@N or dfsdt")
    if name == "dfsdt":
        return DFSDT(budget, finish)
    return ReAct(budget, finish, n=int(name.partition("@")[2] or 1))
