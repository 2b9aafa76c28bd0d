"""A local transformers causal LM as a `Policy`: batched, grammar-constrained generation.

xgrammar masks every logit that would leave the reply's grammar (one tool call to an offered tool, or JSON
under a schema), so "tool_call" and "json" replies are well-formed by construction.
"""
from __future__ import annotations

import functools
import json
import warnings
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import torch
import xgrammar as xgr
from transformers import LogitsProcessorList, StaticCache, TemperatureLogitsWarper, TopPLogitsWarper

from actors.calls import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, check_json, parse_tool_call, tool_call_schema
from actors.policy import Mode, Reply, Sampling, check_batch, new_call_id
from actors.templates import ensure_tool_template, render
from replay.episode import Message, ToolCall

JSON_SEPARATORS = (", ", ": ")  # what the template's `tojson` writes: decode exactly what is trained on
TURN_OPEN = "<|im_start|>"  # ChatML: prompts are cached whole turns at a time, at this token


def load_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor | np.ndarray]) -> None:
    """Make `state_dict` the model's weights (every key, every shape must match), copying only what must be.

    numpy arrays are weights as `learner.publish` sends them, views of Ray's object store: where dtype
    and device match they become the weights as they are, shared by every explorer on the node and
    never copied (the store's objects are immutable; the model only reads its weights). uint16
    arrays hold bfloat16 bits. Anything else is converted into fresh tensors of the model's own dtype
    and device, and torch tensors are copied, so no caller's tensor is ever shared.
    """
    own = model.state_dict()
    converted: dict[tuple, torch.Tensor] = {}  # by memory and shape: tied weights stay one tensor
    tensors = {}
    for name, value in state_dict.items():
        target = own.get(name)
        source = (value.ctypes.data if isinstance(value, np.ndarray) else value.data_ptr(), tuple(value.shape))
        if target is None or source in converted:
            tensors[name] = converted.get(source, value)
            continue
        if isinstance(value, np.ndarray):
            with warnings.catch_warnings():  # read-only memory: fine for weights that are only read
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                tensor = torch.from_numpy(value)
            if tensor.dtype == torch.uint16:
                tensor = tensor.view(torch.bfloat16)
            tensor = tensor.to(target.device, target.dtype)
        else:
            tensor = value.to(target.device, target.dtype, copy=True)
        converted[source] = tensors[name] = tensor
    model.load_state_dict(tensors, strict=True, assign=True)


