"""Publishing weights to K explorer actors vs one in-memory copy of the same state dict, in one run.

    .venv/bin/python benchmarks/weight_publish.py [--model default|tiny] [--explorers 1 2 4] [--repeats 5] [--old]

`learner.publish.publish` puts the weights into the object store once and every explorer takes them
with `TransformersPolicy.load_weights` (the real explorer code path), waiting for all acks. The
baseline is the least a publication could cost: one `clone()` of every tensor of the same state
dict, in this process. Medians of `--repeats` runs, alternating baseline and publications.
Goal (issue 15): publish to K explorers <= 3x the baseline, for K = 1, 2, 4. `--old` adds the way
weights went out before, torch tensors pickled through Ray into each explorer's `load_state_dict`.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import launcher  # noqa: F401  (first: keeps a local Ray on loopback)
import ray
import torch

from actors.model import load_default_model, tiny_model
from actors.transformers_policy import TransformersPolicy
from launcher.cluster import start_ray
from learner.publish import publish

GOAL = 3.0


@ray.remote(num_cpus=0)
class Explorer:
    """The weight-loading side of an explorer: the real policy on a model of the same architecture, one thread."""

    def __init__(self, model_name: str):
        self.policy = TransformersPolicy(*load(model_name), threads=1)

    def load_weights(self, version: int, state_dict: dict) -> int:
        self.policy.load_weights(version, state_dict)
        return self.policy.version

    def load_torch(self, version: int, state_dict: dict[str, torch.Tensor]) -> int:
        """How weights were taken before: a copy into each parameter of what Ray unpickled."""
        self.policy.model.load_state_dict(state_dict, strict=True)
        return version


def load(model_name: str):
    return load_default_model(threads=1) if model_name == "default" else tiny_model(seed=0, threads=1)


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", choices=["default", "tiny"])
    parser.add_argument("--explorers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--old", action="store_true", help="also time the former torch-pickle path")
    args = parser.parse_args()

    start_ray(address="local")  # a fresh local Ray, even if another one runs on this machine
    torch.set_num_threads(1)
    state_dict = load(args.model)[0].state_dict()  # tied weights stay one tensor, as the learner sends them
    unique = list({tensor.data_ptr(): tensor for tensor in state_dict.values()}.values())
    megabytes = sum(t.numel() * t.element_size() for t in unique) / 2**20
    explorers = [Explorer.remote(args.model) for _ in range(max(args.explorers))]
    version = 0

    def publish_to(k: int, dtype: str) -> None:
        nonlocal version
        version += 1
        assert publish(version, state_dict, explorers[:k], dtype=dtype) == [version] * k

    def old_publish_to(k: int) -> None:
        ref = ray.put(state_dict)
        ray.get([explorer.load_torch.remote(0, ref) for explorer in explorers[:k]])

    # the former path first: it copies into the parameters, which after a publication are the store's
    runs = [(k, "old: torch tensors", lambda k=k: old_publish_to(k)) for k in args.explorers if args.old]
    runs += [(k, dtype, lambda k=k, dtype=dtype: publish_to(k, dtype)) for k in args.explorers for dtype in ("fp32", "bf16")]
    rows, baseline_times = [], []
    for k, label, run in runs:
        run()  # warm: workers up, object store pages touched
        times = []
        for _ in range(args.repeats):
            baseline_times.append(seconds(lambda: [tensor.clone() for tensor in unique]))
            times.append(seconds(run))
        rows.append((k, label, statistics.median(times), times))

    baseline = statistics.median(baseline_times)
    print(f"model {args.model}: state dict {megabytes:.0f} MiB, median of {args.repeats}; "
          f"baseline, one clone() of it: {baseline * 1000:.1f} ms (median of {len(baseline_times)})")
    for k, label, took, times in rows:
        print(f"publish to {k} explorer(s), {label:18s} {took * 1000:8.1f} ms  = {took / baseline:5.2f} x clone"
              f"   {[round(t * 1000) for t in times]}")
    fp32 = {k: took / baseline for k, label, took, _ in rows if label == "fp32"}
    print("publish / clone (fp32): " + ", ".join(f"K={k}: {ratio:.2f}" for k, ratio in fp32.items())
          + f"  (goal <= {GOAL:g})")
    ray.shutdown()


if __name__ == "__main__":
    main()
