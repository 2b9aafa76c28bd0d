"""Packed, padded and prefix-shared batches give the same token-summed loss and gradients."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from actors.model import tiny_model
from learner.examples import IGNORE, Example, build_examples
from learner.loss import labelled_loss
from learner.packing import first_fit_decreasing, packed_batch, padded_batch
from learner.prefix import prefix_groups, prefix_shared_loss
from tests.factories import make_episode
from tests.test_learner_examples import CURRENCY_SPEC, two_tool_episode


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=0, threads=2)


@pytest.fixture(scope="module")
def examples(tiny):
    """Per-step examples of varied lengths over two tool sets, so two distinct prefixes."""
    _, tokenizer = tiny
    episodes = [make_episode(i) for i in range(4)] + [two_tool_episode()]
    episodes[1].tool_specs.append(CURRENCY_SPEC)
    examples, skipped = build_examples(episodes, tokenizer, 4096, per_step=True)
    assert skipped == []
    return examples


def loss_and_grads(model, compute):
    model.zero_grad()
    loss_sum, count = compute()
    loss_sum.backward()
    return loss_sum.detach(), count, [p.grad.clone() for p in model.parameters()]


def one_by_one(model, examples):
    """The reference: every example alone in its own batch, losses summed."""
    losses = [labelled_loss(model, **padded_batch([example]).model_inputs()) for example in examples]
    return sum(loss for loss, _ in losses), sum(count for _, count in losses)


def assert_same(result, reference):
    (loss, count, grads), (ref_loss, ref_count, ref_grads) = result, reference
    assert count == ref_count
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-3)
    scale = max(ref_grad.abs().max() for ref_grad in ref_grads)  # the random tiny model's gradients reach ~500
    for grad, ref_grad in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5 * scale)


def test_first_fit_decreasing_fills_rows_without_overflow_or_loss(examples):
    max_tokens = 2 * max(len(e) for e in examples)
    rows = first_fit_decreasing(examples, max_tokens)
    assert all(sum(len(e) for e in row) <= max_tokens for row in rows)
    assert sorted(id(e) for row in rows for e in row) == sorted(id(e) for e in examples)
    assert len(rows) <= len(examples) // 2 + 1
    with pytest.raises(ValueError, match="beyond max_tokens"):
        first_fit_decreasing(examples, max(len(e) for e in examples) - 1)


def test_packed_rows_restart_positions_and_isolate_examples():
    first, second = Example([5, 6, 7], [IGNORE, 6, 7], 1), Example([8, 9], [IGNORE, 9], 1)
    batch = packed_batch([[first, second]], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 0, 1]]
    allowed = (batch.attention_mask[0, 0] == 0).int().tolist()
    assert allowed == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 1]]
    assert batch.label_count == 3


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_and_padded_losses_equal_the_sum_of_unpacked_losses(tiny, examples, attention):
    model, _ = tiny
    model.config._attn_implementation = attention
    try:
        reference = loss_and_grads(model, lambda: one_by_one(model, examples))
        rows = first_fit_decreasing(examples, 2 * max(len(e) for e in examples))
        assert any(len(row) > 1 for row in rows)
        assert_same(loss_and_grads(model, lambda: labelled_loss(model, **packed_batch(rows).model_inputs())), reference)
        assert_same(loss_and_grads(model, lambda: labelled_loss(model, **padded_batch(examples).model_inputs())), reference)
    finally:
        model.config._attn_implementation = "sdpa"


def test_the_model_takes_a_packed_batch_directly(tiny, examples):
    model, _ = tiny
    batch = packed_batch(first_fit_decreasing(examples, 2 * max(len(e) for e in examples)))
    with torch.no_grad():
        mean_loss = model(**batch.model_inputs()).loss
        loss_sum, count = labelled_loss(model, **batch.model_inputs())
    assert count == batch.label_count
    torch.testing.assert_close(mean_loss * count, loss_sum, rtol=1e-5, atol=1e-3)


def test_prefix_groups_split_by_tool_set(examples):
    groups = prefix_groups(examples)
    assert [len(group) for group in groups] == [6, 5]  # weather alone: 3 episodes; weather + currency: 2 episodes
    assert sum(len(group) for group in groups) == len(examples)
    for group in groups:
        assert len({tuple(e.input_ids[: e.prefix_len]) for e in group}) == 1


def test_prefix_shared_loss_and_gradients_equal_the_plain_ones(tiny, examples):
    model, _ = tiny
    reference = loss_and_grads(model, lambda: one_by_one(model, examples))
    assert_same(loss_and_grads(model, lambda: prefix_shared_loss(model, examples)), reference)


def test_prefix_shared_loss_without_a_system_turn_shares_nothing_and_still_agrees(tiny):
    model, tokenizer = tiny
    episodes = [make_episode(i) for i in range(3)]
    for episode in episodes:
        episode.messages = episode.messages[1:]  # no system message: the template's default one is not shared
    examples, _ = build_examples(episodes, tokenizer, 4096)
    assert all(e.prefix_len == 0 for e in examples)
    reference = loss_and_grads(model, lambda: one_by_one(model, examples))
    assert_same(loss_and_grads(model, lambda: prefix_shared_loss(model, examples)), reference)


def test_a_downweighted_example_counts_by_its_weight(tiny, examples):
    """Staleness "downweight": a stale episode's tokens count at its weight, packed or padded; the token count
    (the denominator of the step's mean) stays the same."""
    model, _ = tiny
    first, second = examples[0], examples[1]
    with torch.no_grad():
        alone, _ = labelled_loss(model, **padded_batch([first]).model_inputs())
        plain, count = labelled_loss(model, **packed_batch([[first, second]]).model_inputs())
        weighted = [replace(first, weight=0.25), second]
        for batch in (packed_batch([weighted]), padded_batch(weighted)):
            inputs = batch.model_inputs()
            assert "loss_weights" in inputs
            loss, weighted_count = labelled_loss(model, **inputs)
            assert weighted_count == count
            torch.testing.assert_close(loss, plain - 0.75 * alone, rtol=1e-5, atol=1e-3)
    assert "loss_weights" not in packed_batch([[first, second]]).model_inputs()  # plain batches stay HF-compatible
