"""Held-out queries and how a retriever scores on them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Sequence

from retrieval.base import Retriever
from retrieval.metrics import mean_ndcg
from toolenv.gold import GOLD_DIR, load_gold_dir, normalize_text

KS = (1, 3, 5)


@dataclass(frozen=True)
class Query:
    text: str
    relevant: frozenset[str]  # the tools its gold calls name


def gold_queries(tool_names: Collection[str], gold_dir: str | Path = GOLD_DIR) -> list[Query]:
    """The gold sets' queries whose calls use only the given tools (a query for a missing tool cannot be retrieved)."""
    queries = []
    for entries in load_gold_dir(gold_dir).values():
        for entry in entries:
            relevant = frozenset(call.name for call in entry.calls)
            if relevant <= set(tool_names):
                queries.append(Query(entry.query, relevant))
    return queries


def hold_out(queries: Sequence[Query], trained_on: Collection[str]) -> tuple[list[Query], int]:
    """The queries a model was not trained on, and how many were dropped: same text, case, punctuation and spacing
    aside, so a trained retriever is never scored on a query it has seen."""
    seen = {normalize_text(text) for text in trained_on}
    kept = [query for query in queries if normalize_text(query.text) not in seen]
    return kept, len(queries) - len(kept)


def evaluate(retriever: Retriever, queries: Sequence[Query], ks: Sequence[int] = KS) -> dict[int, float]:
    """Mean NDCG@k of the retriever's rankings over the queries."""
    rankings = retriever.top_k([query.text for query in queries], max(ks))
    return mean_ndcg(rankings, [query.relevant for query in queries], ks)
