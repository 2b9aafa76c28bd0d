"""BM25 over tool documents (bm25s), ToolLLM's lexical baseline for its API retriever."""
from __future__ import annotations

from typing import Iterable, Sequence

import bm25s
import numpy as np

from retrieval.base import Retriever
from toolenv.spec import Tool


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


class BM25Retriever(Retriever):
    label = "BM25 (bm25s)"

    def __init__(self, tools: Iterable[Tool]):
        super().__init__(tools)
        self.index = bm25s.BM25()
        self.index.index(_tokens(self.documents), show_progress=False)

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        # a query of stopwords only has no tokens: it matches nothing (bm25s would fail on an empty list)
        return np.stack([self.index.get_scores(tokens) if tokens else np.zeros(len(self.names), dtype=np.float32)
                         for tokens in _tokens(queries)])
