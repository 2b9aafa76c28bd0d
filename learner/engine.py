"""One learner rank: a causal LM from a model folder, wrapped by `deepspeed.initialize`, trained one
optimizer step at a time on batch dicts (tests/reference_learner.py is the same training in plain PyTorch).

The loss of a step is the mean over every labelled token of the *global* batch (all ranks, all micro
batches), not a mean of per-rank means. So G ranks on 1/G of a batch each take exactly the step that
one rank takes on the whole batch, however unevenly the labelled tokens fall.
"""
from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

# DeepSpeed picks its accelerator once, on import: it must know before then that a CPU run is one.
os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")

import deepspeed  # noqa: E402
import torch.distributed as dist  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from learner.config import LearnerConfig  # noqa: E402
from learner.examples import IGNORE  # noqa: E402
from learner.loss import labelled_loss  # noqa: E402
from replay.server import free_port  # noqa: E402

ModelInputs = dict[str, torch.Tensor]  # input_ids, labels, attention_mask, position_ids: ExampleBatch.model_inputs()
StateDict = dict[str, torch.Tensor]
LossFn = Callable[[torch.nn.Module, ModelInputs], tuple[torch.Tensor, int]]  # (loss sum, labelled tokens)


def batch_loss(model: torch.nn.Module, batch: ModelInputs) -> tuple[torch.Tensor, int]:
    """The default loss: learner.loss on a padded or packed batch dict."""
    return labelled_loss(model, **batch)


def labelled_tokens(batch: ModelInputs) -> int:
    """The tokens a loss sums over: labelled ones that have a previous token to be predicted from."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())


class LossModule(torch.nn.Module):
    """A causal LM whose forward is its summed loss on a batch. Wrapped this way, the whole loss
    computation (which calls the model's body and head separately) runs inside DeepSpeed's
    forward, with its hooks: ZeRO-3 gathers parameters there."""

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch: ModelInputs) -> torch.Tensor:
        return self.loss_fn(self.model, batch)[0]


def split_rows(batch: ModelInputs, parts: int) -> list[ModelInputs]:
    """`batch` cut into `parts` consecutive row blocks (sizes differ by at most one)."""
    rows = len(batch["input_ids"])
    if rows < parts:
        raise ValueError(f"a batch of {rows} rows cannot be split into {parts} parts (ranks x grad_accum)")
    chunks = {key: torch.tensor_split(value, parts) for key, value in batch.items()}
    return [{key: chunk[i] for key, chunk in chunks.items()} for i in range(parts)]


def lr_factor(cfg: LearnerConfig) -> Callable[[int], float]:
    """Linear warmup to `lr`, then cosine or linear decay to `min_lr_ratio * lr` at `total_steps`."""
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps))
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * decay
    return factor


def build_optimizer(model: torch.nn.Module, cfg: LearnerConfig):
    """(AdamW over the trainable parameters, its LR schedule): torch's own, so that DeepSpeed and the
    reference loop step the same thing."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))


def deepspeed_config(cfg: LearnerConfig, world_size: int) -> dict:
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch,
        "gradient_accumulation_steps": cfg.grad_accum,
        "train_batch_size": cfg.micro_batch * cfg.grad_accum * world_size,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "zero_allow_untested_optimizer": True,  # ZeRO wraps torch's AdamW too; DeepSpeed just never tested it
        "steps_per_print": 2**31 - 1,
    }


def device_for(cfg: LearnerConfig) -> torch.device:
    """The rank's GPU (Ray shows each rank only its own, so index 0) or the CPU."""
    if not cfg.uses_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("gpus_per_rank > 0 but this process sees no GPU")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


