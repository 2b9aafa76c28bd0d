"""Table configuration, in Reverb's vocabulary: max_size, remover, sampler, max_times_sampled, rate limiter.

A table's config is stored in Redis beside its items, so every writer and reader of the table
(explorers, learner, the inspection CLI) enforces the same limits.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Redis Lua numbers are doubles; "unbounded" is a large finite value both sides agree on.
UNBOUNDED = 1e300


class RateLimiter(BaseModel):
    """Reverb's rate limiters.

    `min_size`: sampling waits until the table holds `min_size_to_sample` items; inserts never wait.
    `sample_to_insert_ratio`: additionally keeps samples ≈ `samples_per_insert` × inserts within
    ± `error_buffer`, so a learner neither starves nor overfits and explorers get backpressure.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["min_size", "sample_to_insert_ratio"] = "min_size"
    min_size_to_sample: int = Field(1, ge=1)
    samples_per_insert: float = Field(1.0, gt=0)
    error_buffer: float = Field(100.0, gt=0)

    @model_validator(mode="after")
    def _buffer_wide_enough(self) -> RateLimiter:
        # Reverb's rule: a narrower buffer can block both sides forever.
        if self.kind == "sample_to_insert_ratio" and self.error_buffer < max(1.0, self.samples_per_insert):
            raise ValueError(
                f"error_buffer ({self.error_buffer}) must be at least max(1, samples_per_insert="
                f"{self.samples_per_insert}), or inserts and samples can block each other forever"
            )
        return self

    def bounds(self) -> tuple[float, float, float]:
        """(samples_per_insert, min_diff, max_diff) on diff = inserts × spi − samples, as Reverb defines them."""
        if self.kind == "min_size":
            return 1.0, -UNBOUNDED, UNBOUNDED
        offset = self.samples_per_insert * self.min_size_to_sample
        return self.samples_per_insert, offset - self.error_buffer, offset + self.error_buffer


class TableConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    max_size: int = Field(100_000, ge=1)
    remover: Literal["fifo", "lowest_priority"] = "fifo"
    sampler: Literal["uniform", "prioritized"] = "uniform"
    priority_exponent: float = Field(1.0, ge=0)  # prioritized: P(i) ∝ priority_i ** exponent
    max_times_sampled: int = Field(0, ge=0)  # 0: unlimited; else an item is removed after this many samples
    rate_limiter: RateLimiter = Field(default_factory=RateLimiter)
    max_record_bytes: int = Field(4 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _sampling_possible(self) -> TableConfig:
        if self.rate_limiter.min_size_to_sample > self.max_size:
            raise ValueError(
                f"rate_limiter.min_size_to_sample ({self.rate_limiter.min_size_to_sample}) exceeds "
                f"max_size ({self.max_size}): sampling could never start"
            )
        return self
