"""STE's long-term memory: per tool, the queries explored before and whether they were solved.

It lives in Redis so every explorer actor shares it and it outlives them. Imagination is shown only the
`k` earlier queries most similar to what it is about to write (by embedding), so the prompt stays bounded
however large the memory grows, and the model is pushed toward queries it has not tried.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgspec
import numpy as np
import redis

from actors.embeddings import Embedder


@dataclass
class Memory:
    query: str
    solved: bool
    embedding: bytes  # float32, unit length


_decoder = msgspec.msgpack.Decoder(Memory)


class LongTermMemory:
    def __init__(self, client: redis.Redis, embedder: Embedder, namespace: str = "imag"):
        self.redis = client
        self.embed = embedder
        self.namespace = namespace

    def _key(self, tool: str) -> str:
        return f"{self.namespace}:ltm:{{{tool}}}"

    def add(self, tool: str, entries: list[tuple[str, bool]]) -> None:
        """Remember queries; the same query again overwrites its verdict (the latest one counts)."""
        if not entries:
            return
        vectors = self.embed([query for query, _ in entries])
        mapping = {
            hashlib.blake2b(query.encode(), digest_size=12).hexdigest():
                msgspec.msgpack.encode(Memory(query, solved, vector.tobytes()))
            for (query, solved), vector in zip(entries, vectors)
        }
        self.redis.hset(self._key(tool), mapping=mapping)

    def size(self, tool: str) -> int:
        return int(self.redis.hlen(self._key(tool)))

    def queries(self, tool: str) -> list[str]:
        """Every query remembered for the tool."""
        return [_decoder.decode(item).query for item in self.redis.hvals(self._key(tool))]

    def recall(self, tool: str, context: str, k: int) -> list[tuple[str, bool]]:
        """The k remembered queries most similar to `context`, most similar first."""
        raw = self.redis.hvals(self._key(tool))
        if not raw or k <= 0:
            return []
        memories = [_decoder.decode(item) for item in raw]
        matrix = np.stack([np.frombuffer(m.embedding, dtype=np.float32) for m in memories])
        scores = matrix @ self.embed([context])[0]
        best = np.argsort(-scores)[:k]
        return [(memories[i].query, memories[i].solved) for i in best]

    def clear(self, tool: str) -> None:
        self.redis.delete(self._key(tool))
