"""Weight publishing, learner → explorers, and the staleness rule for samples from older policies.

One explicit function sends a version out: the state dict goes into the Ray object store once,
and every explorer receives the same object ref as an argument of `load_weights`, which Ray
resolves inside the explorer's process (shared memory on the same node, one transfer per node
otherwise). The driver never holds a copy per explorer.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

import ray
import torch

from replay.episode import Episode

log = logging.getLogger(__name__)


def publish(version: int, state_dict: dict[str, torch.Tensor] | ray.ObjectRef,
            explorer_handles: Sequence[Any]) -> list[Any]:
    """Make policy `version` the explorers' weights; returns their acks once every one has loaded it.

    `state_dict` is either the weights (put into the object store here, once) or a ref to weights
    already there, such as `LearnerGroup.state_dict_ref()`. Each explorer must offer
    `load_weights(version, state_dict)`.
    """
    start = time.perf_counter()
    ref = state_dict if isinstance(state_dict, ray.ObjectRef) else ray.put(state_dict)
    acks = ray.get([handle.load_weights.remote(version, ref) for handle in explorer_handles])
    log.info("published policy version %d to %d explorers in %.3f s",
             version, len(explorer_handles), time.perf_counter() - start)
    return acks


def apply_staleness(episodes: Sequence[Episode], version: int, cap: int | None,
                    policy: Literal["drop", "downweight"]) -> tuple[list[Episode], list[float]]:
    """(episodes, loss weights) after capping staleness at `cap` versions behind `version`.

    An episode is stale when `episode.policy_version < version - cap`. "drop" leaves stale episodes
    out; "downweight" keeps them at weight 0.5 per version beyond the cap, so that a little
    staleness costs little and a lot costs almost everything. `cap=None`: nothing is stale.
    """
    lags = [version - episode.policy_version for episode in episodes]
    if cap is None:
        return list(episodes), [1.0] * len(episodes)
    if policy == "drop":
        kept = [episode for episode, lag in zip(episodes, lags) if lag <= cap]
        return kept, [1.0] * len(kept)
    return list(episodes), [1.0 if lag <= cap else 0.5 ** (lag - cap) for lag in lags]
