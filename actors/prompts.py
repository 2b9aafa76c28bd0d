"""The prompts of STE's imagination, reflection and paraphrasing, in one place to read and tune."""
from __future__ import annotations

import json

from replay.episode import Message

QUERY_SCHEMA = {
    "type": "object",
    "properties": {"query": {"type": "string", "minLength": 8, "maxLength": 240}},
    "required": ["query"],
}
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"solved": {"type": "boolean"}, "reason": {"type": "string", "maxLength": 300}},
    "required": ["solved", "reason"],
}

IMAGINE_SYSTEM = (
    "You are exploring an API to learn how to use it. Its documentation:\n{doc}\n\n"
    "Imagine one realistic request a user could make that this API helps to answer. Write it the way a user "
    "would, with every concrete detail needed (names, numbers, dates, units). Do not mention the API or its "
    'name. Reply as JSON: {{"query": "..."}}'
)


def imagination(doc: dict, explored: list[tuple[str, bool]], session: list[tuple[str, str, bool]]) -> list[Message]:
    """Long-term memory (`explored`: earlier queries, solved or not) widens; short-term memory (`session`:
    this session's trials as query, what the tool returned, solved) deepens, by asking for a follow-up."""
    parts = []
    if explored:
        lines = "\n".join(f"- {q} ({'solved' if ok else 'not solved'})" for q, ok in explored)
        parts.append(f"Requests already explored for this API; write something different from all of them:\n{lines}")
    if session:
        lines = "\n".join(f"{i}. Request: {q}\n   The API returned: {result}\n   {'Solved' if ok else 'Not solved'}."
                          for i, (q, result, ok) in enumerate(session, start=1))
        parts.append(f"Earlier in this session:\n{lines}\n"
                     "Write a follow-up request that builds on what was discovered, or tries what failed differently.")
    else:
        parts.append("Write the first request.")
    return [
        Message(role="system", content=IMAGINE_SYSTEM.format(doc=json.dumps(doc, ensure_ascii=False))),
        Message(role="user", content="\n\n".join(parts)),
    ]


REFLECT_SYSTEM = "You judge whether an assistant fulfilled a user's request, using only the tool results it got."


def reflection(query: str, calls: list[tuple[str, str]], final_answer: str) -> list[Message]:
    steps = "\n".join(f"- {call} -> {result}" for call, result in calls) or "- (no tool was called)"
    return [
        Message(role="system", content=REFLECT_SYSTEM),
        Message(role="user", content=(
            f"Request: {query}\nTool calls and results:\n{steps}\nFinal answer: {final_answer}\n\n"
            'Did the final answer fulfil the request, backed by the tool results? Reply as JSON: '
            '{"solved": true or false, "reason": "one sentence"}'
        )),
    ]


def paraphrase(query: str) -> list[Message]:
    return [
        Message(role="system", content="You rewrite user requests."),
        Message(role="user", content=(
            "Rewrite this request in different words. Keep every detail (names, numbers, dates, units) exactly. "
            f"Reply with the rewritten request only.\n\nRequest: {query}"
        )),
    ]
