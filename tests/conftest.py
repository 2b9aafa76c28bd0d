"""Fixtures: a real redis-server, started by the project's own embedded-server code."""
from __future__ import annotations

import launcher  # noqa: F401  (first: keeps a local Ray on loopback, see launcher/__init__.py)
import pytest

from replay.buffer import ReplayBuffer
from replay.server import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    with EmbeddedRedis(tmp_path_factory.mktemp("redis-run")) as server:
        yield server


@pytest.fixture
def buffer(redis_server) -> ReplayBuffer:
    client = ReplayBuffer(redis_server.url, seed=1234)
    client.redis.flushdb()
    return client
