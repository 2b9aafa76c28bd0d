"""The test oracle for `learner.engine.Engine`: the same training in plain PyTorch, one process, no DeepSpeed.

It shares the engine's model loading, optimizer, loss and micro-batch split, so a mismatch in the losses points at
what DeepSpeed does around them (gradient scaling, accumulation, clipping, the all-reduce)."""
from __future__ import annotations

from pathlib import Path

import torch

from learner.config import LearnerConfig
from learner.engine import (LossFn, LossModule, ModelInputs, batch_loss, bf16_enabled, build_optimizer, device_for,
                            labelled_tokens, load_causal_lm, seed_everything, split_rows)


class ReferenceLearner:
    """The same training as `Engine` in plain PyTorch, one process: the baseline DeepSpeed must match."""

    def __init__(self, model_dir: str | Path, cfg: LearnerConfig, loss_fn: LossFn = batch_loss):
        torch.set_num_threads(cfg.threads)
        self.cfg = cfg
        self.device = device_for(cfg)
        self.bf16 = bf16_enabled(cfg, self.device)
        seed_everything(cfg.seed)
        self.model = load_causal_lm(model_dir, cfg).to(self.device)
        self.loss_module = LossModule(self.model, loss_fn)
        self.optimizer, self.scheduler = build_optimizer(self.model, cfg)

    def train_step(self, batch: ModelInputs) -> float:
        micro_batches = split_rows({key: value.to(self.device) for key, value in batch.items()}, self.cfg.grad_accum)
        tokens = max(sum(labelled_tokens(mb) for mb in micro_batches), 1)
        self.model.train()
        loss_sum = 0.0
        for micro_batch in micro_batches:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                loss = self.loss_module(micro_batch)
            (loss / tokens).backward()
            loss_sum += loss.item()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum / tokens
