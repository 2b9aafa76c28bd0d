"""Episodes → training examples: token ids, with labels on the assistant's own tokens only.

The conversation is rendered once with the tokenizer's chat template (tools included) and
tokenized once with character offsets. Where each assistant turn lies is learned from the
template itself, by rendering growing prefixes of the conversation: the text before assistant
turn k is `render(messages[:k], add_generation_prompt=True)` (it ends with the assistant header),
and the turn ends where `render(messages[:k + 1])` ends, less the whitespace a template puts
between turns. Tokens whose characters start inside such a span are labelled: the turn's text,
its `<tool_call>` JSON and the closing end-of-turn token; the header and every system, user and
tool-result token get IGNORE. No string search, so a tool result that quotes
`<|im_start|>assistant` cannot fool it, and any template that renders conversations
prefix-stably (ChatML, Llama 3, ...) works, not only ours.

Truncation only ever drops whole trailing turns: an example ends right after an assistant turn,
so a tool call is never cut in half.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NoReturn

from jinja2 import TemplateError
from transformers import AutoTokenizer

from replay.episode import Episode
from replay.export import message_to_chat

IGNORE = -100  # the label that cross-entropy skips (PyTorch's ignore_index)


@dataclass
class Example:
    """One training sequence. The first `prefix_len` tokens are the system turn with the tool
    schemas: examples that agree on them can share one forward pass of it (learner.prefix)."""

    input_ids: list[int]
    labels: list[int]  # input_ids where trained on, IGNORE elsewhere; aligned with input_ids (not shifted)
    prefix_len: int
    episode_id: str = ""
    weight: float = 1.0  # loss weight of its tokens: below 1 for stale episodes under staleness "downweight"

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def label_count(self) -> int:
        return sum(label != IGNORE for label in self.labels)


@dataclass
class Skipped:
    """An episode (or one step of it) left out because it does not fit, and why."""

    episode_id: str
    reason: str


class ExampleError(ValueError):
    """An episode that cannot become a training example; the message names the episode."""


def load_tokenizer(tokenizer_or_path: Any):
    """A tokenizer object as is, or the tokenizer saved in a model folder (with its chat template)."""
    if isinstance(tokenizer_or_path, (str, Path)):
        tokenizer_or_path = AutoTokenizer.from_pretrained(str(tokenizer_or_path))
    if not tokenizer_or_path.is_fast or not tokenizer_or_path.chat_template:
        raise ValueError("the learner needs a fast tokenizer (for character offsets) with a chat template")
    return tokenizer_or_path


def build_examples(episodes: Iterable[Episode], tokenizer_or_path: Any, max_tokens: int,
                   per_step: bool = False) -> tuple[list[Example], list[Skipped]]:
    """Examples from many episodes, and what was skipped as too long. A malformed episode raises ExampleError."""
    tokenizer = load_tokenizer(tokenizer_or_path)
    examples: list[Example] = []
    skipped: list[Skipped] = []
    for episode in episodes:
        made, left_out = episode_examples(episode, tokenizer, max_tokens, per_step)
        examples += made
        skipped += left_out
    return examples, skipped


def episode_examples(episode: Episode, tokenizer, max_tokens: int,
                     per_step: bool = False) -> tuple[list[Example], list[Skipped]]:
    """The examples of one episode, and the reasons for any part of it left out.

    Whole episode (default): one example, loss on every assistant turn, trailing turns dropped
    until it fits in `max_tokens`. Per step (as ToolBench trains): one example per assistant
    turn, with the conversation up to it as context and loss on that turn only.
    """
    _check(episode)
    input_ids, turns, prefix_len = _tokenize(episode, tokenizer)
    fitting = [turn for turn in turns if turn[1] <= max_tokens]
    if not fitting:
        reason = f"its first assistant turn ends at token {turns[0][1]}, beyond max_tokens={max_tokens}"
        return [], [Skipped(episode.id, reason)]
    if not per_step:
        return [_example(episode, input_ids, fitting, prefix_len)], []
    examples = [_example(episode, input_ids, [turn], prefix_len) for turn in fitting]
    skipped = []
    if len(fitting) < len(turns):
        first_left_out = len(fitting) + 1
        reason = (f"steps {first_left_out}-{len(turns)} end beyond max_tokens={max_tokens} "
                  f"(step {first_left_out} ends at token {turns[len(fitting)][1]})")
        skipped.append(Skipped(episode.id, reason))
    return examples, skipped


def _example(episode: Episode, input_ids: list[int], trained_turns: list[tuple[int, int]], prefix_len: int) -> Example:
    """The sequence up to the end of the last trained turn, labelled on the trained turns only."""
    end = trained_turns[-1][1]
    labels = [IGNORE] * end
    for start, stop in trained_turns:
        labels[start:stop] = input_ids[start:stop]
    return Example(input_ids[:end], labels, prefix_len, episode.id)


def _check(episode: Episode) -> None:
    """Refuse what the template would render wrongly or silently: no turns to learn, unknown tools."""
    def fail(problem: str) -> NoReturn:
        raise ExampleError(f"episode {episode.id}: {problem}")

    if not episode.messages:
        fail("has no messages")
    if not any(message.role == "assistant" for message in episode.messages):
        fail("has no assistant turn to learn from")
    known = set()
    for spec in episode.tool_specs:
        name = (spec.get("function") or spec).get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str):
            fail(f"has a tool spec without a function name: {spec!r:.120}")
        known.add(name)
    for number, message in enumerate(episode.messages):
        for call in message.tool_calls:
            if message.role != "assistant":
                fail(f"message {number} ({message.role}) carries tool calls; only assistant turns may")
            if call.function.name not in known:
                fail(f"message {number} calls tool {call.function.name!r}, which is not in its tool_specs {sorted(known)}")


def _tokenize(episode: Episode, tokenizer) -> tuple[list[int], list[tuple[int, int]], int]:
    """(token ids, [start, end) token span of each assistant turn's trained tokens, prefix length in tokens)."""
    messages = [message_to_chat(message) for message in episode.messages]

    def render(count: int, add_generation_prompt: bool = False) -> str:
        try:
            return tokenizer.apply_chat_template(messages[:count], tools=episode.tool_specs or None,
                                                 tokenize=False, add_generation_prompt=add_generation_prompt)
        except (TemplateError, ValueError, TypeError) as error:
            raise ExampleError(f"episode {episode.id}: the chat template cannot render it: {error}") from None

    full_text = render(len(messages)).rstrip()  # what follows the last turn's end token is never trained

    def boundary(count: int, add_generation_prompt: bool = False) -> int:
        """Where in full_text the rendering of messages[:count] ends (between-turn whitespace excluded)."""
        text = render(count, add_generation_prompt)
        text = text if add_generation_prompt else text.rstrip()
        if not full_text.startswith(text):
            raise ExampleError(f"episode {episode.id}: the chat template does not render conversations prefix-stably "
                               f"(messages[:{count}] is not a prefix of the whole), so its turns cannot be located")
        return len(text)

    encoding = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [start for start, _ in encoding["offset_mapping"]]
    ends = [end for _, end in encoding["offset_mapping"]]
    turns = [(bisect_left(starts, boundary(index, add_generation_prompt=True)), bisect_left(starts, boundary(index + 1)))
             for index, message in enumerate(messages) if message["role"] == "assistant"]
    if any(start >= end for start, end in turns):
        raise ExampleError(f"episode {episode.id}: an assistant turn renders to no tokens")
    prefix_len = bisect_right(ends, boundary(1)) if messages[0]["role"] == "system" else 0
    return encoding["input_ids"], turns, prefix_len
