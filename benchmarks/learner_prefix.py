"""Prefix-shared vs recomputed: useful (labelled) tokens per second for forward + backward, one run.

    .venv/bin/python benchmarks/learner_prefix.py [--episodes 64] [--batch 8] [--seconds 45] [--threads 2] [--layers N]

The same realistic episodes as benchmarks/learner_packing.py, 8 per tool set as STE explores
them, so the examples of a batch share the system turn with the tool schemas. Each batch runs
three ways, alternating: every example whole (padded, the baseline); the shared prefix once
with its KV cache repeated over the batch (learner.prefix); and the same under bf16 autocast.
The table gives useful tokens/s, the ratio to the baseline, and the loss sums of the very same
batches, which must agree (fp32 to float tolerance; bf16 to its precision).
"""
from __future__ import annotations

import argparse
import contextlib
from typing import Callable

import torch
from learner_packing import console, describe, interleaved_rates, rate_table, realistic_episodes, smollm2, title  # sibling

from learner.examples import Example, build_examples
from learner.loss import labelled_loss
from learner.packing import padded_batch
from learner.prefix import prefix_groups, prefix_shared_loss


def same_prefix_batches(examples: list[Example], batch_size: int) -> list[list[Example]]:
    """Batches of up to `batch_size` examples that share their prefix, as a tool-grouped sampler gives."""
    return [group[i:i + batch_size] for group in prefix_groups(examples) for i in range(0, len(group), batch_size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=45, help="time budget per layout")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=None, help="keep only the first N of SmolLM2's 30 layers")
    args = parser.parse_args()

    model, tokenizer = smollm2(args.threads, args.layers)
    examples, skipped = build_examples(realistic_episodes(args.episodes), tokenizer, max_tokens=2048)
    batches = same_prefix_batches(examples, args.batch)
    shared = sum(e.prefix_len for e in examples) / sum(len(e) for e in examples)
    native_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    console.print(describe(examples, skipped))
    console.print(f"{len(batches)} batches; the prefix is {shared:.0%} of all tokens; native bf16 on this CPU: {native_bf16}")

    def step(loss_fn, batch, autocast=False) -> Callable[[], tuple[torch.Tensor, int]]:
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
                return loss_fn(batch)
        return run

    def recomputed(batch: list[Example]) -> tuple[torch.Tensor, int]:
        return labelled_loss(model, **padded_batch(batch).model_inputs())

    def shared_once(batch: list[Example]) -> tuple[torch.Tensor, int]:
        return prefix_shared_loss(model, batch)

    results = interleaved_rates({
        "recomputed, fp32 (baseline)": [step(recomputed, b) for b in batches],
        "prefix shared, fp32": [step(shared_once, b) for b in batches],
        "prefix shared, bf16 autocast": [step(shared_once, b, autocast=True) for b in batches],
    }, args.seconds)

    baseline = next(iter(results.values()))[2]
    loss_columns = {
        "loss sum": lambda name, losses: f"{sum(losses):.3f}",
        "max rel. diff per batch": lambda name, losses: f"{max(abs(a - b) / abs(b) for a, b in zip(losses, baseline)):.1e}",
    }
    console.print(rate_table(title(model), results, loss_columns))


if __name__ == "__main__":
    main()
