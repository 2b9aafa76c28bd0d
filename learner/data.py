"""The learner's one data path: sample → staleness → examples → packing → batch, and the one train-step loop.

Every schedule trains through `train_loop`: the rounds schedule (a round's steps after exploring), the
no-replay ablation (the same steps without the replay mix) and the continual schedule (steps while explorers
push, under the train table's rate limiter). Only the callbacks differ: what ends the loop and what happens
after each step (publishing, checkpoints, metrics).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from learner.config import LearnerConfig
from learner.examples import build_examples
from learner.packing import ExampleBatch, first_fit_decreasing, packed_batch, padded_batch
from learner.publish import apply_staleness
from replay.buffer import BufferError, RateLimitTimeout, ReplayBuffer, RoundMix, TableStats
from replay.episode import Episode


@dataclass
class Drawn:
    batch: ExampleBatch | None  # None: too few of the drawn episodes fit in max_tokens for every rank to get a row
    episodes: list[Episode]
    examples: int
    skipped: int
    waited_s: float = 0.0  # time the rate limiter held the sample back
    samples_per_insert: float = 0.0  # the table's, this sample included


def draw_batch(buffer: ReplayBuffer, table: str, tokenizer, learn: LearnerConfig, max_tokens: int, mix: RoundMix,
               version: int, timeout: float | None = 60, min_current: int = 0) -> Drawn:
    """One optimizer step's batch: sampled with STE's replay mix under the table's rate limiter, stale
    episodes dropped or down-weighted, packed when packing fills every rank's rows.

    Waits until the mix's current round holds `min_current` items: a round that streams its episodes is not
    trained on replay alone while they arrive. Raises RateLimitTimeout when the limiter (or `min_current`)
    holds the sample back past `timeout`, BufferError when the table cannot give a batch.
    """
    rows_needed = learn.ranks * learn.grad_accum  # every rank gets at least one row per micro batch
    size = learn.batch_size
    started, held_since = time.perf_counter(), None
    # a whole batch or nothing: a sample the limiter cut short would count draws that are never trained on
    while not _ready(stats := buffer.stats(table), size, mix.current_round, min_current):
        held_since = held_since or time.perf_counter()
        if timeout is not None and time.perf_counter() - started >= timeout:
            raise RateLimitTimeout(f"sample of {size} from '{table}' held back by the rate limiter")
        time.sleep(min(0.05, timeout or 0.05))
    waited = time.perf_counter() - held_since if held_since else 0.0  # held back, not the reads of every draw
    sampled = buffer.sample(table, size, round_mix=mix, timeout=timeout)
    samples_per_insert = (stats.counters["samples"] + len(sampled)) / max(1, stats.counters["inserts"])
    episodes, weights = apply_staleness([s.episode for s in sampled], version, learn.staleness_cap,
                                        learn.staleness_policy)
    weight_of = {episode.id: weight for episode, weight in zip(episodes, weights)}
    examples, skipped = build_examples(episodes, tokenizer, max_tokens)
    examples = [replace(example, weight=weight_of[example.episode_id]) for example in examples]
    if len(examples) < rows_needed:
        return Drawn(None, episodes, len(examples), len(skipped), waited, samples_per_insert)
    rows = first_fit_decreasing(examples, max_tokens)
    pad = tokenizer.pad_token_id or 0
    batch = packed_batch(rows, pad) if len(rows) >= rows_needed else padded_batch(examples, pad)
    return Drawn(batch, episodes, len(examples), len(skipped), waited, samples_per_insert)


def sample_allowance(stats: TableStats) -> int:
    """How many items the table's rate limiter lets a sampler draw now (Reverb's CanSample, as the Lua applies it).

    Only the learner samples a train table, so the allowance can only grow between this read and the sample.
    """
    limiter = stats.config.rate_limiter
    if stats.size < limiter.min_size_to_sample:
        return 0
    spi, min_diff, _ = limiter.bounds()
    return max(0, math.floor(stats.counters["inserts"] * spi - stats.counters["samples"] - min_diff))


def inserts_held_back(stats: TableStats) -> bool:
    """Whether the limiter now holds an explorer's next insert back (the insert script's own rule)."""
    spi, _, max_diff = stats.config.rate_limiter.bounds()
    return (stats.size + 1 > stats.config.rate_limiter.min_size_to_sample
            and (stats.counters["inserts"] + 1) * spi - stats.counters["samples"] > max_diff)


def _ready(stats: TableStats, size: int, current_round: int, min_current: int) -> bool:
    """A whole batch is allowed, and the current round holds `min_current` items — unless explorers are held back
    waiting for this very sample (credit left from earlier rounds): then waiting for them would block both sides."""
    return sample_allowance(stats) >= size and (stats.count("round", current_round) >= min_current
                                                or inserts_held_back(stats))


@dataclass
class StepRecord:
    """What one optimizer step did, for metrics.jsonl and TensorBoard."""

    step: int  # the loop's own step count, 1-based
    loss: float | None  # None: the drawn episodes did not fill every rank's rows, nothing was trained
    examples: int
    tokens: int  # trained (label) tokens
    episodes: list[Episode] = field(repr=False)
    waited_s: float  # sampling held back by the rate limiter
    seconds: float  # wall time of the whole step, waiting included
    skipped: int  # drawn episodes too long for max_tokens
    samples_per_insert: float  # the train table's, after this step's sample


@dataclass
class LoopResult:
    steps: int  # steps done, counting those done before `start`
    stopped: str  # why the loop ended: "steps", "limiter" or "empty"
    waited_s: float = 0.0
    seconds: float = 0.0


def train_loop(learner, draw: Callable[[float | None], Drawn], steps: int, start: int = 0, *,
               after_step: Callable[[StepRecord], None] = lambda record: None,
               wait_while: Callable[[], bool] = lambda: False, poll_s: float = 0.5) -> LoopResult:
    """Train until `steps` (counting from `start`) or until the buffer cannot give a batch.

    `draw(timeout)` gives the next batch. While `wait_while()` holds (explorers are still pushing), a
    sample the rate limiter holds back is retried every `poll_s`: the learner waits rather than overfit.
    Once it no longer holds, a held-back sample ends the loop ("limiter"): nothing more will be inserted.

    The batch is drawn after the previous step's `after_step` (which may publish a new version), so its
    staleness is judged against the version it trains under: drawing it during the step would judge it one
    publication early, and an episode past the cap could train at full weight.
    """
    result = LoopResult(start, "steps")
    loop_started = time.perf_counter()
    step = start
    while step < steps:
        started = time.perf_counter()
        try:
            drawn = draw(poll_s if wait_while() else 0.0)
        except RateLimitTimeout:
            result.waited_s += time.perf_counter() - started
            if wait_while():
                continue
            result.stopped = "limiter"
            break
        except BufferError:
            result.stopped = "empty"
            break
        result.waited_s += drawn.waited_s
        if drawn.batch is None:
            step += 1  # a batch that did not fit still counts, or one long episode could stall the loop
            after_step(StepRecord(step, None, drawn.examples, 0, drawn.episodes, drawn.waited_s,
                                  time.perf_counter() - started, drawn.skipped, drawn.samples_per_insert))
            continue
        loss = learner.train_step(drawn.batch.model_inputs())
        step += 1
        after_step(StepRecord(step, loss, drawn.examples, int(drawn.batch.label_count), drawn.episodes,
                              drawn.waited_s, time.perf_counter() - started, drawn.skipped, drawn.samples_per_insert))
    result.steps = step
    result.seconds = time.perf_counter() - loop_started
    return result
