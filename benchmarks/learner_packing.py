"""Packed vs padded batches: useful (labelled) tokens per second for forward + backward, one run.

    .venv/bin/python benchmarks/learner_packing.py [--episodes 64] [--batch 4] [--seconds 60] [--threads 2] [--layers N]

Builds realistic STE-style episodes from the built-in tools and their gold queries (the tools
really run, so the results are real), turns them into whole-episode examples with SmolLM2's
tokenizer, and times forward + backward with SmolLM2-135M: padded (batches of `--batch`
examples in sampled order, right-padded) against packed (rows as long as the longest example,
first-fit decreasing, about the same tokens per batch). The two alternate batch by batch, so
other load on the machine slows both alike; `--seconds` caps the time each gets.
"""
from __future__ import annotations

import argparse
import random
import time
from typing import Callable

import torch
from rich.console import Console
from rich.table import Table

from actors.model import load_default_model
from learner.examples import Example, build_examples
from learner.loss import labelled_loss
from learner.packing import ExampleBatch, first_fit_decreasing, packed_batch, padded_batch
from replay.episode import Episode, FunctionCall, Message, Outcome, ToolCall
from toolenv.gold import load_gold_dir, value_at
from toolenv.registry import builtin_registry
from toolenv.runner import ToolRunner

console = Console(width=120)
SYSTEM = "You are a helpful assistant. Call tools to answer the user's question, then answer in one sentence."