class TransformersPolicy:
    """A local transformers causal LM: one left-padded `generate` per batch, grammar-constrained per row.

    xgrammar's HF logits processor takes one compiled grammar per batch row, so conversations with
    different tool sets share one `generate`. Temperature and top-p run after the grammar mask (as
    our own processors): top-p first would cut the nucleus to tokens the grammar then forbids.
    """

    def __init__(self, model, tokenizer, threads: int = 1, version: int = 0, prefix_cache: bool = True,
                 max_prefixes: int = 16):
        torch.set_num_threads(threads)
        self.model = model.eval()
        self.tokenizer = ensure_tool_template(tokenizer)
        self.tokenizer.padding_side = "left"  # every row's prompt ends where generation starts
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.version = version
        self.max_prefixes = max_prefixes
        # ChatML models end a turn with <|im_end|>, which is not always the tokenizer's eos.
        stops = {self.tokenizer.eos_token_id, self.tokenizer.get_vocab().get("<|im_end|>")}
        self.stop_ids = sorted(stop for stop in stops if stop is not None)
        info = xgr.TokenizerInfo.from_huggingface(
            self.tokenizer, vocab_size=model.get_output_embeddings().weight.shape[0], stop_token_ids=self.stop_ids)
        self.compiler = xgr.GrammarCompiler(info, max_threads=threads)
        self._compile = functools.lru_cache(maxsize=256)(self._compile_schema)
        # Leading turns recur (a tool's system turn in every query and every search turn, few-shot
        # examples in every row of a batch): their keys and values are computed once per weights
        # version and shared, since prefill is most of the cost on CPU.
        self.turn_open_id = self.tokenizer.get_vocab().get(TURN_OPEN) if prefix_cache else None
        self._prefixes: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()

    def chat(self, conversations: list[list[Message]], tools: list[list[dict]], sampling: Sampling,
             mode: Mode = "tool_call", json_schema: dict | None = None) -> list[Reply]:
        if not check_batch(conversations, tools):
            return []
        prompts = [render(self.tokenizer, messages, specs) for messages, specs in zip(conversations, tools)]
        batch = self.model_inputs(self.tokenizer(prompts, add_special_tokens=False)["input_ids"], sampling.max_new_tokens)

        processors = LogitsProcessorList()
        if mode != "text":
            processors.append(xgr.contrib.hf.LogitsProcessor([self._grammar(mode, specs, json_schema) for specs in tools]))
        # Sampling is the whole story: neutral values keep the checkpoint's own defaults (top-k 50,
        # repetition penalties) out, and none of them may run before the grammar mask.
        strategy = dict(do_sample=sampling.temperature > 0, repetition_penalty=1.0)
        if strategy["do_sample"]:
            processors += [TemperatureLogitsWarper(sampling.temperature), TopPLogitsWarper(sampling.top_p)]
            strategy.update(temperature=1.0, top_p=1.0, top_k=0)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            output = self.model.generate(
                **batch, **strategy, logits_processor=processors, max_new_tokens=sampling.max_new_tokens,
                eos_token_id=self.stop_ids, pad_token_id=self.tokenizer.pad_token_id, disable_compile=True,
            )
        completions = output[:, batch["input_ids"].shape[1]:].tolist()
        prompt_tokens = batch["attention_mask"].sum(dim=1).tolist()
        return [self._reply(ids, count, specs, mode, json_schema)
                for ids, count, specs in zip(completions, prompt_tokens, tools)]

    def load_weights(self, version: int, state_dict: dict) -> None:
        """Take the learner's weights (every key, every shape must match) and their version."""
        load_state_dict(self.model, state_dict)
        self._prefixes.clear()  # computed by the old weights
        self.version = version

    def model_inputs(self, prompts: list[list[int]], max_new_tokens: int) -> dict:
        """`generate`'s inputs for token-id prompts: left-padded, with a preallocated cache.

        A static cache, because a growing one copies every layer's keys and values at every step
        (half of decoding time at batch 32 on CPU). Where the prompts open with turns that recur
        (`_cached_lengths`), each row is laid out as [pad][cached turns][pad][rest of the prompt]:
        the cached keys and values fill the first block, the masked pads keep positions contiguous
        (position ids are the attention mask's running sum) and `generate` runs only the rest.
        """
        pad = self.tokenizer.pad_token_id
        splits = self._cached_lengths(prompts)
        heads = [tuple(ids[:split]) for ids, split in zip(prompts, splits)]
        tails = [ids[split:] for ids, split in zip(prompts, splits)]
        head_width, tail_width = max(map(len, heads)), max(map(len, tails))
        input_ids, mask = [], []
        for head, tail in zip(heads, tails):
            head_pad, tail_pad = head_width - len(head), tail_width - len(tail)
            input_ids.append([pad] * head_pad + list(head) + [pad] * tail_pad + tail)
            mask.append([0] * head_pad + [1] * len(head) + [0] * tail_pad + [1] * len(tail))
        cache = StaticCache(config=self.model.config, max_cache_len=head_width + tail_width + max_new_tokens)
        if head_width:
            rows = [self._prefix(head) for head in heads]
            for layer, per_row in zip(cache.layers, zip(*rows)):  # one model layer: (key, value) of every row
                left_pad = [(0, 0, head_width - key.shape[2], 0) for key, _ in per_row]
                layer.update(torch.cat([torch.nn.functional.pad(k, p) for (k, _), p in zip(per_row, left_pad)]),
                             torch.cat([torch.nn.functional.pad(v, p) for (_, v), p in zip(per_row, left_pad)]))
        return {"input_ids": torch.tensor(input_ids), "attention_mask": torch.tensor(mask), "past_key_values": cache}

    def _cached_lengths(self, prompts: list[list[int]]) -> list[int]:
        """Per row, the leading tokens to take from the cache: the whole turns all rows share (few-shot
        examples), else each row's system turn (tool schemas); zeros when a row has neither."""
        if self.turn_open_id is None:
            return [0] * len(prompts)
        turns = [[i for i, token in enumerate(ids) if token == self.turn_open_id] for ids in prompts]
        if not all(len(starts) > 1 and starts[0] == 0 for starts in turns):
            return [0] * len(prompts)
        first = prompts[0]
        shared = 0
        if len(prompts) > 1:  # a lone prompt's turns recur in no other row
            for start in turns[0][1:]:
                if all(len(ids) > start and ids[start] == self.turn_open_id and ids[:start] == first[:start]
                       for ids in prompts[1:]):
                    shared = start
                else:
                    break
        return [shared] * len(prompts) if shared > turns[0][1] else [starts[1] for starts in turns]

    def _prefix(self, head: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer (key, value) of leading turns, computed on first use and kept (LRU)."""
        if head in self._prefixes:
            self._prefixes.move_to_end(head)
            return self._prefixes[head]
        with torch.inference_mode():
            output = self.model(torch.tensor([head]), use_cache=True)
        layers = [(key, value) for key, value, *_ in output.past_key_values]
        self._prefixes[head] = layers
        if len(self._prefixes) > self.max_prefixes:
            self._prefixes.popitem(last=False)
        return layers

    def _reply(self, ids: list[int], prompt_tokens: int, tools: list[dict], mode: Mode, json_schema: dict | None) -> Reply:
        stop = next((i for i, token in enumerate(ids) if token in self.stop_ids), None)
        finish = "length" if stop is None else "stop"
        ids = ids if stop is None else ids[:stop]
        raw = self.tokenizer.decode(ids, skip_special_tokens=False)
        counts = dict(prompt_tokens=prompt_tokens, completion_tokens=len(ids) + (stop is not None), finish_reason=finish)
        if mode == "tool_call":
            call, error = parse_tool_call(raw, tools)
            if call is None:
                return Reply(Message(role="assistant", content=raw), raw, error, **counts)
            message = Message(role="assistant", tool_calls=[ToolCall(id=new_call_id(), function=call)])
            return Reply(message, raw, None, **counts)
        error = check_json(raw, json_schema) if mode == "json" else None
        return Reply(Message(role="assistant", content=raw if mode == "json" else raw.strip()), raw, error, **counts)

    def _grammar(self, mode: Mode, tools: list[dict], json_schema: dict | None) -> xgr.CompiledGrammar:
        if mode == "json":
            return self._compile("json", json.dumps(json_schema))
        if not tools:
            raise ValueError("tool_call mode needs at least one tool in every conversation")
        return self._compile("tool_call", json.dumps(tool_call_schema(tools)))

    def _compile_schema(self, mode: Mode, schema: str) -> xgr.CompiledGrammar:
        """Compact JSON (the template's separators, no free whitespace), wrapped in the tool-call tags for calls."""
        if schema == "null":
            body = xgr.Grammar.builtin_json_grammar()
        else:
            body = xgr.Grammar.from_json_schema(schema, any_whitespace=False, separators=JSON_SEPARATORS)
        if mode == "tool_call":
            body = xgr.Grammar.concat(_literal(TOOL_CALL_OPEN), body, _literal(TOOL_CALL_CLOSE))
        return self.compiler.compile_grammar(body)


def _literal(text: str) -> xgr.Grammar:
    return xgr.Grammar.from_ebnf(f"root ::= {json.dumps(text)}")
