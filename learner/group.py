"""The learner as a Ray actor group (OpenRLHF's pattern): G DeepSpeed ranks, one actor each, that
form their torch.distributed group themselves, driven together from the driver.

Every method of the group calls all ranks at once: training, gathering and checkpoints are
collectives, and a rank left out would hang the others.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import ray
import torch

from learner.checkpoint import export_pretrained, load_checkpoint, save_checkpoint
from learner.config import LearnerConfig
from learner.engine import Engine, LossFn, ModelInputs, StateDict, batch_loss, split_rows
from replay.server import free_port
from learner.publish import WireWeights, to_wire


class LearnerRank:
    """One rank in its own process; Ray places it by the config's CPUs and GPUs per rank."""

    def __init__(self, rank: int, cfg: dict[str, Any]):
        self.rank, self.cfg = rank, LearnerConfig(**cfg)
        torch.set_num_threads(self.cfg.threads)
        self.engine: Engine | None = None

    def rendezvous_address(self) -> tuple[str, int]:
        """Asked of rank 0 only: its node's address and a free port there, where the others meet it."""
        host = ray.util.get_node_ip_address()
        return host, free_port(host)

    def setup(self, model: str, prepare: Callable[[str], Path] | None, master_addr: str, master_port: int,
              loss_fn: LossFn) -> None:
        """Join the group (blocks until all ranks have joined) and build the engine on the model folder,
        which `prepare` makes available on this rank's node (no shared disk needed)."""
        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(self.rank),
                          WORLD_SIZE=str(self.cfg.ranks), LOCAL_RANK="0")  # Ray shows a rank only its own GPU
        self.engine = Engine(prepare(model) if prepare else model, self.cfg, loss_fn)

    def train_step(self, batch: ModelInputs) -> float:
        return self.engine.train_step(batch)

    def precision(self) -> str:
        """What trains: "bf16" (autocast) or "fp32"; `bf16: auto` decides by this rank's hardware."""
        return "bf16" if self.engine.bf16 else "fp32"

    def full_state_dict(self) -> StateDict | None:
        return self.engine.full_state_dict()

    def published_weights(self) -> WireWeights | None:
        """Rank 0's weights as `learner.publish` sends them, None on the other ranks.

        Returned rather than put here, so that the driver owns the object and it outlives this process.
        Views of the parameters where they stay valid until Ray has stored the return value, which it
        does before this actor runs another task (not under ZeRO-3, whose gather ends with the call):
        then the weights are copied once, into the store.
        """
        with self.engine.gathered_weights(copy=self.cfg.zero_stage == 3) as state:
            return None if state is None else to_wire(state, self.cfg.publish_dtype)

    def save_checkpoint(self, directory: str, client_state: dict[str, Any]) -> str:
        return str(save_checkpoint(self.engine, directory, client_state))

    def load_checkpoint(self, directory: str, tag: str | None) -> dict[str, Any]:
        return load_checkpoint(self.engine, directory, tag)

    def export_pretrained(self, directory: str) -> str:
        return str(export_pretrained(self.engine, directory))


class LearnerGroup:
    """`cfg.ranks` learner ranks on Ray, trained as one data-parallel DeepSpeed job."""

    def __init__(self, model: str | Path, cfg: LearnerConfig, loss_fn: LossFn = batch_loss,
                 prepare: Callable[[str], Path] | None = None):
        rank_actor = ray.remote(LearnerRank).options(num_cpus=cfg.cpus_per_rank, num_gpus=cfg.gpus_per_rank,
                                                     resources=cfg.resources or None)
        self.ranks = [rank_actor.remote(rank, cfg.model_dump()) for rank in range(cfg.ranks)]
        master_addr, master_port = ray.get(self.ranks[0].rendezvous_address.remote())
        ray.get([rank.setup.remote(str(model), prepare, master_addr, master_port, loss_fn) for rank in self.ranks])
        self.precision: str = ray.get(self.ranks[0].precision.remote())
        self._weights: ray.ObjectRef | None = None  # the published form of the current weights, once asked for

    def train_step(self, batch: ModelInputs) -> float:
        """One optimizer step on a global batch, its rows split evenly over the ranks; the global loss."""
        self._weights = None
        shares = split_rows(batch, len(self.ranks))
        return ray.get([rank.train_step.remote(share) for rank, share in zip(self.ranks, shares)])[0]

    def state_dict_ref(self) -> ray.ObjectRef:
        """The current weights in the object store, as `learner.publish.publish` sends them: the driver never
        copies them. Gathered once per optimizer step: asked again before the next step (the explorers,
        then the evaluator), it is the same object."""
        if self._weights is None:
            refs = [rank.published_weights.remote() for rank in self.ranks]  # every rank joins the gather
            ray.wait(refs, num_returns=len(refs), fetch_local=False)
            self._weights = refs[0]
        return self._weights

    def save_checkpoint(self, directory: str | Path, client_state: dict[str, Any]) -> Path:
        return Path(ray.get([rank.save_checkpoint.remote(str(directory), client_state) for rank in self.ranks])[0])

    def load_checkpoint(self, directory: str | Path, tag: str | None = None) -> dict[str, Any]:
        self._weights = None
        return ray.get([rank.load_checkpoint.remote(str(directory), tag) for rank in self.ranks])[0]

    def export_pretrained(self, directory: str | Path) -> Path:
        return Path(ray.get([rank.export_pretrained.remote(str(directory)) for rank in self.ranks])[0])

    def shutdown(self) -> None:
        for rank in self.ranks:
            ray.kill(rank)
