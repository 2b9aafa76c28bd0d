"""Tool retrieval, after ToolLLM's API retriever: rank a tool set for a query when there are more tools than fit in a prompt.

Three retrievers share one interface (`Retriever`): BM25 over tool documents, all-MiniLM-L6-v2 zero-shot, and a
MiniLM bi-encoder fine-tuned on a run's kept episodes (`imaginarium retriever train`); `imaginarium retriever eval`
compares them by NDCG on held-out queries.
"""
from retrieval.base import Retriever, RetrieverError, open_retriever, tool_document

__all__ = ["Retriever", "RetrieverError", "open_retriever", "tool_document"]
