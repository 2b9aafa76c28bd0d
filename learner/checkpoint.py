"""Checkpoints that resume a run exactly, and the final export as a plain Hugging Face folder.

DeepSpeed's own checkpoint holds the model, optimizer and LR schedule (sharded per rank under
ZeRO). Beside it, in the same tag folder, small JSON sidecars hold what DeepSpeed does not: each
rank's RNG states, and the caller's opaque state (replay-buffer position, policy version, ...).
Every rank calls `save_checkpoint`/`load_checkpoint`/`export_pretrained` together: they are collectives.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from peft import PeftModel

from learner.engine import Engine

SIDECAR = "learner.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja")


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as JSON-ready lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state:
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def save_checkpoint(engine: Engine, directory: str | Path, client_state: dict[str, Any]) -> Path:
    """Write checkpoint `step-N` under `directory` (and point `latest` at it); returns its folder."""
    tag = f"step-{engine.step}"
    engine.engine.save_checkpoint(str(directory), tag=tag)
    folder = Path(directory) / tag
    folder.mkdir(parents=True, exist_ok=True)  # ranks on other nodes may have written nothing there yet
    (folder / f"rng-rank{engine.rank}.json").write_text(json.dumps(rng_state()))
    if engine.rank == 0:
        (folder / SIDECAR).write_text(json.dumps({"step": engine.step, "client_state": client_state}))
    dist.barrier()
    return folder


def load_checkpoint(engine: Engine, directory: str | Path, tag: str | None = None) -> dict[str, Any]:
    """Restore the engine from checkpoint `tag` (default: the latest) and return the caller's state."""
    model_file, _ = engine.engine.load_checkpoint(str(directory), tag=tag)
    if model_file is None:
        raise FileNotFoundError(f"no DeepSpeed checkpoint in {directory} (tag {tag or 'latest'})")
    folder = Path(model_file).parent
    set_rng_state(json.loads((folder / f"rng-rank{engine.rank}.json").read_text()))
    return json.loads((folder / SIDECAR).read_text())["client_state"]


def export_pretrained(engine: Engine, directory: str | Path) -> Path:
    """The trained model as a Hugging Face folder (safetensors + config, and the tokenizer files of
    the folder it was loaded from), which `AutoModelForCausalLM.from_pretrained` reads."""
    directory = Path(directory)
    state = engine.full_state_dict()  # LoRA folded in: the export is a plain model
    if engine.rank == 0:
        model = engine.model.get_base_model() if isinstance(engine.model, PeftModel) else engine.model
        model.save_pretrained(directory, state_dict=state)
        for name in TOKENIZER_FILES:
            if (engine.model_dir / name).is_file():
                shutil.copy2(engine.model_dir / name, directory / name)
    dist.barrier()
    return directory
