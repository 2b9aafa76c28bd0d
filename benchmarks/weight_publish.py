"""Publishing weights to K explorer actors vs one raw `ray.put` + `ray.get` of the same state dict.

    .venv/bin/python benchmarks/weight_publish.py [--model default|tiny] [--explorers 2] [--repeats 5]
    RAY_ENABLE_ZERO_COPY_TORCH_TENSORS=1 .venv/bin/python benchmarks/weight_publish.py

`learner.publish.publish` puts the state dict into the object store once and has every explorer
load it into its own model (`load_state_dict`), waiting for all acks. The baseline is the least
any publication costs: one copy into the object store and one read back. Medians of `--repeats`
runs, alternating the two. Goal: publish / baseline <= 1.5.

With RAY_ENABLE_ZERO_COPY_TORCH_TENSORS=1 (in every process's environment before Ray is imported)
tensors come out of the object store as views of its shared memory, not unpickled copies,
so each explorer copies the weights once, into its model. This makes publishing several times
faster, and the baseline's read back almost free.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import ray
import torch

from actors.model import load_default_model, tiny_model
from launcher.cluster import start_ray
from learner.publish import publish


@ray.remote(num_cpus=0)
class Explorer:
    """The weight-loading side of an explorer: a model of the same architecture, one thread."""

    def __init__(self, model_name: str):
        torch.set_num_threads(1)
        self.model = load(model_name)
        self.version = 0

    def load_weights(self, version: int, state_dict: dict[str, torch.Tensor]) -> int:
        self.model.load_state_dict(state_dict)
        self.version = version
        return version


def load(model_name: str) -> torch.nn.Module:
    return (load_default_model() if model_name == "default" else tiny_model(seed=0))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", choices=["default", "tiny"])
    parser.add_argument("--explorers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    zero_copy = os.environ.get("RAY_ENABLE_ZERO_COPY_TORCH_TENSORS", "0")

    start_ray(address="local")  # a fresh local Ray, even if another one runs on this machine
    state_dict = load(args.model).state_dict()  # tied weights stay one tensor, as the learner sends them
    megabytes = sum(t.numel() * t.element_size() for t in {t.data_ptr(): t for t in state_dict.values()}.values()) / 2**20
    explorers = [Explorer.remote(args.model) for _ in range(args.explorers)]
    ray.get([explorer.load_weights.remote(0, state_dict) for explorer in explorers])  # warm: models built, workers up

    raw, published = [], []
    for version in range(1, args.repeats + 1):
        start = time.perf_counter()
        ray.get(ray.put(state_dict))
        raw.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert publish(version, state_dict, explorers) == [version] * args.explorers
        published.append(time.perf_counter() - start)

    raw_s, publish_s = statistics.median(raw), statistics.median(published)
    print(f"model {args.model}: state dict {megabytes:.0f} MiB, {args.explorers} explorers, median of {args.repeats}, "
          f"RAY_ENABLE_ZERO_COPY_TORCH_TENSORS={zero_copy}")
    print(f"raw ray.put + ray.get: {raw_s * 1000:8.1f} ms   {[round(s * 1000, 1) for s in raw]}")
    print(f"publish to {args.explorers} explorers: {publish_s * 1000:8.1f} ms   {[round(s * 1000, 1) for s in published]}")
    print(f"publish / raw = {publish_s / raw_s:.2f}  (goal <= 1.5)")
    ray.shutdown()


if __name__ == "__main__":
    main()
