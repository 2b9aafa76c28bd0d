"""One forward pass of a shared prefix per batch instead of one per example.

The examples of a tool set all begin with the same system turn carrying the tool schemas: in
our data most of every example (617 of 733 tokens with SmolLM2). Examples with identical
prefix tokens form a group; the prefix runs once, its key/value cache is repeated over the
group, and only the suffixes run as a padded batch on top of it. The prefix forward stays in
the autograd graph, so its backward also runs once, with the gradients of the whole group
summed into it: the same loss and gradients as running every example whole, at a fraction of
the cost.
"""
from __future__ import annotations

import torch

from learner.examples import Example
from learner.loss import labelled_loss, loss_from_hidden
from learner.packing import padded_batch


def prefix_groups(examples: list[Example]) -> list[list[Example]]:
    """Examples grouped by identical prefix tokens, in order of first appearance."""
    groups: dict[tuple[int, ...], list[Example]] = {}
    for example in examples:
        groups.setdefault(tuple(example.input_ids[: example.prefix_len]), []).append(example)
    return list(groups.values())


def prefix_shared_loss(model, examples: list[Example]) -> tuple[torch.Tensor, int]:
    """(loss sum, token count) over the examples, each distinct prefix computed once."""
    losses = [_group_loss(model, group) for group in prefix_groups(examples)]
    return sum(loss_sum for loss_sum, _ in losses), sum(count for _, count in losses)


def _group_loss(model, group: list[Example]) -> tuple[torch.Tensor, int]:
    prefix_len = group[0].prefix_len
    if prefix_len == 0:
        return labelled_loss(model, **padded_batch(group).to(model.device).model_inputs())
    decoder = model.get_decoder()
    prefix = decoder(input_ids=torch.tensor([group[0].input_ids[:prefix_len]], device=model.device), use_cache=True)
    cache = prefix.past_key_values
    cache.batch_repeat_interleave(len(group))

    suffixes = padded_batch([Example(e.input_ids[prefix_len:], e.labels[prefix_len:], 0, e.episode_id) for e in group])
    suffixes = suffixes.to(model.device)
    attention_mask = torch.cat([torch.ones_like(suffixes.attention_mask[:, :1]).expand(-1, prefix_len),
                                suffixes.attention_mask], dim=1)
    hidden = decoder(input_ids=suffixes.input_ids, attention_mask=attention_mask, past_key_values=cache,
                     position_ids=suffixes.position_ids + prefix_len, use_cache=True).last_hidden_state

    # The first suffix token is predicted from the prefix's last position, so the loss sees whole sequences.
    hidden = torch.cat([prefix.last_hidden_state.expand(len(group), -1, -1), hidden], dim=1)
    prefix_labels = torch.tensor([example.labels[:prefix_len] for example in group], device=model.device)
    labels = torch.cat([prefix_labels, suffixes.labels], dim=1)
    return loss_from_hidden(model, hidden, labels)
