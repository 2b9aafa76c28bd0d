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

    def read(self, tool: str) -> list[Memory]:
        """Everything remembered for the tool (one HVALS): a trial step reads it once for all its uses."""
        return [_decoder.decode(item) for item in self.redis.hvals(self._key(tool))]

    def recall(self, tool: str, context: str, k: int) -> list[tuple[str, bool]]:
        """The k remembered queries most similar to `context`, most similar first."""
        return most_similar(self.read(tool), self.embed([context])[0], k)

    def clear(self, tool: str) -> None:
        self.redis.delete(self._key(tool))


def most_similar(memories: list[Memory], vector: np.ndarray, k: int) -> list[tuple[str, bool]]:
    """The k memories whose query embedding is nearest `vector` (unit length), as (query, solved)."""
    if not memories or k <= 0:
        return []
    matrix = np.stack([np.frombuffer(m.embedding, dtype=np.float32) for m in memories])
    best = np.argsort(-(matrix @ vector))[:k]
    return [(memories[i].query, memories[i].solved) for i in best]
