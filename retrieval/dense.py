"""Cosine similarity between sentence embeddings of a query and of each tool document (a bi-encoder)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from actors.embeddings import Embedder, default_embedder
from retrieval.base import Retriever
from toolenv.spec import Tool


class DenseRetriever(Retriever):
    """all-MiniLM-L6-v2 as installed (zero-shot), or a fine-tuned copy from `model`; documents are embedded once."""

    def __init__(self, tools: Iterable[Tool], model: Path | None = None):
        super().__init__(tools)
        self.embedder = default_embedder() if model is None else Embedder(str(model))
        self.label = "MiniLM zero-shot" if model is None else f"MiniLM fine-tuned ({model})"
        self.vectors = self.embedder(self.documents)

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        return self.embedder(list(queries)) @ self.vectors.T
