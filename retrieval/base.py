"""The retriever interface, the text a tool is retrieved by, and the one function that opens a retriever by name."""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from toolenv.spec import Tool

TRAINING_FILE = "training.json"  # beside a fine-tuned model: what it was trained on, so evaluation can hold it out


class RetrieverError(ValueError):
    """A retriever that cannot be built as asked; the message is one line naming what to fix."""


def tool_document(function: Mapping[str, Any]) -> str:
    """A tool as one text: its name (also as words), description, and each parameter's name and description.

    Built from the OpenAI function definition, the form that both a registry (`ToolSpec.openai()`) and an episode
    (`Episode.tool_specs`) hold, so the documents a run trains on are the ones the retriever indexes.
    """
    function = function.get("function", function)
    name = function["name"]
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ").lower()
    lines = [f"{name} ({words})", function.get("description", "")]
    for parameter, schema in function.get("parameters", {}).get("properties", {}).items():
        description = schema.get("description", "")
        lines.append(f"{parameter}: {description}" if description else parameter)
    return "\n".join(line for line in lines if line)


class Retriever(ABC):
    """Ranks a fixed tool set for queries. Subclasses only score, so every retriever ranks and breaks ties alike
    (equal scores keep the tool set's order)."""

    label: str = ""

    def __init__(self, tools: Iterable[Tool]):
        tools = list(tools)
        if not tools:
            raise RetrieverError("no tools to retrieve from")
        self.names = [tool.name for tool in tools]
        self.documents = [tool_document(tool.spec.openai()) for tool in tools]

    @abstractmethod
    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """One row per query, one column per tool; higher means more relevant."""

    def top_k(self, queries: Sequence[str], k: int) -> list[list[str]]:
        """The k best tool names for each query, best first (batched: one embedding pass for all queries)."""
        if not queries:
            return []
        order = np.argsort(-self.scores(queries), axis=1, kind="stable")[:, :k]
        return [[self.names[index] for index in row] for row in order]

    def rank(self, query: str, k: int | None = None) -> list[str]:
        """The k best tool names for one query, best first (every tool when k is None)."""
        return self.top_k([query], len(self.names) if k is None else k)[0]


def open_retriever(tools: Iterable[Tool], method: str = "minilm") -> Retriever:
    """A retriever over `tools`: "bm25", "minilm" (all-MiniLM-L6-v2 zero-shot), or the folder of a model that
    `imaginarium retriever train` saved. A plain string, so a config or a command-line option can name it."""
    if method == "bm25":
        from retrieval.bm25 import BM25Retriever

        return BM25Retriever(tools)
    from retrieval.dense import DenseRetriever

    if method == "minilm":
        return DenseRetriever(tools)
    folder = Path(method)
    if not (folder / TRAINING_FILE).is_file():
        raise RetrieverError(f"{method}: not bm25, minilm, or a folder saved by `imaginarium retriever train` "
                             f"(no {TRAINING_FILE} in it)")
    return DenseRetriever(tools, folder)
