"""The replay buffer on a real redis-server: tables, removers, samplers, rate limiters, indexes."""
from __future__ import annotations

import collections
import gc
import multiprocessing
import threading
import time
from dataclasses import replace

import pytest
from factories import make_episode

from replay.buffer import BufferError, Filters, RateLimitTimeout, ReplayBuffer, RoundMix
from replay.episode import index_tag, tag_values
from replay.tables import RateLimiter, TableConfig

# chi-square critical values at p = 0.001, by degrees of freedom
CHI2_999 = {3: 16.27, 4: 18.47, 9: 27.88}


def chi_square(observed: dict, expected: dict) -> float:
    return sum((observed.get(k, 0) - e) ** 2 / e for k, e in expected.items())


def test_retried_inserts_never_duplicate(buffer):
    buffer.create_table(TableConfig(name="t"))
    batch = [make_episode(i) for i in range(50)]
    assert buffer.insert("t", batch).inserted == 50
    retry = buffer.insert("t", batch[10:] + [make_episode(99)])
    assert (retry.inserted, retry.duplicates) == (1, 40)
    assert buffer.insert("t", [make_episode(5), make_episode(5)]).duplicates == 2
    stats = buffer.stats("t")
    assert stats.size == 51
    assert stats.counters["inserts"] == 51 and stats.counters["duplicates"] == 42


