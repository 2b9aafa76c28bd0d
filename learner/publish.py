"""Weight publishing, learner → explorers, and the staleness rule for samples from older policies.

One explicit function sends a version out: the weights go into the Ray object store once, and every
explorer receives the same object ref as an argument of `load_weights`, which Ray resolves inside the
explorer's process (shared memory on the same node, one transfer per node otherwise). The driver
never holds a copy per explorer.

They travel as numpy arrays, not torch tensors: Ray pickles a torch tensor through `torch.save`
(a copy into bytes, another out of them, in every explorer), but stores a numpy array as a raw
buffer and hands it out as a view of the object store's shared memory. An explorer then adopts
those views as its weights (`actors.transformers_policy.load_state_dict`): a version costs one copy, into the
store, however many explorers share a node. numpy has no bfloat16, so a bf16 transfer sends its
bits as uint16 arrays, which the explorers read back as bfloat16 (no model keeps uint16 weights).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import ray
import torch

from replay.episode import Episode

log = logging.getLogger(__name__)

PublishDtype = Literal["fp32", "bf16"]
WireWeights = dict[str, np.ndarray]


def to_wire(state_dict: Mapping[str, torch.Tensor], dtype: PublishDtype = "fp32") -> WireWeights:
    """The weights as numpy arrays for the object store: views where they can be (CPU, same dtype), so
    `ray.put` copies once. Tied weights stay one array, stored once and tied again on the other side."""
    arrays: dict[int, np.ndarray] = {}  # by tensor address: a tensor under two names is one array
    wire = {}
    for name, tensor in state_dict.items():
        key = tensor.data_ptr()
        if key not in arrays:
            tensor = tensor.detach().cpu()
            if dtype == "bf16" and tensor.is_floating_point():
                arrays[key] = tensor.to(torch.bfloat16).view(torch.uint16).numpy()
            else:
                arrays[key] = tensor.numpy()
        wire[name] = arrays[key]
    return wire


def publish(version: int, state_dict: Mapping[str, torch.Tensor] | ray.ObjectRef,
            explorer_handles: Sequence[Any], dtype: PublishDtype = "fp32") -> list[Any]:
    """Make policy `version` the explorers' weights; returns their acks once every one has loaded it.

    `state_dict` is either the weights (put into the object store here, once, in `dtype`) or a ref to
    weights already there in the published form, such as `LearnerGroup.state_dict_ref()`. Each
    explorer must offer `load_weights(version, state_dict)`.
    """
    start = time.perf_counter()
    ref = state_dict if isinstance(state_dict, ray.ObjectRef) else ray.put(to_wire(state_dict, dtype))
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
