"""Judges: is an answer right (pass rate), and which of two answers is better (win rate).

The default judges are rules over the gold sets, so a number is reproducible and free; the LLM
judges follow ToolEval (a model asked for a strict JSON verdict, repeated and aggregated) for
queries whose answers rules cannot check. Every judge takes a batch, so a model judge is one
batched call per repetition.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Sequence

from actors.policy import Policy, Sampling
from evaluation.records import QueryRecord
from replay.episode import Message
from toolenv.gold import GoldAnswer, match_value

# ---- pass rate: is this answer right? -------------------------------------------------------------

NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?", re.IGNORECASE)
NEGATION = re.compile(r"\b(?:no|not|false|never|neither|nor)\b|n't\b", re.IGNORECASE)


def answer_solves(answer: str, gold: GoldAnswer) -> bool:
    """Whether the answer text states the gold value (the text around it is free).

    Numbers: some number in the text within the gold tolerance (relative; "1,234.5" reads as 1234.5).
    Strings: the normalized gold text appears as whole words. Lists (set answers): every element does.
    Booleans: true when the text has no negation (no, not, n't, false, never), false when it has one.
    An any_of answer: the text states one of its accepted values.
    """
    if gold.match == "any_of":
        return any(_states(answer, value, gold.tolerance) for value in gold.value)
    return _states(answer, gold.value, gold.tolerance)


def _states(text: str, value: Any, tolerance: float) -> bool:
    if isinstance(value, bool):
        return (NEGATION.search(text) is None) == value
    if isinstance(value, (int, float)):
        return any(match_value(value, float(found.replace(",", "")), "numeric", tolerance)
                   for found in NUMBER.findall(text))
    if isinstance(value, list):
        return bool(value) and all(_states(text, item, tolerance) for item in value)
    if isinstance(value, dict):
        return all(_states(text, item, tolerance) for item in value.values())
    return match_value(value if isinstance(value, str) else json.dumps(value), text, "contains")


def rule_judge(records: Sequence[QueryRecord]) -> list[bool]:
    """Gold answer: the answer must state it. No gold answer: a correct call and an answer suffice."""
    return [
        answer_solves(record.final_answer or "", record.gold.answer) if record.gold.answer is not None
        else record.flags is not None and record.flags.correct and record.final_answer is not None
        for record in records
    ]


PASS_SCHEMA = {
    "type": "object",
    "properties": {"solved": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["solved", "reason"],
}
PASS_SYSTEM = (
    "You check whether an assistant solved a user's query with tools. Answer with JSON: "
    '{"solved": true or false, "reason": "one sentence"}. Solved means the final answer fully and '
    "correctly answers the query; a refusal, a guess or a partial answer is not solved."
)


@dataclass
class LLMJudge:
    """ToolEval's pass judge: ask the model `k` times (seeded samples) and take the strict majority.

    A verdict that does not parse counts as "not solved", so a judge that cannot answer never inflates
    the pass rate; with even `k` a tie is not solved.
    """

    policy: Policy
    k: int = 3
    sampling: Sampling = field(default_factory=lambda: Sampling(temperature=0.7, max_new_tokens=128, seed=0))
    show_gold: bool = True  # give the gold answer as a reference when the entry has one

    def __call__(self, records: Sequence[QueryRecord]) -> list[bool]:
        conversations = [self._conversation(record) for record in records]
        votes = [0] * len(records)
        for repeat in range(self.k):
            sampling = replace(self.sampling, seed=_seed(self.sampling.seed, repeat))
            replies = self.policy.chat(conversations, [[] for _ in records], sampling, mode="json", json_schema=PASS_SCHEMA)
            for index, reply in enumerate(replies):
                votes[index] += _verdict(reply.message.content, reply.parse_error, "solved") is True
        return [count * 2 > self.k for count in votes]

    def _conversation(self, record: QueryRecord) -> list[Message]:
        lines = [f"Query: {record.query}", f"Tool calls made: {_calls_text(record)}", f"Final answer: {record.final_answer}"]
        if self.show_gold and record.gold.answer is not None:
            lines.append(f"Reference answer (from the tool's own result): {json.dumps(record.gold.answer.value)}")
        return [Message(role="system", content=PASS_SYSTEM), Message(role="user", content="\n".join(lines))]


# ---- win rate: which of two runs answered a query better? -----------------------------------------

Preference = Literal["first", "second", "tie"]
PairJudge = Callable[[Sequence[tuple[QueryRecord, QueryRecord]]], list[Preference]]


def rule_pair_judge(pairs: Sequence[tuple[QueryRecord, QueryRecord]]) -> list[Preference]:
    """Solved beats unsolved; both solved or both unsolved is a tie (the records must be scored)."""
    return [
        "tie" if first.flags.solved == second.flags.solved else "first" if first.flags.solved else "second"
        for first, second in pairs
    ]


PAIR_SCHEMA = {
    "type": "object",
    "properties": {"better": {"enum": ["first", "second", "tie"]}, "reason": {"type": "string"}},
    "required": ["better", "reason"],
}
PAIR_SYSTEM = (
    "Two assistants tried to solve the same user query with tools. Say which solved it better: correct and "
    'complete answers beat wrong or missing ones. Answer with JSON: {"better": "first", "second" or "tie", '
    '"reason": "one sentence"}.'
)


@dataclass
class LLMPairJudge:
    """ToolEval's preference judge; `win_rate` shuffles which run comes first, so position bias cancels."""

    policy: Policy
    sampling: Sampling = field(default_factory=lambda: Sampling(temperature=0.0, max_new_tokens=128, seed=0))

    def __call__(self, pairs: Sequence[tuple[QueryRecord, QueryRecord]]) -> list[Preference]:
        conversations = [[
            Message(role="system", content=PAIR_SYSTEM),
            Message(role="user", content=f"Query: {first.query}\n\nFirst assistant:\n{_attempt_text(first)}\n\n"
                                         f"Second assistant:\n{_attempt_text(second)}"),
        ] for first, second in pairs]
        replies = self.policy.chat(conversations, [[] for _ in pairs], self.sampling, mode="json", json_schema=PAIR_SCHEMA)
        return [_verdict(reply.message.content, reply.parse_error, "better") or "tie" for reply in replies]


@dataclass(frozen=True)
class WinRate:
    wins: int
    losses: int
    ties: int

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def rate(self) -> float:
        """Percent of queries A won, a tie counting half."""
        return round(100 * (self.wins + self.ties / 2) / self.n, 2) if self.n else 0.0


def win_rate(run_a: Sequence[QueryRecord], run_b: Sequence[QueryRecord], judge: PairJudge = rule_pair_judge,
             seed: int = 0) -> WinRate:
    """A against B over the same queries (matched by id); per query a seeded coin decides who is shown first."""
    by_id_a, by_id_b = {r.id: r for r in run_a}, {r.id: r for r in run_b}
    if by_id_a.keys() != by_id_b.keys():
        only = sorted(by_id_a.keys() ^ by_id_b.keys())
        raise ValueError(f"the runs cover different queries: {len(only)} in only one of them, e.g. {only[0]!r}")
    ids = sorted(by_id_a)
    a_first = [random.Random(f"{seed}:{query_id}").random() < 0.5 for query_id in ids]
    pairs = [(by_id_a[i], by_id_b[i]) if first else (by_id_b[i], by_id_a[i]) for i, first in zip(ids, a_first)]
    wins = losses = ties = 0
    for preference, first in zip(judge(pairs), a_first):
        if preference == "tie":
            ties += 1
        elif (preference == "first") == first:
            wins += 1
        else:
            losses += 1
    return WinRate(wins, losses, ties)


# ---- shared ---------------------------------------------------------------------------------------


def _verdict(content: str | None, parse_error: str | None, key: str) -> Any:
    """The `key` of a JSON verdict, or None when the reply is not one."""
    if parse_error or not content:
        return None
    try:
        verdict = json.loads(content)
    except ValueError:
        return None
    return verdict.get(key) if isinstance(verdict, dict) else None


def _seed(seed: int | None, repeat: int) -> int | None:
    return None if seed is None else seed + repeat


def _calls_text(record: QueryRecord) -> str:
    calls = [f"{turn.name}({json.dumps(turn.arguments, ensure_ascii=False)})" for turn in record.turns
             if turn.name is not None and not turn.is_finish]
    return "; ".join(calls) or "none"


def _attempt_text(record: QueryRecord) -> str:
    answer = record.final_answer if record.final_answer is not None else ("gave up" if record.gave_up else "no answer")
    return f"Tool calls: {_calls_text(record)}\nFinal answer: {answer}"
