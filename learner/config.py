"""Learner settings: one validated object, from which the DeepSpeed config and the actor placement follow.

Unknown keys are errors (a typo in a YAML preset must not silently fall back to a default), and
pydantic's message names the offending key. Fine-tuning is full, or LoRA through peft (explorers
still get full weights: the adapters are folded in when weights are published or exported).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LoraSettings(BaseModel):
    """peft's LoRA: low-rank adapters on the named linear layers; the base weights stay frozen."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(16, ge=1)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], min_length=1)


class LearnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # parallelism and placement
    ranks: int = Field(1, ge=1)  # learner ranks (data-parallel DeepSpeed processes)
    cpus_per_rank: float = Field(1, gt=0)
    gpus_per_rank: float = Field(0, ge=0)  # 0: CPU ranks with gloo; >0: GPU ranks with NCCL
    resources: dict[str, float] = Field(default_factory=dict)  # Ray custom resources per rank, e.g. {"learner": 1}
    threads: int = Field(1, ge=1)  # torch threads per rank: 2 ranks x 2 threads on 2 cores ran 5-10x slower
    zero_stage: Literal[0, 1, 2, 3] = 0

    # optimisation
    bf16: bool | Literal["auto"] = "auto"  # bf16 autocast; "auto": on where the hardware has bf16
    micro_batch: int = Field(1, ge=1)  # rows per rank per forward/backward: how the data side sizes batches
    grad_accum: int = Field(1, ge=1)  # micro batches per optimizer step
    grad_clip: float = Field(1.0, ge=0)  # max global grad norm; 0 turns clipping off
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    total_steps: int = Field(1000, ge=1)  # horizon of the decay after warmup
    min_lr_ratio: float = Field(0.1, ge=0, le=1)  # where cosine/linear decay ends, as a fraction of lr
    finetune: Literal["full", "lora"] = "full"
    lora: LoraSettings = Field(default_factory=lambda: LoraSettings())  # used when finetune is "lora"
    seed: int = 0

    # the continual loop
    checkpoint_every: int = Field(0, ge=0)  # optimizer steps between checkpoints; 0: only when asked
    publish_every: int = Field(1, ge=1)  # optimizer steps between weight publications
    publish_dtype: Literal["fp32", "bf16"] = "fp32"  # weights' precision in transit; explorers keep their own dtype
    staleness_cap: int | None = Field(None, ge=0)  # S: samples older than version v - S are stale
    staleness_policy: Literal["drop", "downweight"] = "drop"
    replay_fraction: float = Field(0.1, ge=0, le=1)  # share of each batch drawn from earlier rounds

    @model_validator(mode="after")
    def _warmup_within_horizon(self) -> LearnerConfig:
        if self.warmup_steps > self.total_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) exceeds total_steps ({self.total_steps})")
        return self

    @property
    def batch_size(self) -> int:
        """Episodes drawn per optimizer step: at least one row for every rank in every micro batch."""
        return self.micro_batch * self.ranks * self.grad_accum

    @property
    def uses_gpu(self) -> bool:
        return self.gpus_per_rank > 0
