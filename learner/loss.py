"""Token-summed cross-entropy on the labelled positions only.

Losses are returned as (sum over labelled tokens, number of labelled tokens), never as a mean,
so a packed batch, a padded one and a prefix-shared one give the same numbers for the same
examples, and a training loop can divide by the token count of a whole accumulation step.

The output layer runs only on the positions that predict a labelled token: with a 49k-word
vocabulary it costs about a third of SmolLM2-135M's compute per token, and on tool-use
examples only about one token in six is labelled. (Models that post-process logits, such as
Gemma's soft-capping, would need their own head here; Llama, Qwen and SmolLM do not.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from learner.examples import IGNORE


def labelled_loss(model, input_ids: torch.Tensor, labels: torch.Tensor, loss_weights: torch.Tensor | None = None,
                  **inputs) -> tuple[torch.Tensor, int]:
    """(loss sum, token count) of a causal LM over a batch; `inputs` go to the model body (masks, positions)."""
    hidden = model.get_decoder()(input_ids=input_ids, **inputs).last_hidden_state
    return loss_from_hidden(model, hidden, labels, loss_weights)


def loss_from_hidden(model, hidden: torch.Tensor, labels: torch.Tensor,
                     loss_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """(loss sum, token count) from the body's last hidden states [batch, length, width] and unshifted labels;
    with `loss_weights` [batch, length], each token's loss is scaled by its weight (the count is not)."""
    targets = labels[:, 1:]
    predicting = targets != IGNORE
    logits = model.get_output_embeddings()(hidden[:, :-1][predicting])
    if loss_weights is None:
        loss_sum = F.cross_entropy(logits.float(), targets[predicting], reduction="sum")
    else:
        token_losses = F.cross_entropy(logits.float(), targets[predicting], reduction="none")
        loss_sum = (token_losses * loss_weights[:, 1:][predicting]).sum()
    return loss_sum, int(predicting.sum())
