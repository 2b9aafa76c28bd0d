"""Test data: episodes realistic enough to exercise every field of the record; a tiny model folder and batches
of token examples for the learner."""
from __future__ import annotations

from dataclasses import replace

import torch

from actors.model import tiny_model
from learner.examples import IGNORE, Example
from learner.packing import first_fit_decreasing, packed_batch, padded_batch

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


def save_tiny_model(path) -> str:
    model, tokenizer = tiny_model(seed=0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def make_batches(count: int = 4, rows: int = 4, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """A fixed handful of batches of random token examples (a 4-token untrained prefix each); the
    last one packed two examples to a row, the others padded one to a row."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for index in range(count):
        examples = []
        for _ in range(rows if index < count - 1 else 2 * rows):
            length = int(torch.randint(10, 24, (1,), generator=generator))
            ids = torch.randint(3, 400, (length,), generator=generator).tolist()
            examples.append(Example(ids, [IGNORE] * 4 + ids[4:], prefix_len=4))
        batch = padded_batch(examples) if index < count - 1 else packed_batch(first_fit_decreasing(examples, 48))
        batches.append(batch.model_inputs())
    return batches
