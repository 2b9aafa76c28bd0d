"""Episodes as people read them: a conversation of panels, an outcome line, the search tree."""
from __future__ import annotations

import json

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text
from rich.tree import Tree

from replay.episode import Episode, Message, Search

_STYLE = {"system": "dim", "user": "cyan", "assistant": "green", "tool": "yellow"}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more characters]"


def render_message(message: Message, limit: int = 1200) -> Panel:
    parts: list[RenderableType] = []
    if message.content:
        parts.append(Text(_clip(message.content, limit)))
    for call in message.tool_calls:
        arguments = json.dumps(call.function.arguments, ensure_ascii=False)
        parts.append(Text.assemble(("call ", "bold"), (call.function.name, "bold magenta"), f"({arguments})"))
    if not parts:
        parts.append(Text("(empty)", style="dim"))
    title = message.role if message.role != "tool" else f"tool result: {message.name or '?'}"
    if message.role == "tool" and message.content and message.content.lstrip().startswith(("{", "[")):
        parts = [Syntax(_clip(message.content, limit), "json", word_wrap=True, background_color="default")]
    return Panel(Group(*parts), title=title, title_align="left", border_style=_STYLE[message.role])


def render_tree(search: Search) -> Tree:
    """The search tree: each node's first tool call or answer, marked ✓ on the successful path."""
    tree = Tree(f"[bold]{search.strategy}[/]: {len(search.nodes)} nodes, {search.expansions} expansions, "
                f"{search.backtracks} backtracks, {search.tool_calls} tool calls")
    branches: dict[int | None, Tree] = {None: tree}
    on_path = set(search.success_path)
    for node in search.nodes:  # parents come before children
        label = _node_label(node.messages)
        mark = "[green]✓[/] " if node.id in on_path else ""
        parent = branches.get(node.parent, tree)
        branches[node.id] = parent.add(f"{mark}#{node.id} [dim]{node.status}[/] {label}")
    return tree


def _node_label(messages: list[Message]) -> str:
    for message in messages:
        if message.tool_calls:
            call = message.tool_calls[0].function
            return _clip(f"{call.name}({json.dumps(call.arguments, ensure_ascii=False)})", 100)
    for message in messages:
        if message.role == "assistant" and message.content:
            return _clip(message.content.replace("\n", " "), 100)
    return ""


def render_episode(episode: Episode, limit: int = 1200) -> Group:
    head = Text.assemble(
        ("episode ", "bold"), episode.id, "  tools ", (", ".join(episode.tools), "magenta"),
        f"  round {episode.round}  policy v{episode.policy_version}  trial {episode.trial}",
        f"  session {episode.session or '-'}",
    )
    query = Text.assemble(("imagined query: ", "bold"), episode.query)
    outcome = episode.outcome
    verdict = outcome.reflection
    summary = Text.assemble(
        ("outcome: ", "bold"), (outcome.label, "green" if outcome.label == "solved" else "red"),
        f"  calls ok {outcome.tool_calls_ok} / failed {outcome.tool_calls_failed}",
        f"  final answer: {_clip(outcome.final_answer, 200) if outcome.final_answer is not None else '-'}",
    )
    parts: list[RenderableType] = [head, query]
    parts += [render_message(m, limit) for m in episode.messages]
    parts.append(summary)
    if verdict is not None:
        parts.append(Text.assemble(("reflection: ", "bold"), "solved" if verdict.solved else "not solved",
                                   f" — {verdict.reason}"))
    if episode.search.nodes:
        parts.append(render_tree(episode.search))
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in episode.timings.items())
    parts.append(Text(f"tokens: prompt {episode.tokens.prompt}, completion {episode.tokens.completion}"
                      + (f"   timings: {timings}" if timings else ""), style="dim"))
    return Group(*parts)
