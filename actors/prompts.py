"""The prompts of STE's imagination, reflection and paraphrasing, in one place to read and tune."""
from __future__ import annotations

import json

from replay.episode import Message

QUERY_SCHEMA = {
    "type": "object",
    "properties": {"query": {"type": "string", "minLength": 8, "maxLength": 160}},
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


EXAMPLE_CALL_SYSTEM = "You are exploring a tool to learn how to use it. You call it with realistic example values."
# Shots for writing a query from a call: tools that are not in any built-in suite, so nothing leaks into evaluation.
QUERY_FROM_CALL_SHOTS = (
    ("lookup_train_times", {"origin": "Lyon", "destination": "Geneva", "date": "2024-05-02"},
     "Which trains go from Lyon to Geneva on 2024-05-02?"),
    ("count_syllables", {"text": "to be or not to be"}, "How many syllables are in 'to be or not to be'?"),
    ("convert_length", {"value": 12, "from_unit": "inch", "to_unit": "cm"}, "What is 12 inch in cm?"),
)
QUERY_FROM_CALL_SYSTEM = ("You turn a tool call into the request a user made, stating every argument value. "
                          "Never name the tool. Reply as JSON.")


def example_call(explored: list[tuple[str, bool]], session: list[tuple[str, str, bool]]) -> list[Message]:
    """Execution-grounded imagination, first half: the model proposes a concrete call, which is then run.

    A small model writes far better queries from a call it made than from documentation alone; the same
    memories steer it: long-term toward values not explored yet, short-term toward follow-ups.
    """
    parts = ["Call the tool once with realistic example values, giving only the arguments you need."]
    if explored:
        lines = "\n".join(f"- {q}" for q, _ in explored)
        parts.append(f"Requests already explored; choose different values:\n{lines}")
    if session:
        lines = "\n".join(f"- {q} -> {result}" for q, result, _ in session)
        parts.append(f"Earlier in this session:\n{lines}\nTry something that builds on this or differs from it.")
    return [Message(role="system", content=EXAMPLE_CALL_SYSTEM), Message(role="user", content="\n\n".join(parts))]


def show_call(name: str, arguments: dict) -> str:
    return f"{name}({', '.join(f'{key}={json.dumps(value, ensure_ascii=False)}' for key, value in arguments.items())})"


def query_from_call(name: str, arguments: dict) -> list[Message]:
    """Second half: the request this call answers, few-shot, since a 135M model follows examples, not instructions."""
    messages = [Message(role="system", content=QUERY_FROM_CALL_SYSTEM)]
    for shot_name, shot_arguments, query in QUERY_FROM_CALL_SHOTS:
        messages += [Message(role="user", content=show_call(shot_name, shot_arguments)),
                     Message(role="assistant", content=json.dumps({"query": query}))]
    return messages + [Message(role="user", content=show_call(name, arguments))]


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
