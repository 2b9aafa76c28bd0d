"""A run's embedded Redis writes its append-only file before it acknowledges a push: a killed server loses no
acknowledged episode (the OS still holds what was written; fsync every second bounds a machine crash to 1 s),
and the retried pushes of a resumed run insert nothing twice (ids are content hashes)."""
from __future__ import annotations

import os
import signal

from replay.buffer import ReplayBuffer
from replay.server import EmbeddedRedis, redis_url
from replay.tables import TableConfig
from tests.factories import make_episode


def test_a_killed_server_loses_no_acknowledged_episode_and_retries_insert_nothing_twice(tmp_path):
    episodes = [make_episode(i) for i in range(200)]
    with redis_url(None, tmp_path) as url:
        buffer = ReplayBuffer(url)
        buffer.create_table(TableConfig(name="explore"))
        acknowledged = []
        for start in range(0, 150, 10):  # explorers push one trial at a time
            buffer.insert("explore", episodes[start : start + 10])
            acknowledged += [e.id for e in episodes[start : start + 10]]
        pid = int(buffer.redis.info("server")["process_id"])
        os.kill(pid, signal.SIGKILL)  # no shutdown, no final flush
    with EmbeddedRedis(tmp_path) as server:  # what `--resume` starts on the same run folder
        buffer = ReplayBuffer(server.url)
        assert set(buffer.ids("explore")) == set(acknowledged)
        retried = buffer.insert("explore", episodes[140:200])  # the trial in flight pushed again, then more
        assert (retried.inserted, retried.duplicates) == (50, 10)
        assert buffer.stats("explore").size == 200