def test_fifo_eviction_at_max_size_keeps_the_newest_and_cleans_indexes(buffer):
    buffer.create_table(TableConfig(name="t", max_size=10))
    episodes = [make_episode(i, round=i // 10) for i in range(25)]
    result = buffer.insert("t", episodes)
    assert (result.inserted, result.evicted) == (25, 15)
    assert buffer.ids("t") == [e.id for e in episodes[15:]]
    stats = buffer.stats("t")
    assert stats.by_index["round=2"] == 5 and stats.by_index["round=1"] == 5
    assert "round=0" not in stats.by_index  # emptied indexes disappear
    assert buffer.ids("t", Filters(round=0)) == []


def test_index_entries_are_counted_and_read_by_key(buffer):
    buffer.create_table(TableConfig(name="t"))
    buffer.insert("t", [make_episode(i, round=1 + i % 2) for i in range(5)])
    stats = buffer.stats("t")
    assert (stats.count("round", 1), stats.count("round", 2), stats.count("round", 7)) == (3, 2, 0)
    assert tag_values(stats.by_index, "round") == ["1", "2"] and index_tag("tool", "a\nb") == "tool=a b"


def test_lowest_priority_remover_evicts_the_least_important(buffer):
    buffer.create_table(TableConfig(name="t", max_size=3, remover="lowest_priority"))
    episodes = [make_episode(i) for i in range(5)]
    buffer.insert("t", episodes, priorities=[5, 1, 4, 0.5, 3])
    assert set(buffer.ids("t")) == {episodes[0].id, episodes[2].id, episodes[4].id}


def test_uniform_sampler_is_uniform(buffer):
    buffer.create_table(TableConfig(name="t"))
    episodes = [make_episode(i) for i in range(10)]
    buffer.insert("t", episodes)
    counts = collections.Counter(s.id for s in buffer.sample("t", 5000))
    assert chi_square(counts, {e.id: 500 for e in episodes}) < CHI2_999[9]


def test_prioritized_sampler_follows_priority_to_the_exponent(buffer):
    buffer.create_table(TableConfig(name="t", sampler="prioritized", priority_exponent=0.5))
    episodes = [make_episode(i) for i in range(4)]
    priorities = [1.0, 4.0, 9.0, 16.0]  # ** 0.5 → weights 1:2:3:4
    buffer.insert("t", episodes, priorities=priorities)
    counts = collections.Counter(s.id for s in buffer.sample("t", 6000))
    expected = {e.id: 6000 * w / 10 for e, w in zip(episodes, [1, 2, 3, 4])}
    assert chi_square(counts, expected) < CHI2_999[3]
    # updated priorities change the distribution; ids already gone are ignored
    assert buffer.update_priorities("t", {episodes[0].id: 16.0, episodes[3].id: 1.0, "gone": 3.0}) == 2
    counts = collections.Counter(s.id for s in buffer.sample("t", 6000))
    expected = {e.id: 6000 * w / 10 for e, w in zip(episodes, [4, 2, 3, 1])}
    assert chi_square(counts, expected) < CHI2_999[3]


def test_round_mix_draws_the_replay_fraction_from_earlier_rounds(buffer):
    buffer.create_table(TableConfig(name="t"))
    buffer.insert("t", [make_episode(i, round=1 + i % 3) for i in range(300)])  # rounds 1, 2, 3
    drawn = []
    for _ in range(40):
        drawn += buffer.sample("t", 50, round_mix=RoundMix(current_round=3, replay_fraction=0.2))
    rounds = collections.Counter(s.episode.round for s in drawn)
    assert abs(rounds[1] + rounds[2] - 0.2 * 2000) <= 0.02 * 2000
    assert abs(rounds[1] - rounds[2]) < 0.05 * 2000  # earlier rounds weighted by their size (equal here)
    # nothing earlier to replay: everything comes from the current round
    only_first = buffer.sample("t", 100, round_mix=RoundMix(current_round=1, replay_fraction=0.5))
    assert {s.episode.round for s in only_first} == {1}


def test_filtered_sampling_stays_inside_the_index(buffer):
    buffer.create_table(TableConfig(name="t"))
    buffer.insert("t", [make_episode(i, round=i % 2, tool=f"tool_{i % 3}") for i in range(60)])
    drawn = buffer.sample("t", 200, filters=Filters(tool="tool_1", round=0))
    assert drawn and all(s.episode.tools == ["tool_1"] and s.episode.round == 0 for s in drawn)


def test_max_times_sampled_removes_an_item_after_its_last_sample(buffer):
    buffer.create_table(TableConfig(name="t", max_times_sampled=2))
    buffer.insert("t", [make_episode(i) for i in range(5)])
    drawn = buffer.sample("t", 10)
    assert len(drawn) == 10 and collections.Counter(s.id for s in drawn).most_common(1)[0][1] <= 2
    assert buffer.stats("t").size == 0 and buffer.stats("t").counters["expired"] == 5
    with pytest.raises(RateLimitTimeout):  # empty again: the learner waits for explorers
        buffer.sample("t", 3, timeout=0.1)
    assert buffer.sample("t", 3, peek=True) == []


def test_peek_counts_nothing(buffer):
    buffer.create_table(TableConfig(name="t", max_times_sampled=1))
    buffer.insert("t", [make_episode(1)])
    for _ in range(3):
        assert len(buffer.sample("t", 1, peek=True)) == 1
    assert buffer.stats("t").counters["samples"] == 0


def test_min_size_limiter_blocks_sampling_then_times_out(buffer):
    buffer.create_table(TableConfig(name="t", rate_limiter=RateLimiter(min_size_to_sample=5)))
    buffer.insert("t", [make_episode(i) for i in range(4)])
    started = time.monotonic()
    with pytest.raises(RateLimitTimeout, match="holds 4 of the 5 items"):
        buffer.sample("t", 1, timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2.0
    buffer.insert("t", [make_episode(4)])
    assert len(buffer.sample("t", 1, timeout=0.3)) == 1


def test_sample_to_insert_ratio_gives_backpressure_both_ways(buffer, redis_server):
    limiter = RateLimiter(kind="sample_to_insert_ratio", min_size_to_sample=2, samples_per_insert=2, error_buffer=4)
    buffer.create_table(TableConfig(name="t", rate_limiter=limiter))
    # min_diff = 2*2-4 = 0, max_diff = 8: inserts get ahead by at most 4 items beyond min_size
    with pytest.raises(RateLimitTimeout, match="held back by the rate limiter"):
        buffer.insert("t", [make_episode(i) for i in range(10)], timeout=0.3)
    assert buffer.stats("t").size == 4
    assert len(buffer.sample("t", 8, timeout=1)) == 8  # 4 inserts × 2 samples each
    with pytest.raises(RateLimitTimeout):
        buffer.sample("t", 1, timeout=0.2)  # samples may not run ahead of inserts
    # a blocked insert resumes as soon as a learner samples
    learner = ReplayBuffer(redis_server.url, seed=5)

    def sample_later():
        time.sleep(0.3)
        learner.sample("t", 8, timeout=5)

    thread = threading.Thread(target=sample_later)
    thread.start()
    result = buffer.insert("t", [make_episode(i) for i in range(4, 12)], timeout=5)
    thread.join()
    assert result.inserted == 8


def test_rate_limiter_rejects_a_deadlocking_config():
    with pytest.raises(ValueError, match="error_buffer"):
        RateLimiter(kind="sample_to_insert_ratio", samples_per_insert=4, error_buffer=2)
    with pytest.raises(ValueError, match="never start"):
        TableConfig(name="t", max_size=5, rate_limiter=RateLimiter(min_size_to_sample=10))


def test_indexes_by_tool_round_outcome_and_version(buffer):
    buffer.create_table(TableConfig(name="t"))
    buffer.insert("t", [make_episode(i, round=i % 2, solved=i % 3 == 0, policy_version=i % 4) for i in range(24)])
    assert len(buffer.ids("t", Filters(outcome="solved"))) == 8
    assert len(buffer.ids("t", Filters(policy_version=3, round=1))) == 6
    assert buffer.stats("t").by_index["outcome=unsolved"] == 16
    assert buffer.stats("t").by_tool_round == {("get_weather", "0"): 12, ("get_weather", "1"): 12}


def test_table_config_is_shared_and_guarded(buffer, redis_server):
    buffer.create_table(TableConfig(name="t", max_size=7))
    other = ReplayBuffer(redis_server.url)
    assert other.table_config("t").max_size == 7
    other.create_table(TableConfig(name="t", max_size=7))  # same config: attaches
    with pytest.raises(BufferError, match="exists with a different config"):
        other.create_table(TableConfig(name="t", max_size=8))
    with pytest.raises(BufferError, match="no table 'nope'"):
        other.sample("nope", 1)


def test_corrupt_records_are_quarantined_and_the_buffer_keeps_serving(buffer):
    buffer.create_table(TableConfig(name="t"))
    good = [make_episode(i) for i in range(20)]
    buffer.insert("t", good)
    data_key = buffer._prefix("t") + "data"
    for episode in good[:10]:  # clobber half of the stored payloads behind the buffer's back
        buffer.redis.hset(data_key, episode.id, b"\x93garbage")
    drawn = buffer.sample("t", 200)
    assert len(drawn) == 200 and {s.id for s in drawn} <= {e.id for e in good[10:]}
    stats = buffer.stats("t")
    assert stats.size == 10 and stats.quarantined == 10
    assert buffer.redis.hget(buffer._prefix("t") + "quarantine", good[0].id) == b"\x93garbage"  # kept, not lost


def _writer(url: str, worker: int, results) -> None:
    client = ReplayBuffer(url)
    episodes = [make_episode(i) for i in range(worker * 50, worker * 50 + 150)]  # overlaps the next writers
    total = [0, 0]
    for start in range(0, len(episodes), 16):
        result = client.insert("t", episodes[start : start + 16])
        total[0] += result.inserted
        total[1] += result.duplicates
    results.put(total)


def test_concurrent_writer_processes_lose_and_duplicate_nothing(buffer, redis_server):
    buffer.create_table(TableConfig(name="t"))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    writers = [context.Process(target=_writer, args=(redis_server.url, w, results)) for w in range(4)]
    for writer in writers:
        writer.start()
    totals = [results.get(timeout=60) for _ in writers]
    for writer in writers:
        writer.join(timeout=30)
        assert writer.exitcode == 0
    unique = {make_episode(i).id for i in range(0, 3 * 50 + 150)}
    assert sum(t[0] for t in totals) == len(unique) == buffer.stats("t").size
    assert sum(t[0] + t[1] for t in totals) == 4 * 150
    assert set(buffer.ids("t")) == unique


# ---- payloads travel beside the Lua scripts, never through them: nothing may be left behind or lost ----

def _payloads(buffer, table: str) -> int:
    return buffer.redis.hlen(buffer._prefix(table) + "data")


def test_a_duplicate_id_keeps_its_first_payload(buffer):
    buffer.create_table(TableConfig(name="t"))
    first, second, third = (replace(make_episode(i), id="same-id") for i in (1, 2, 3))
    assert buffer.insert("t", [first, second]).inserted == 1  # within one batch
    assert buffer.insert("t", [third]).duplicates == 1  # across batches
    assert buffer.get("t", "same-id") == first
    assert _payloads(buffer, "t") == 1 and not buffer.redis.exists(buffer._prefix("t") + "aside")


def test_items_evicted_or_held_back_leave_no_payload_behind(buffer):
    buffer.create_table(TableConfig(name="fifo", max_size=10))
    buffer.insert("fifo", [make_episode(i) for i in range(25)])  # the batch itself overflows the table
    assert _payloads(buffer, "fifo") == buffer.stats("fifo").size == 10
    buffer.create_table(TableConfig(name="prio", max_size=3, remover="lowest_priority"))
    buffer.insert("prio", [make_episode(i) for i in range(3)], priorities=[5, 5, 5])
    result = buffer.insert("prio", [make_episode(i) for i in range(3, 6)], priorities=[1, 9, 1])  # two evicted at once
    assert result.evicted == 3 and _payloads(buffer, "prio") == 3
    limiter = RateLimiter(kind="sample_to_insert_ratio", min_size_to_sample=2, samples_per_insert=2, error_buffer=4)
    buffer.create_table(TableConfig(name="held", rate_limiter=limiter))
    with pytest.raises(RateLimitTimeout):
        buffer.insert("held", [make_episode(i) for i in range(10)], timeout=0.2)
    assert _payloads(buffer, "held") == buffer.stats("held").size == 4


def test_a_held_back_insert_polls_without_resending_payloads(buffer):
    limiter = RateLimiter(kind="sample_to_insert_ratio", min_size_to_sample=2, samples_per_insert=2, error_buffer=4)
    buffer.create_table(TableConfig(name="t", rate_limiter=limiter))
    buffer.redis.config_resetstat()
    with pytest.raises(RateLimitTimeout):
        buffer.insert("t", [make_episode(i) for i in range(10)], timeout=0.3)
    commands = buffer.redis.info("commandstats")
    assert commands["cmdstat_exec"]["calls"] == 1  # one transaction with payloads, then only probes
    assert commands["cmdstat_evalsha"]["calls"] >= 3


def test_a_held_back_insert_then_sends_only_what_the_limiter_has_room_for(buffer, redis_server, monkeypatch):
    limiter = RateLimiter(kind="sample_to_insert_ratio", min_size_to_sample=2, samples_per_insert=2, error_buffer=4)
    buffer.create_table(TableConfig(name="t", rate_limiter=limiter))
    sent, insert_once = [], buffer._insert_once

    def counted(table, mode, ids, meta, payloads):
        sent.append(len(ids))
        return insert_once(table, mode, ids, meta, payloads)

    monkeypatch.setattr(buffer, "_insert_once", counted)
    learner = ReplayBuffer(redis_server.url, seed=5)
    thread = threading.Thread(target=lambda: (time.sleep(0.3), learner.sample("t", 8, timeout=5)))
    thread.start()
    assert buffer.insert("t", [make_episode(i) for i in range(8)], timeout=5).inserted == 8
    thread.join()
    assert sent == [8, 4]  # 4 go in at once; 8 samples make room for 4 more, and only those are sent


def test_an_item_removed_between_draw_and_read_is_redrawn_and_not_counted(buffer, monkeypatch):
    buffer.create_table(TableConfig(name="t"))
    episodes = [make_episode(i) for i in range(3)]
    buffer.insert("t", episodes)
    read = buffer.redis.hmget
    removed = []

    def remove_then_read(key, keys):
        if not removed:  # another client removes a drawn item before this one reads the payloads
            removed.append(keys[0].decode())
            buffer.remove("t", removed)
        return read(key, keys)

    monkeypatch.setattr(buffer.redis, "hmget", remove_then_read)
    drawn = buffer.sample("t", 50)
    assert len(drawn) == 50 and removed[0] not in {s.id for s in drawn}
    assert buffer.stats("t").counters["samples"] == 50  # the draw that was never served was handed back


def test_sampling_leaves_the_garbage_collector_as_it_found_it(buffer):
    buffer.create_table(TableConfig(name="t"))
    buffer.insert("t", [make_episode(i) for i in range(5)])
    assert gc.isenabled()
    buffer.sample("t", 20)
    assert gc.isenabled()
    gc.disable()
    try:
        buffer.sample("t", 20)
        assert not gc.isenabled()
    finally:
        gc.enable()
