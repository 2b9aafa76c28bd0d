"""The learner's one data path under the train table's rate limiter, with explorers inserting concurrently."""
from __future__ import annotations

import threading

import pytest

from actors.model import smollm2_tokenizer
from learner.config import LearnerConfig
from learner.data import draw_batch, sample_allowance, train_loop
from replay.buffer import RateLimitTimeout, ReplayBuffer, RoundMix
from replay.tables import RateLimiter, TableConfig
from tests.factories import make_episode

LIMITER = RateLimiter(kind="sample_to_insert_ratio", samples_per_insert=2.0, min_size_to_sample=4, error_buffer=8.0)


class RecordingLearner:
    """A learner stand-in: keeps every batch it was given, returns a constant loss."""

    def __init__(self):
        self.batches = []

    def train_step(self, inputs: dict) -> float:
        self.batches.append(inputs)
        return 1.0


def _explorer(url: str, start: int, count: int, inserted: list[int]) -> None:
    client = ReplayBuffer(url)
    for i in range(start, start + count):
        client.insert("train", [make_episode(i)], timeout=60)  # blocks while samples lag behind: backpressure
        inserted.append(i)


def test_the_limiter_holds_samples_per_insert_within_its_error_buffer_and_releases_both_sides(buffer, redis_server):
    buffer.create_table(TableConfig(name="train", rate_limiter=LIMITER))
    learn = LearnerConfig(micro_batch=4)
    tokenizer = smollm2_tokenizer()
    inserted: list[int] = []
    explorers = [threading.Thread(target=_explorer, args=(redis_server.url, 100 * k, 30, inserted)) for k in range(3)]
    for thread in explorers:
        thread.start()
    spi, min_diff, max_diff = LIMITER.bounds()
    diffs = []

    def after_step(record) -> None:
        counters = buffer.stats("train").counters
        diffs.append(counters["inserts"] * spi - counters["samples"])

    learner = RecordingLearner()
    draw = lambda timeout: draw_batch(buffer, "train", tokenizer, learn, 1024, RoundMix(1, 0.0), 0, timeout)
    result = train_loop(learner, draw, steps=10_000, after_step=after_step,
                        wait_while=lambda: any(thread.is_alive() for thread in explorers), poll_s=0.2)
    for thread in explorers:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in explorers) and len(inserted) == 90  # explorers were released
    assert result.stopped == "limiter"  # the learner stopped once nothing more could come, not on a step budget
    assert diffs and all(min_diff <= diff <= max_diff + spi for diff in diffs)  # within the error buffer, always
    counters = buffer.stats("train").counters
    # the learner took what the limiter allows: 2 samples per insert, less at most one batch of credit left over
    assert 90 * spi - min_diff - learn.batch_size < counters["samples"] <= 90 * spi - min_diff
    assert counters["samples"] == learn.batch_size * len(learner.batches)  # every drawn sample was trained on


def test_a_sample_is_a_whole_batch_or_waits(buffer):
    """A sample the limiter would cut short is not drawn at all: its draws would count but never be trained on."""
    buffer.create_table(TableConfig(name="train", rate_limiter=LIMITER))
    buffer.insert("train", [make_episode(i) for i in range(4)])  # 8 samples allowed, min_diff 0
    learn = LearnerConfig(micro_batch=6)
    draw = lambda: draw_batch(buffer, "train", smollm2_tokenizer(), learn, 1024, RoundMix(1, 0.0), 0, timeout=0.2)
    assert sample_allowance(buffer.stats("train")) == 8
    draw()
    assert buffer.stats("train").counters["samples"] == 6 and sample_allowance(buffer.stats("train")) == 2
    with pytest.raises(RateLimitTimeout):
        draw()
    assert buffer.stats("train").counters["samples"] == 6  # nothing drawn and lost


def test_a_round_is_not_trained_on_replay_alone_while_its_episodes_arrive(buffer):
    buffer.create_table(TableConfig(name="train", rate_limiter=LIMITER))
    buffer.insert("train", [make_episode(i, round=1) for i in range(5)])
    learn = LearnerConfig(micro_batch=2)
    draw = lambda: draw_batch(buffer, "train", smollm2_tokenizer(), learn, 1024, RoundMix(2, 0.25), 0, timeout=0.2,
                              min_current=2)
    with pytest.raises(RateLimitTimeout):
        draw()  # credit to spare, but round 2 holds nothing yet
    buffer.insert("train", [make_episode(i, round=2) for i in range(10, 12)], timeout=1)
    assert 2 in {e.round for e in draw().episodes}


def test_credit_left_from_a_round_never_blocks_both_sides(buffer):
    """Round 1 left the learner behind by the whole error buffer: round 2's explorers are held back at once, so the
    learner must sample (replay) to let them in, rather than wait for round 2's episodes that cannot come."""
    buffer.create_table(TableConfig(name="train", rate_limiter=LIMITER))
    buffer.insert("train", [make_episode(i, round=1) for i in range(8)])  # diff 16 = max_diff: inserts held back
    with pytest.raises(RateLimitTimeout):
        buffer.insert("train", [make_episode(20, round=2)], timeout=0.2)
    learn = LearnerConfig(micro_batch=2)
    drawn = draw_batch(buffer, "train", smollm2_tokenizer(), learn, 1024, RoundMix(2, 0.25), 0, timeout=0.2,
                       min_current=2)
    assert {e.round for e in drawn.episodes} == {1}
    buffer.insert("train", [make_episode(20, round=2)], timeout=1)  # released


def test_an_episode_older_than_the_staleness_cap_is_never_trained_at_full_weight(buffer):
    """Versions advance as the learner publishes; an episode whose lag passes the cap is down-weighted from then on."""
    buffer.create_table(TableConfig(name="train"))
    buffer.insert("train", [make_episode(i, policy_version=i % 3) for i in range(6)])
    learn = LearnerConfig(micro_batch=6, staleness_cap=1, staleness_policy="downweight")
    tokenizer, version = smollm2_tokenizer(), [0]
    seen = []

    def draw(timeout):
        drawn = draw_batch(buffer, "train", tokenizer, learn, 1024, RoundMix(1, 0.0), version[0], timeout)
        seen.append((version[0], drawn))
        return drawn

    def after_step(record) -> None:
        version[0] += 1  # published after every step

    train_loop(RecordingLearner(), draw, steps=5, after_step=after_step)
    stale_checked = 0
    for at, drawn in seen:
        weights = drawn.batch.loss_weights if drawn.batch.loss_weights is not None else None
        lags = {e.id: at - e.policy_version for e in drawn.episodes}
        if any(lag > 1 for lag in lags.values()):
            assert weights is not None and float(weights[drawn.batch.labels != -100].min()) < 1.0
            stale_checked += 1
        else:
            assert weights is None or float(weights[drawn.batch.labels != -100].min()) == 1.0
    assert stale_checked >= 3  # versions 2, 3, 4 each see a stale episode
