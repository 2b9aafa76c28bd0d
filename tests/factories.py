"""Episodes for tests: realistic enough to exercise every field of the record."""
from __future__ import annotations

from dataclasses import replace

from replay.episode import (
    Episode, FunctionCall, Message, Outcome, Reflection, Search, SearchNode, TokenCounts, ToolCall,
)

WEATHER_SPEC = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Daily weather of a city on a date.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "date": {"type": "string"},
                           "units": {"type": "string", "enum": ["metric", "imperial"], "default": "metric"}},
            "required": ["city", "date"],
        },
    },
}


def make_episode(i: int = 0, round: int = 1, tool: str = "get_weather", solved: bool = True,
                 policy_version: int = 0, padding: int = 0) -> Episode:
    """A full ReAct trial: the user asks, the assistant calls the tool, reads the result, answers."""
    call = ToolCall(id=f"call_{i}", function=FunctionCall(name=tool, arguments={"city": f"City {i}", "date": "2023-05-01"}))
    messages = [
        Message(role="system", content="You can call tools." + " " * padding),
        Message(role="user", content=f"How warm was it in City {i} on 1 May 2023?"),
        Message(role="assistant", content=None, tool_calls=[call]),
        Message(role="tool", content=f'{{"temperature_c": {i % 30}}}', tool_call_id=f"call_{i}", name=tool),
        Message(role="assistant", content=f"It was {i % 30} °C."),
    ]
    return Episode(
        tools=[tool], tool_specs=[WEATHER_SPEC], round=round, query=f"How warm was it in City {i} on 1 May 2023?",
        messages=messages,
        outcome=Outcome(final_answer=f"It was {i % 30} °C.", tool_calls_ok=1, last_call_ok=True,
                        reflection=Reflection(solved=solved, reason="the answer states the temperature")),
        policy_version=policy_version, session=f"s{i // 4}", trial=i % 4, actor="explorer-0",
        created_at=1_700_000_000.0 + i, timings={"generate": 0.5, "tools": 0.01},
        tokens=TokenCounts(prompt=120, completion=30),
    )


def make_dfsdt_episode() -> Episode:
    """An episode with a search tree: a failed branch, a backtrack, then the successful path."""
    base = make_episode(7)
    nodes = [
        SearchNode(id=0, parent=None, messages=base.messages[:2], status="expanded"),
        SearchNode(id=1, parent=0, messages=[Message(role="assistant", content="I give up.")], status="gave_up"),
        SearchNode(id=2, parent=0, messages=base.messages[2:4], status="expanded"),
        SearchNode(id=3, parent=2, messages=base.messages[4:], status="answered"),
    ]
    search = Search(strategy="dfsdt", nodes=nodes, success_path=[0, 2, 3], expansions=3, backtracks=1, tool_calls=1)
    return replace(base, search=search, id="")
