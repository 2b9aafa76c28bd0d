"""The learner as a Ray actor group of 2 gloo ranks (1 thread each): it trains like one rank on the
same global batch, checkpoints and resumes, and publishes its weights to explorer actors."""
from __future__ import annotations

import numpy as np
import pytest
import ray
import torch
from transformers import AutoModelForCausalLM

from factories import make_episode
from launcher.cluster import start_ray
from learner.config import LearnerConfig
from learner.engine import Engine
from learner.group import LearnerGroup
from learner.publish import apply_staleness, publish
from test_learner_engine import make_batches, save_tiny_model

CFG = dict(lr=1e-3, bf16=False, warmup_steps=1, total_steps=20, threads=1)
STEPS = 4


@ray.remote(num_cpus=0)
class DummyExplorer:
    """Just enough of an explorer: a model, the version it runs, and `load_weights`."""

    def __init__(self, model_dir: str):
        torch.set_num_threads(1)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.version = 0

    def load_weights(self, version: int, state_dict: dict[str, torch.Tensor]) -> int:
        self.model.load_state_dict(state_dict)
        self.version = version
        return version

    def policy_version(self) -> int:
        return self.version

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(input_ids).logits


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads():
    """An engine sets torch's thread count for its whole process; later test modules get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def ray_local():
    start_ray(address="local")  # a fresh local Ray, even if another one runs on this machine
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def batches():
    return make_batches(count=STEPS, rows=4, seed=1)


@pytest.fixture(scope="module")
def trained_group(ray_local, model_dir, batches):
    """A 2-rank group after STEPS steps, with its losses."""
    group = LearnerGroup(model_dir, LearnerConfig(ranks=2, **CFG))
    losses = [group.train_step(batch) for batch in batches]
    yield group, losses
    group.shutdown()


def test_two_ranks_train_like_one_rank_on_the_same_global_batch(trained_group, model_dir, batches):
    group, losses = trained_group
    single = Engine(model_dir, LearnerConfig(ranks=1, **CFG))
    np.testing.assert_allclose(losses, [single.train_step(batch) for batch in batches], rtol=1e-5)
    gathered, expected = ray.get(group.state_dict_ref()), single.full_state_dict()
    for name, tensor in expected.items():
        torch.testing.assert_close(gathered[name], tensor, atol=1e-5, rtol=1e-4)


def test_group_resumes_from_its_checkpoint(trained_group, batches, tmp_path):
    group, _ = trained_group
    group.save_checkpoint(tmp_path, {"policy_version": STEPS})
    expected = [group.train_step(batch) for batch in batches[:2]]
    assert group.load_checkpoint(tmp_path) == {"policy_version": STEPS}
    assert [group.train_step(batch) for batch in batches[:2]] == expected


def test_publish_reaches_every_explorer_and_changes_its_logits(trained_group, model_dir):
    group, _ = trained_group
    explorers = [DummyExplorer.remote(model_dir) for _ in range(2)]
    input_ids = torch.tensor([[1, 20, 300, 42, 7]])
    before = ray.get(explorers[0].logits.remote(input_ids))

    weights = group.state_dict_ref()
    assert publish(1, weights, explorers) == [1, 1]
    assert ray.get([explorer.policy_version.remote() for explorer in explorers]) == [1, 1]
    after = ray.get([explorer.logits.remote(input_ids) for explorer in explorers])
    learner_model = AutoModelForCausalLM.from_pretrained(model_dir)
    learner_model.load_state_dict(ray.get(weights))
    with torch.no_grad():
        expected = learner_model(input_ids).logits
    assert not torch.allclose(after[0], before)
    for logits in after:
        torch.testing.assert_close(logits, expected)

    assert publish(2, ray.get(weights), explorers) == [2, 2]  # a plain state dict goes in once, by ray.put


def test_staleness_drops_or_downweights_old_episodes():
    episodes = [make_episode(i, policy_version=version) for i, version in enumerate([10, 9, 8, 7, 5])]
    kept, weights = apply_staleness(episodes, version=10, cap=2, policy="drop")
    assert [e.policy_version for e in kept] == [10, 9, 8] and weights == [1.0, 1.0, 1.0]
    kept, weights = apply_staleness(episodes, version=10, cap=2, policy="downweight")
    assert kept == episodes and weights == [1.0, 1.0, 1.0, 0.5, 0.125]
    assert apply_staleness(episodes, version=10, cap=None, policy="drop") == (episodes, [1.0] * 5)
