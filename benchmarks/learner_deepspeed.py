"""Learner tokens/s through DeepSpeed vs a plain PyTorch loop: same model, same batches, one run.

    .venv/bin/python benchmarks/learner_deepspeed.py [--model default|tiny] [--rows 4] [--length 256] [--steps 5]

Both learners (`learner.engine.Engine`, ZeRO-0, one rank, and the tests' `ReferenceLearner`) live in this
process and take their steps alternately, so a change in the machine's load hits both alike.
The first step of each is a warmup and not timed; tokens/s come from the median step
time, which a passing load spike on a shared machine does not move. Goal: DeepSpeed / plain >= 0.9.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from actors.model import cache_dir, load_default_model, tiny_model
from learner.config import LearnerConfig
from learner.engine import Engine, labelled_tokens

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests/ is no installed package
from tests.reference_learner import ReferenceLearner  # noqa: E402


def model_folder(name: str) -> str:
    if name == "default":
        load_default_model()  # builds the fp32 SmolLM2 cache on first use
        return str(cache_dir())
    folder = tempfile.mkdtemp(prefix="tiny-model-")
    model, tokenizer = tiny_model(seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def token_batch(rows: int, length: int, vocab: int, seed: int) -> dict[str, torch.Tensor]:
    """Random tokens with the first quarter of each row unlabelled, like a prompt."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab, (rows, length), generator=generator)
    labels = input_ids.clone()
    labels[:, : length // 4] = -100
    return {"input_ids": input_ids, "labels": labels, "attention_mask": torch.ones_like(input_ids),
            "position_ids": torch.arange(length).expand(rows, -1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", choices=["default", "tiny"])
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per learner, after one warmup step")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    folder = model_folder(args.model)
    cfg = LearnerConfig(threads=args.threads, lr=1e-5, total_steps=args.steps + 1)
    learners = {"deepspeed": Engine(folder, cfg), "plain": ReferenceLearner(folder, cfg)}
    vocab = learners["plain"].model.config.vocab_size
    batches = [token_batch(args.rows, args.length, vocab, seed) for seed in range(args.steps + 1)]
    tokens = args.rows * args.length

    seconds: dict[str, list[float]] = {name: [] for name in learners}
    losses: dict[str, list[float]] = {name: [] for name in learners}
    for step, batch in enumerate(batches):
        for name, learner in learners.items():
            start = time.perf_counter()
            losses[name].append(learner.train_step(batch))
            if step > 0:
                seconds[name].append(time.perf_counter() - start)

    print(f"model {args.model}, {args.rows} x {args.length} tokens per step ({labelled_tokens(batches[0])} labelled), "
          f"{args.steps} timed steps, {args.threads} threads, bf16 autocast {learners['plain'].bf16}")
    for name in learners:
        print(f"{name:>9}: {tokens / statistics.median(seconds[name]):8.1f} tokens/s (median step)   "
              f"steps {[round(x, 2) for x in seconds[name]]} s   losses {[round(x, 4) for x in losses[name]]}")
    ratio = statistics.median(seconds["plain"]) / statistics.median(seconds["deepspeed"])
    print(f"DeepSpeed / plain PyTorch tokens/s = {ratio:.3f}  (goal >= 0.9)")


if __name__ == "__main__":
    main()