def bf16_enabled(cfg: LearnerConfig, device: torch.device) -> bool:
    if cfg.bf16 != "auto":
        return cfg.bf16
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # without avx512_bf16, CPU bf16 is emulated and slower; with it but PyTorch dispatching to narrower kernels
    # (ATEN_CPU_CAPABILITY=avx2), bf16 attention's backward crashes ("pack_vnni2 is only supported when avx512 is
    # supported"): the kernels must agree with the hardware
    return torch.cpu._is_avx512_bf16_supported() and torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def init_distributed(cfg: LearnerConfig) -> None:
    """Join the torch.distributed group described by the MASTER_*/RANK/WORLD_SIZE environment, or
    form a group of one on loopback when nothing is set (a single learner in the driver or a test)."""
    if dist.is_initialized():
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    for key in ("RANK", "LOCAL_RANK"):
        os.environ.setdefault(key, "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    deepspeed.init_distributed(dist_backend="nccl" if cfg.uses_gpu else "gloo")


def load_causal_lm(model_dir: str | Path, cfg: LearnerConfig) -> torch.nn.Module:
    """The model to train: the folder's causal LM, with LoRA adapters from peft when the config asks."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if cfg.finetune == "full":
        return model
    lora = LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def plain_state_dict(model: torch.nn.Module, copy: bool = True) -> StateDict:
    """The weights on the CPU under the plain model's keys; LoRA adapters folded into their base weights
    (computed beside them, never merged in place, so the trained base stays bit-exact). Tied weights stay one tensor.

    `copy=False` leaves CPU weights without an adapter as views of the live parameters, for a caller that
    copies them anyway (into the object store) before they change."""
    if isinstance(model, PeftModel):
        base = model.get_base_model()
        deltas = {f"{name}.base_layer.weight": module.get_delta_weight(model.active_adapter)
                  for name, module in base.named_modules() if isinstance(module, LoraLayer)}
        named = [(name.replace(".base_layer.", "."), tensor, deltas.get(name))
                 for name, tensor in base.state_dict().items() if ".lora_" not in name]
    else:
        named = [(name, tensor, None) for name, tensor in model.state_dict().items()]
    copies: dict[int, torch.Tensor] = {}  # by the live tensor's address, so tied weights are copied once
    state = {}
    for name, tensor, delta in named:
        key = tensor.data_ptr()
        if key not in copies:
            tensor = tensor.detach()
            if delta is not None:
                tensor = tensor.to("cpu") + delta.detach().to("cpu")
            copies[key] = tensor.to("cpu", copy=copy and delta is None)
        state[name] = copies[key]
    return state


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Engine:
    """A model folder under DeepSpeed (ZeRO 0-3), trained by `train_step`; one per learner rank."""

    def __init__(self, model_dir: str | Path, cfg: LearnerConfig, loss_fn: LossFn = batch_loss):
        torch.set_num_threads(cfg.threads)
        init_distributed(cfg)
        self.cfg, self.model_dir = cfg, Path(model_dir)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.device = device_for(cfg)
        self.bf16 = bf16_enabled(cfg, self.device)
        seed_everything(cfg.seed + self.rank)
        model = LossModule(load_causal_lm(model_dir, cfg), loss_fn)
        optimizer, scheduler = build_optimizer(model, cfg)
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                               config=deepspeed_config(cfg, self.world_size))

    @property
    def model(self) -> torch.nn.Module:
        """The Hugging Face model inside (under ZeRO-3 its parameters are shards)."""
        return self.engine.module.model

    @property
    def step(self) -> int:
        """Optimizer steps taken so far."""
        return self.engine.global_steps

    def train_step(self, batch: ModelInputs) -> float:
        """One optimizer step on this rank's share of the global batch; returns the global loss.

        The share is cut into `grad_accum` micro batches. Each micro batch's summed loss is divided
        by the global count of labelled tokens and multiplied back by what DeepSpeed divides by
        (the number of ranks when it averages gradients, `grad_accum` in `backward`).
        """
        micro_batches = split_rows({key: value.to(self.device) for key, value in batch.items()}, self.cfg.grad_accum)
        tokens = self._all_sum(sum(labelled_tokens(mb) for mb in micro_batches))
        scale = self.world_size * self.cfg.grad_accum / max(tokens, 1)
        self.engine.train()
        loss_sum = 0.0
        for micro_batch in micro_batches:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                loss = self.engine(micro_batch)
            self.engine.backward(loss * scale)
            self.engine.step()  # DeepSpeed reduces, clips and steps only at the accumulation boundary
            loss_sum += loss.item()
        return self._all_sum(loss_sum) / max(tokens, 1)

    def full_state_dict(self) -> StateDict | None:
        """A CPU copy of the whole model's weights on rank 0, None on the others.

        Under ZeRO-3 each rank holds a shard, so every rank must call this: the parameters are
        gathered (a collective) for the copy and re-partitioned afterwards. Below ZeRO-3 the
        gather is a no-op. Under LoRA it is the merged model, which explorers load as is.
        """
        with self.gathered_weights(copy=True) as state:
            return state

    @contextmanager
    def gathered_weights(self, copy: bool = False) -> Iterator[StateDict | None]:
        """`full_state_dict` for the length of a block, gathered once: without `copy`, CPU weights are views
        of the parameters, which a caller that copies them anyway (into Ray's object store) copies once.
        Views are valid only until the parameters change, and under ZeRO-3 only inside the block."""
        with deepspeed.zero.GatheredParameters(list(self.model.parameters())):
            yield plain_state_dict(self.model, copy) if self.rank == 0 else None

    def _all_sum(self, value: float) -> float:
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.item()
