"""Batches of examples: packed several to a row, or one to a row padded (the baseline).

Packing fills rows up to `max_tokens` by first-fit decreasing, so almost no compute goes to
padding. Examples in one row must not see each other: position ids restart at 0 for each
example, and the attention mask is 4D, causal and block-diagonal. Position ids alone isolate
examples only in flash-attention's varlen kernels; the sdpa and eager attention used on CPU
need the mask. Padding positions attend to themselves only, so no softmax row is empty.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from learner.examples import IGNORE, Example


@dataclass
class ExampleBatch:
    """Tensors a causal LM takes as they are: `labelled_loss(model, **batch.model_inputs())`."""

    input_ids: torch.Tensor  # [rows, length]
    labels: torch.Tensor  # [rows, length], unshifted, IGNORE where not trained
    attention_mask: torch.Tensor  # [rows, length] 1/0 (padded) or [rows, 1, length, length] additive (packed)
    position_ids: torch.Tensor  # [rows, length]
    loss_weights: torch.Tensor  # [rows, length] float, each token's example weight (1 unless downweighted)

    def to(self, device: torch.device | str) -> ExampleBatch:
        return ExampleBatch(**{field.name: getattr(self, field.name).to(device) for field in fields(self)})

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """The batch as keyword arguments; `loss_weights` only when some example is weighted, so that a
        plain batch is also what a Hugging Face model's own forward takes."""
        inputs = {"input_ids": self.input_ids, "labels": self.labels,
                  "attention_mask": self.attention_mask, "position_ids": self.position_ids}
        if not bool((self.loss_weights == 1).all()):
            inputs["loss_weights"] = self.loss_weights
        return inputs

    @property
    def label_count(self) -> int:
        """Labelled tokens that have a previous token to predict them from: what the loss counts."""
        return int((self.labels[:, 1:] != IGNORE).sum())


def first_fit_decreasing(examples: list[Example], max_tokens: int) -> list[list[Example]]:
    """Rows of examples, each row at most `max_tokens` long: longest first, each into the first row it fits."""
    rows: list[list[Example]] = []
    room: list[int] = []
    for example in sorted(examples, key=len, reverse=True):
        if len(example) > max_tokens:
            raise ValueError(f"example of episode {example.episode_id} has {len(example)} tokens, beyond max_tokens={max_tokens}")
        row = next((i for i, free in enumerate(room) if free >= len(example)), None)
        if row is None:
            rows.append([])
            room.append(max_tokens)
            row = len(rows) - 1
        rows[row].append(example)
        room[row] -= len(example)
    return rows


def packed_batch(rows: list[list[Example]], pad_id: int = 0) -> ExampleBatch:
    """One tensor row per list of examples, with restarting positions and a block-diagonal causal mask."""
    length = max(sum(len(example) for example in row) for row in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((len(rows), length), dtype=torch.long)
    loss_weights = torch.ones((len(rows), length), dtype=torch.float32)
    allowed = torch.eye(length, dtype=torch.bool).repeat(len(rows), 1, 1)  # padding sees itself
    causal = torch.ones((length, length), dtype=torch.bool).tril()
    for r, row in enumerate(rows):
        start = 0
        for example in row:
            end = start + len(example)
            input_ids[r, start:end] = torch.tensor(example.input_ids)
            labels[r, start:end] = torch.tensor(example.labels)
            labels[r, start] = IGNORE  # its first token has nothing of its own to be predicted from
            position_ids[r, start:end] = torch.arange(len(example))
            loss_weights[r, start:end] = example.weight
            allowed[r, start:end, start:end] = causal[: len(example), : len(example)]
            start = end
    attention_mask = torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, torch.finfo(torch.float32).min)
    return ExampleBatch(input_ids, labels, attention_mask[:, None], position_ids, loss_weights)


def padded_batch(examples: list[Example], pad_id: int = 0) -> ExampleBatch:
    """One example per row, right-padded to the longest, with a 1/0 attention mask."""
    length = max(len(example) for example in examples)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    loss_weights = torch.ones((len(examples), length), dtype=torch.float32)
    for r, example in enumerate(examples):
        input_ids[r, : len(example)] = torch.tensor(example.input_ids)
        labels[r, : len(example)] = torch.tensor(example.labels)
        attention_mask[r, : len(example)] = 1
        loss_weights[r, : len(example)] = example.weight
    position_ids = torch.arange(length).expand(len(examples), -1)
    return ExampleBatch(input_ids, labels, attention_mask, position_ids, loss_weights)
