"""The DeepSpeed learner in this process, one rank: it learns, matches plain PyTorch, resumes exactly,
gathers ZeRO-3 shards into the same weights as ZeRO-0, and exports a folder transformers loads."""
from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from transformers import AutoModelForCausalLM, AutoTokenizer

from learner.checkpoint import export_pretrained, load_checkpoint, save_checkpoint
from learner.config import LearnerConfig
from learner.engine import Engine, bf16_enabled, lr_factor
from tests.factories import make_batches
from tests.reference_learner import ReferenceLearner

FAST = dict(lr=1e-2, bf16=False, warmup_steps=2, total_steps=40, threads=1)
pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def batches() -> list[dict[str, torch.Tensor]]:
    return make_batches()


@pytest.fixture(scope="module")
def twenty_steps(model_dir, batches):
    """DeepSpeed (ZeRO-0, 2 micro batches per step) and plain PyTorch, 20 steps on the same batches."""
    cfg = LearnerConfig(grad_accum=2, **FAST)
    engine, reference = Engine(model_dir, cfg), ReferenceLearner(model_dir, cfg)
    losses = [engine.train_step(batches[i % len(batches)]) for i in range(20)]
    reference_losses = [reference.train_step(batches[i % len(batches)]) for i in range(20)]
    return engine, losses, reference_losses


def test_config_rejects_unknown_keys_and_names_them():
    with pytest.raises(ValidationError, match="zero_stag"):
        LearnerConfig(zero_stag=2)
    with pytest.raises(ValidationError, match="zero_stage"):
        LearnerConfig(zero_stage=4)
    assert LearnerConfig().replay_fraction == 0.1


def test_schedule_warms_up_then_decays_to_the_floor():
    factor = lr_factor(LearnerConfig(warmup_steps=4, total_steps=14, schedule="cosine", min_lr_ratio=0.1))
    assert [factor(step) for step in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(9) == pytest.approx(0.55)  # half way through the decay
    assert factor(14) == pytest.approx(0.1) and factor(100) == pytest.approx(0.1)
    assert lr_factor(LearnerConfig(schedule="linear", total_steps=10, min_lr_ratio=0))(5) == pytest.approx(0.5)


def test_loss_falls_on_a_fixed_handful_of_batches(twenty_steps):
    engine, losses, _ = twenty_steps
    assert engine.step == 20
    assert sum(losses[-4:]) < 0.5 * sum(losses[:4])


def test_deepspeed_steps_match_plain_pytorch(twenty_steps):
    _, losses, reference_losses = twenty_steps
    # Not bit-equal: DeepSpeed scales the loss before backward, so rounding differs, and Adam at this
    # learning rate amplifies it over the steps.
    np.testing.assert_allclose(losses[:4], reference_losses[:4], rtol=1e-6)
    np.testing.assert_allclose(losses, reference_losses, rtol=2e-3)


def test_resume_reproduces_the_next_steps_exactly(model_dir, batches, tmp_path):
    cfg = LearnerConfig(**FAST)
    first = Engine(model_dir, cfg)
    for i in range(5):
        first.train_step(batches[i % len(batches)])
    folder = save_checkpoint(first, tmp_path, {"buffer_position": 17, "policy_version": 3})
    draws = (random.random(), np.random.rand(), torch.rand(2))
    expected = [first.train_step(batches[i % len(batches)]) for i in range(5, 8)]

    resumed = Engine(model_dir, cfg)
    assert load_checkpoint(resumed, tmp_path) == {"buffer_position": 17, "policy_version": 3}
    assert folder.name == "step-5" and resumed.step == 5
    assert (random.random(), np.random.rand()) == draws[:2] and torch.equal(torch.rand(2), draws[2])
    assert [resumed.train_step(batches[i % len(batches)]) for i in range(5, 8)] == expected


def test_zero3_gathers_the_same_weights_as_zero0(model_dir, batches, tmp_path):
    engines = {}
    for stage in (0, 3):
        engines[stage] = Engine(model_dir, LearnerConfig(zero_stage=stage, **{**FAST, "lr": 1e-3}))
        for batch in batches:
            engines[stage].train_step(batch)
    zero0, zero3 = engines[0].full_state_dict(), engines[3].full_state_dict()
    assert zero0.keys() == zero3.keys()
    for name in zero0:
        torch.testing.assert_close(zero3[name], zero0[name], atol=1e-4, rtol=1e-3)
    exported = AutoModelForCausalLM.from_pretrained(export_pretrained(engines[3], tmp_path)).state_dict()
    for name, tensor in exported.items():
        torch.testing.assert_close(tensor, zero3[name], atol=0, rtol=0)


def test_export_loads_with_transformers(twenty_steps, tmp_path, batches):
    engine, _, _ = twenty_steps
    export_pretrained(engine, tmp_path / "export")
    assert (tmp_path / "export" / "model.safetensors").is_file()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "export")
    assert AutoTokenizer.from_pretrained(tmp_path / "export").eos_token == "<|im_end|>"
    weights = engine.full_state_dict()
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, weights[name], atol=0, rtol=0)


