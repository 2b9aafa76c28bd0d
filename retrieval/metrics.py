"""NDCG@k with binary relevance, the measure ToolLLM compares its API retriever by."""
from __future__ import annotations

import math
from typing import Collection, Sequence


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """DCG of the first k names (gain 1 for a relevant one at rank i: 1/log2(i+1)) over the best possible DCG."""
    if not relevant:
        raise ValueError("a query needs at least one relevant tool")
    dcg = sum(1 / math.log2(rank + 1) for rank, name in enumerate(ranked[:k], start=1) if name in relevant)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal


def mean_ndcg(rankings: Sequence[Sequence[str]], relevants: Sequence[Collection[str]], ks: Sequence[int]) -> dict[int, float]:
    """Mean NDCG@k over queries, for each k."""
    if len(rankings) != len(relevants) or not rankings:
        raise ValueError(f"{len(rankings)} rankings for {len(relevants)} queries")
    return {k: sum(ndcg_at_k(r, rel, k) for r, rel in zip(rankings, relevants)) / len(rankings) for k in ks}
