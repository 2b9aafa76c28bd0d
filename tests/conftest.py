"""Fixtures shared by test modules: a real redis-server (the project's own embedded-server code), a tiny model
folder, and torch's thread count restored after a module whose engines set it."""
from __future__ import annotations

import launcher  # noqa: F401  (first: keeps a local Ray on loopback, see launcher/__init__.py)
import pytest
import torch

from replay.buffer import ReplayBuffer
from replay.server import EmbeddedRedis
from tests.factories import save_tiny_model


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    with EmbeddedRedis(tmp_path_factory.mktemp("redis-run")) as server:
        yield server


@pytest.fixture
def buffer(redis_server) -> ReplayBuffer:
    client = ReplayBuffer(redis_server.url, seed=1234)
    client.redis.flushdb()
    return client


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def restore_torch_threads():
    """An engine sets torch's thread count for its whole process; later test modules get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