def test_lora_trains_adapters_only_and_publishes_a_plain_merged_model(model_dir, batches, tmp_path):
    """peft LoRA under DeepSpeed: the loss falls, the base weights never move, and what explorers get (and
    the export) is the plain model with the adapters folded in, giving the trained model's outputs."""
    cfg = LearnerConfig(finetune="lora", lora={"rank": 8, "alpha": 16}, **FAST)
    engine = Engine(model_dir, cfg)
    before = engine.full_state_dict()
    losses = [engine.train_step(batches[i % len(batches)]) for i in range(12)]
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3])
    trainable = {name for name, p in engine.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in name for name in trainable)
    after = engine.full_state_dict()
    plain = AutoModelForCausalLM.from_pretrained(model_dir)
    assert after.keys() == plain.state_dict().keys()  # plain keys: explorers load it with strict=True
    changed = [name for name in after if not torch.equal(after[name], before[name])]
    assert changed and all(name.endswith("proj.weight") for name in changed)  # only adapted layers moved
    reference = ReferenceLearner(model_dir, cfg)  # the same LoRA in plain PyTorch agrees
    np.testing.assert_allclose([reference.train_step(batches[i % len(batches)]) for i in range(4)], losses[:4], rtol=1e-5)

    plain.load_state_dict(after, strict=True)
    ids = batches[0]["input_ids"][:1]
    engine.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, engine.model(input_ids=ids).logits, atol=1e-4, rtol=1e-3)
    exported = AutoModelForCausalLM.from_pretrained(export_pretrained(engine, tmp_path / "lora-export")).state_dict()
    for name, tensor in exported.items():
        torch.testing.assert_close(tensor, after[name], atol=0, rtol=0)


def test_weights_for_publishing_are_views_and_a_full_state_dict_a_copy(twenty_steps):
    """What is put into the object store is read from the parameters themselves (one copy, the store's);
    `full_state_dict` keeps its promise of a copy. Tied weights stay one tensor either way."""
    engine, _, _ = twenty_steps
    live = {name: tensor.data_ptr() for name, tensor in engine.model.state_dict().items()}
    with engine.gathered_weights() as view:
        assert {name: tensor.data_ptr() for name, tensor in view.items()} == live
    copied = engine.full_state_dict()
    assert not {name for name, tensor in copied.items() if tensor.data_ptr() == live[name]}
    assert copied["lm_head.weight"].data_ptr() == copied["model.embed_tokens.weight"].data_ptr()


def test_bf16_auto_follows_the_kernels_pytorch_dispatches_to_not_only_the_hardware():
    """Under ATEN_CPU_CAPABILITY=avx2 on an AVX-512 BF16 machine, bf16 attention's backward crashes: auto means fp32."""
    import subprocess
    import sys

    probe = ("import torch; from learner.config import LearnerConfig; from learner.engine import bf16_enabled; "
             "print(bf16_enabled(LearnerConfig(), torch.device('cpu')), torch.cpu._is_avx512_bf16_supported())")
    narrow = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env={**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}).stdout.split()
    native = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env={k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}).stdout.split()
    assert narrow[0] == "False"
    assert native[0] == native[1]  # natively: bf16 exactly where the CPU has avx512_bf16
    assert bf16_enabled(LearnerConfig(bf16=True), torch.device("cpu"))  # an explicit choice is kept