def realistic_episodes(count: int, per_tool: int = 8, seed: int = 0) -> list[Episode]:
    """`per_tool` episodes for each of count/per_tool tools, as STE explores one API at a time.

    Each tool is shown beside 0-3 other tools of its category (so system prompts differ in
    length); every third episode first makes a call with a wrong argument and gets the tool's
    error back, as real trials do; the final answer quotes the real result.
    """
    rng = random.Random(seed)
    registry, gold = builtin_registry(), load_gold_dir()
    runner = ToolRunner(registry)
    tools = rng.sample(sorted(name for name in gold if len(gold[name]) >= per_tool), count // per_tool)
    episodes = []
    for tool in tools:
        neighbours = [t.name for t in registry.by_category(registry.get(tool).spec.category) if t.name != tool]
        shown = [tool] + rng.sample(neighbours, rng.randint(0, min(3, len(neighbours))))
        specs = [registry.get(name).spec.openai() for name in shown]
        for number, entry in enumerate(gold[tool][:per_tool]):
            messages = [Message(role="system", content=SYSTEM), Message(role="user", content=entry.query)]
            calls = [(call.name, call.argument_values()) for call in entry.calls]
            if number % 3 == 2:
                calls.insert(0, (calls[0][0], {**calls[0][1], "unexpected": True}))
            for step, (name, arguments) in enumerate(calls):
                observation = runner.call(name, arguments)
                call_id = f"call_{step}"
                messages += [Message(role="assistant", tool_calls=[ToolCall(call_id, FunctionCall(name, arguments))]),
                             Message(role="tool", content=observation.content(), tool_call_id=call_id, name=name)]
            answer = value_at(observation.result, entry.answer.path) if entry.answer else observation.result
            final = f"The answer to \"{entry.query}\" is {answer}."
            messages.append(Message(role="assistant", content=final))
            episodes.append(Episode(tools=[tool], tool_specs=specs, round=1, query=entry.query, messages=messages,
                                    outcome=Outcome(final_answer=final, tool_calls_ok=1, last_call_ok=True)))
    return episodes


def interleaved_rates(layouts: dict[str, list[Callable[[], tuple[torch.Tensor, int]]]],
                      seconds: float) -> dict[str, tuple[float, int, list[float]]]:
    """Run step i of every layout in turn (forward + backward), round after round, until each
    layout has had about `seconds` or its steps run out; interleaving (in a rotating order) makes
    all layouts share whatever else the machine is doing. Returns per layout (seconds, labelled
    tokens, loss of each step). Step 0 of each layout is a warm-up and is not timed."""
    results = {name: [0.0, 0, []] for name in layouts}
    for steps in layouts.values():
        steps[0]()[0].backward()
    names = list(layouts)
    for i in range(1, min(len(steps) for steps in layouts.values())):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            loss_sum, count = layouts[name][i]()
            loss_sum.backward()
            results[name][0] += time.perf_counter() - start
            results[name][1] += count
            results[name][2].append(loss_sum.item())
        print(f"round {i}: " + ", ".join(f"{name} {elapsed:.0f} s" for name, (elapsed, _, _) in results.items()), flush=True)
        if min(elapsed for elapsed, _, _ in results.values()) >= seconds:
            break
    return {name: (elapsed, tokens, losses) for name, (elapsed, tokens, losses) in results.items()}


def smollm2(threads: int, layers: int | None):
    """(model in training mode, tokenizer) for SmolLM2-135M, optionally cut to its first `layers`
    decoder layers: the speed-ups measured here come from work saved in every layer alike, so a
    shallower model shows them sooner on a busy machine."""
    model, tokenizer = load_default_model(threads=threads)
    if layers:
        model.model.layers = model.model.layers[:layers]
        model.config.num_hidden_layers = layers
    return model.train(), tokenizer


def padded_batches(examples: list[Example], batch_size: int, seed: int) -> list[ExampleBatch]:
    """Batches of `batch_size` examples in sampled order, each right-padded to its longest."""
    order = random.Random(seed).sample(examples, len(examples))
    return [padded_batch(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]


def packed_batches(examples: list[Example], tokens_per_batch: int, seed: int) -> list[ExampleBatch]:
    """Rows as long as the longest example, filled first-fit decreasing, about `tokens_per_batch` to a batch."""
    max_tokens = max(len(e) for e in examples)
    rows = first_fit_decreasing(examples, max_tokens)
    rows = random.Random(seed).sample(rows, len(rows))  # so any prefix of the batches is a fair sample
    rows_per_batch = max(1, round(tokens_per_batch / max_tokens))
    return [packed_batch(rows[i:i + rows_per_batch]) for i in range(0, len(rows), rows_per_batch)]


def title(model) -> str:
    return f"forward + backward, SmolLM2-135M ({model.config.num_hidden_layers} layers), {torch.get_num_threads()} threads"


def describe(examples: list[Example], skipped: list) -> str:
    lengths = sorted(len(e) for e in examples)
    labelled = sum(e.label_count for e in examples)
    return (f"{len(examples)} examples ({len(skipped)} skipped), {lengths[0]}-{lengths[-1]} tokens "
            f"(median {lengths[len(lengths) // 2]}), {labelled} of {sum(lengths)} tokens labelled")


def rate_table(title: str, results: dict[str, tuple[float, int, list[float]]],
               extra: dict[str, Callable[[str, list[float]], str]]) -> Table:
    """Useful tokens/s per layout and its ratio to the first (the baseline); `extra` columns from each layout's step losses."""
    table = Table(title=title)
    for column in ("layout", "steps timed", "seconds", "useful tokens/s", "ratio", *extra):
        table.add_column(column, justify="left" if column == "layout" else "right")
    base_rate = None
    for name, (seconds, tokens, losses) in results.items():
        rate = tokens / seconds
        base_rate = base_rate or rate
        table.add_row(name, str(len(losses)), f"{seconds:.1f}", f"{rate:.0f}", f"{rate / base_rate:.2f}x",
                      *(column(name, losses) for column in extra.values()))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4, help="examples per padded batch")
    parser.add_argument("--seconds", type=float, default=60, help="time budget per layout")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=None, help="keep only the first N of SmolLM2's 30 layers")
    args = parser.parse_args()

    model, tokenizer = smollm2(args.threads, args.layers)
    examples, skipped = build_examples(realistic_episodes(args.episodes), tokenizer, max_tokens=2048)
    padded = padded_batches(examples, args.batch, seed=0)
    packed = packed_batches(examples, sum(b.input_ids.numel() for b in padded) // len(padded), seed=0)
    computed = {name: sum(b.input_ids.numel() for b in batches) for name, batches in (("padded", padded), ("packed", packed))}
    console.print(describe(examples, skipped))
    console.print(f"one pass computes {computed['padded']} tokens padded ({len(padded)} batches), "
                    f"{computed['packed']} packed ({len(packed)} batches): {computed['padded'] / computed['packed']:.2f}x fewer")

    def step(batch: ExampleBatch) -> Callable[[], tuple[torch.Tensor, int]]:
        return lambda: labelled_loss(model, **batch.model_inputs())

    results = interleaved_rates({"padded (baseline)": [step(b) for b in padded],
                                 "packed": [step(b) for b in packed]}, args.seconds)
    console.print(rate_table(title(model), results, {}))


if __name__ == "__main__":
    main()
