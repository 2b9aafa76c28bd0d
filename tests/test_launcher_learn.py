"""One learner step's batch as the run draws it: from the real buffer, with the staleness policy applied."""
from __future__ import annotations

import pytest
import torch

from actors.model import smollm2_tokenizer
from launcher.config import ExperimentConfig
from learner.data import draw_batch
from replay.buffer import RoundMix
from replay.tables import TableConfig
from tests.factories import make_episode


@pytest.mark.parametrize("policy, expected", [("downweight", {0.25, 1.0}), ("drop", {1.0})])
def test_stale_episodes_are_dropped_or_downweighted_in_the_loss(buffer, policy, expected):
    config = ExperimentConfig(name="t", learn={"micro_batch": 16, "staleness_cap": 1, "staleness_policy": policy,
                                               "steps_per_round": 1})
    buffer.create_table(TableConfig(name="train"))
    buffer.insert("train", [make_episode(0, policy_version=0), make_episode(1, policy_version=3)])
    drawn = draw_batch(buffer, "train", smollm2_tokenizer(), config.learn, config.learn.max_tokens, RoundMix(1, 0.0), 3)
    versions = {e.policy_version for e in drawn.episodes}
    assert versions == ({0, 3} if policy == "downweight" else {3})  # 16 draws of 2 episodes: both come up
    weights = drawn.batch.loss_weights[drawn.batch.labels != -100]
    assert set(torch.unique(weights).tolist()) == expected  # 0.5 ** (lag 3 - cap 1) for the stale one
    assert ("loss_weights" in drawn.batch.model_inputs()) == (policy == "downweight")
