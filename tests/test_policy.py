"""The local policy: tool template, grammar-constrained decoding, batching, weights, call parsing.

Most tests use a tiny random model with the real SmolLM2 tokenizer (milliseconds per token).
A random model never closes a free string on its own, so the tools here bound their strings
(maxLength): the grammar then forces every reply to finish within the token budget.
"""
from __future__ import annotations

import json
import random

import jsonschema
import numpy as np
import pytest
import torch
from factories import WEATHER_SPEC

from actors.calls import parse_tool_call
from actors.model import load_default_model, tiny_model
from actors.policy import Sampling
from actors.templates import TOOL_TEMPLATE, ensure_tool_template, render, supports_tools
from actors.transformers_policy import TransformersPolicy
from learner.publish import to_wire
from replay.episode import FunctionCall, Message, ToolCall
from replay.export import message_to_chat


def tool(name: str, properties: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {"name": name, "description": f"The {name} tool.",
                                             "parameters": {"type": "object", "properties": properties, "required": required}}}


SEARCH = tool("search_flights", {"origin": {"type": "string", "maxLength": 6}, "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
                                 "nonstop": {"type": "boolean"}}, ["origin", "passengers"])
CONVERT = tool("convert_units", {"value": {"type": "integer", "minimum": 0, "maximum": 999},
                                 "unit": {"type": "string", "enum": ["km", "mi", "m"]}}, ["value", "unit"])
FINISH = tool("Finish", {"return_type": {"type": "string", "enum": ["give_answer", "give_up_and_restart"]},
                         "final_answer": {"type": "string", "maxLength": 8}}, ["return_type"])
VERDICT = {"type": "object", "properties": {"solved": {"type": "boolean"}, "reason": {"type": "string", "maxLength": 10}},
           "required": ["solved", "reason"]}
GREEDY = Sampling(temperature=0, max_new_tokens=60)


def conversation(query: str) -> list[Message]:
    return [Message(role="system", content="Solve the task with the tools."), Message(role="user", content=query)]


@pytest.fixture(scope="module")
def policy() -> TransformersPolicy:
    return TransformersPolicy(*tiny_model(seed=0), threads=1)


@pytest.fixture(scope="module")
def tokenizer(policy):
    return policy.tokenizer


# --- the tool template -------------------------------------------------------------------------

WEATHER_CALL = FunctionCall(name="get_weather", arguments={"city": "Paris", "date": "2023-05-01"})
DIALOGUE = [
    Message(role="system", content="You can call tools."),
    Message(role="user", content="How warm was Paris on 1 May 2023?"),
    Message(role="assistant", tool_calls=[ToolCall(id="call_1", function=WEATHER_CALL)]),
    Message(role="tool", content='{"temperature_c": 18}', tool_call_id="call_1", name="get_weather"),
    Message(role="assistant", content="It was 18 °C."),
]


def test_template_renders_tools_calls_and_results(tokenizer):
    text = render(tokenizer, DIALOGUE, [WEATHER_SPEC], add_generation_prompt=False)
    assert text.startswith("<|im_start|>system\nYou can call tools.\n\n# Tools\n")
    assert "<tools>\n" + json.dumps(WEATHER_SPEC, ensure_ascii=False) + "\n</tools>" in text
    assert ('<|im_start|>assistant\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "date": "2023-05-01"}}'
            "</tool_call><|im_end|>\n") in text
    assert '<|im_start|>user\n<tool_response>\n{"temperature_c": 18}\n</tool_response><|im_end|>\n' in text
    assert text.endswith("<|im_start|>assistant\nIt was 18 °C.<|im_end|>\n")
    assert render(tokenizer, DIALOGUE[:2], [WEATHER_SPEC]).endswith("<|im_start|>user\nHow warm was Paris on 1 May 2023?<|im_end|>\n<|im_start|>assistant\n")
    ids = tokenizer.encode("<|im_start|>assistant\nhi<|im_end|>", add_special_tokens=False)
    assert tokenizer.convert_ids_to_tokens([ids[0], ids[-1]]) == ["<|im_start|>", "<|im_end|>"]  # single tokens


def test_rendered_call_round_trips_through_the_parser(tokenizer):
    text = render(tokenizer, DIALOGUE[:3], [WEATHER_SPEC], add_generation_prompt=False)
    assistant = text.rsplit("<|im_start|>assistant\n", 1)[1]
    assert parse_tool_call(assistant, [WEATHER_SPEC]) == (WEATHER_CALL, None)


def test_assistant_mask_marks_exactly_the_assistant_turns(tokenizer):
    chat = tokenizer.apply_chat_template([message_to_chat(m) for m in DIALOGUE], tools=[WEATHER_SPEC], return_dict=True,
                                         return_assistant_tokens_mask=True)
    marked = [token for token, mask in zip(chat["input_ids"], chat["assistant_masks"]) if mask]
    assert tokenizer.decode(marked) == (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "date": "2023-05-01"}}</tool_call><|im_end|>'
        "It was 18 °C.<|im_end|>")


def test_tool_template_is_installed_only_where_tools_are_missing(tokenizer):
    assert supports_tools(tokenizer) and tokenizer.chat_template == TOOL_TEMPLATE
    tokenizer.chat_template, own = "{% for m in messages %}{{ m.content }}{% endfor %}", tokenizer.chat_template
    try:
        assert not supports_tools(tokenizer)
        assert ensure_tool_template(tokenizer).chat_template == TOOL_TEMPLATE
        tokenizer.chat_template = "{% if tools %}{{ tools | tojson }}{% endif %}"
        assert ensure_tool_template(tokenizer).chat_template != TOOL_TEMPLATE
    finally:
        tokenizer.chat_template = own


# --- parsing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, error", [
    ("I would call get_weather.", "no <tool_call> tag"),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Par', "unclosed JSON"),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}', "unclosed JSON"),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "date": "x"}}', "missing </tool_call>"),
    ("<tool_call>{name: get_weather}</tool_call>", "invalid JSON in <tool_call>"),
    ('<tool_call>["get_weather"]</tool_call>', "the call is a JSON array, not an object"),
    ('<tool_call>{"arguments": {}}</tool_call>', 'no "name" string'),
    ('<tool_call>{"name": "get_wether", "arguments": {}}</tool_call>', "unknown tool 'get_wether' (known: get_weather)"),
    ('<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}</tool_call>', '"arguments" of get_weather is a JSON string'),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": 7, "date": "x"}}</tool_call>', "get_weather: argument 'city' must be of type string, got integer 7"),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>', "get_weather: missing required argument 'date'"),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "P", "date": "x", "units": "kelvin"}}</tool_call>', "get_weather: argument 'units' must be one of"),
    ("<tool_call>" + "[" * 100_000 + "</tool_call>", "JSON"),
    ("<tool_call>" + "1" * 5000 + "</tool_call>", "unreadable JSON"),
])
def test_malformed_calls_get_one_line_errors(text, error):
    call, message = parse_tool_call(text, [WEATHER_SPEC])
    assert call is None and error in message and "\n" not in message and len(message) <= 300


def test_parser_never_raises_on_random_text():
    rng = random.Random(0)
    pieces = ["<tool_call>", "</tool_call>", "{", "}", "[", "]", '"', ":", ",", "\\", "name", "arguments", "get_weather",
              '"city"', '"Paris"', "null", "true", "1e999", "-0", "\n", " ", "\x00", "é", "\ud800", "NaN"]
    for _ in range(10_000):
        text = "".join(rng.choice(pieces) if rng.random() < 0.8 else chr(rng.randrange(0x110000)) for _ in range(rng.randrange(40)))
        if rng.random() < 0.5:
            text = "<tool_call>" + text
        call, error = parse_tool_call(text, [WEATHER_SPEC])
        assert (call is None) != (error is None)


# --- decoding with the tiny model ------------------------------------------------------------

def test_sampled_calls_are_always_well_formed_and_schema_valid(policy):
    tool_sets = [[SEARCH, CONVERT, FINISH], [CONVERT, FINISH], [SEARCH], [FINISH, SEARCH]]
    tools = [tool_sets[i % len(tool_sets)] for i in range(20)]
    replies = policy.chat([conversation(f"Task number {i}.") for i in range(20)], tools,
                          Sampling(temperature=1.0, top_p=0.95, max_new_tokens=80, seed=1))
    for reply, offered in zip(replies, tools):
        assert reply.parse_error is None, reply.raw
        assert reply.raw.startswith("<tool_call>{") and reply.raw.endswith("}</tool_call>")
        (call,) = reply.message.tool_calls
        spec = next(spec["function"] for spec in offered if spec["function"]["name"] == call.function.name)
        jsonschema.validate(call.function.arguments, spec["parameters"])
        assert call.id.startswith("call_") and reply.finish_reason == "stop"
        assert reply.prompt_tokens > 100 and reply.completion_tokens > 10
    assert len({json.dumps(reply.message.tool_calls[0].function.arguments) for reply in replies}) > 10  # really sampled


def test_json_mode_reply_fits_its_schema(policy):
    (reply,) = policy.chat([conversation("Was the task solved?")], [[SEARCH]], Sampling(max_new_tokens=40), mode="json",
                           json_schema=VERDICT)
    assert reply.parse_error is None
    jsonschema.validate(json.loads(reply.message.content), VERDICT)


def test_text_mode_is_unconstrained_and_reports_length(policy):
    (reply,) = policy.chat([conversation("Paraphrase: hello.")], [[]], Sampling(max_new_tokens=12), mode="text")
    assert reply.parse_error is None and reply.finish_reason == "length" and reply.completion_tokens == 12
    assert reply.message.content == reply.raw.strip() and not reply.message.tool_calls


def test_running_out_of_tokens_is_a_parse_error_not_an_exception(policy):
    (reply,) = policy.chat([conversation("Go.")], [[SEARCH]], Sampling(max_new_tokens=20))
    assert reply.finish_reason == "length" and reply.parse_error.startswith("unclosed JSON")
    assert reply.message.content == reply.raw and not reply.message.tool_calls


def test_batched_greedy_output_equals_one_by_one(policy):
    conversations = [conversation("Short."), conversation("A much longer task description, so that padding matters. " * 3),
                     conversation("Third.")]
    tools = [[SEARCH, FINISH], [CONVERT], [FINISH, CONVERT, SEARCH]]
    batched = policy.chat(conversations, tools, GREEDY)
    single = [policy.chat([c], [t], GREEDY)[0] for c, t in zip(conversations, tools)]
    assert [r.raw for r in batched] == [r.raw for r in single]
    assert [r.prompt_tokens for r in batched] == [r.prompt_tokens for r in single]


def test_same_seed_same_sample(policy):
    sampling = Sampling(temperature=1.0, max_new_tokens=60, seed=7)
    first, second = (policy.chat([conversation("Go.")], [[SEARCH, CONVERT]], sampling)[0] for _ in range(2))
    assert first.raw == second.raw


def test_load_weights_changes_outputs_and_version():
    policy = TransformersPolicy(*tiny_model(seed=0))
    before = policy.chat([conversation("Go.")], [[]], GREEDY, mode="text")[0].raw
    other, _ = tiny_model(seed=1)
    policy.load_weights(3, other.state_dict())
    assert policy.version == 3
    assert policy.chat([conversation("Go.")], [[]], GREEDY, mode="text")[0].raw != before
    wrong = {name: torch.zeros(1) if name.endswith("norm.weight") else value for name, value in other.state_dict().items()}
    with pytest.raises(RuntimeError, match="size mismatch"):
        policy.load_weights(4, wrong)


def next_token_logits(policy: TransformersPolicy, prompts: list[list[int]]) -> torch.Tensor:
    """The first generated token's logits, through `model_inputs` (system turns from the cache)."""
    inputs = policy.model_inputs(prompts, max_new_tokens=1)
    cache, mask = inputs["past_key_values"], inputs["attention_mask"]
    start = cache.get_seq_length()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        return policy.model(input_ids=inputs["input_ids"][:, start:], attention_mask=mask,
                            position_ids=positions[:, start:], past_key_values=cache).logits[:, -1]


def test_cached_system_turns_give_the_logits_of_each_prompt_alone():
    policy = TransformersPolicy(*tiny_model(seed=0))
    conversations = [conversation("Go."), [Message(role="user", content="Convert 12 km, please, into miles now.")],
                     conversation("A much longer request, so that the rows differ in length after the system turn.")]
    tools = [[SEARCH, CONVERT], [CONVERT], [SEARCH, CONVERT]]
    prompts = [policy.tokenizer(render(policy.tokenizer, c, t), add_special_tokens=False)["input_ids"]
               for c, t in zip(conversations, tools)]
    assert next_token_logits(policy, prompts) is not None and len(policy._prefixes) == 2  # two distinct system turns

    def alone() -> torch.Tensor:
        with torch.inference_mode():
            return torch.stack([policy.model(torch.tensor([ids])).logits[0, -1] for ids in prompts])

    torch.testing.assert_close(next_token_logits(policy, prompts), alone(), atol=1e-4, rtol=1e-4)
    policy.load_weights(1, tiny_model(seed=1)[0].state_dict())  # the cached turns were computed by the old weights
    torch.testing.assert_close(next_token_logits(policy, prompts), alone(), atol=1e-4, rtol=1e-4)


def test_turns_every_row_shares_are_cached_whole():
    policy = TransformersPolicy(*tiny_model(seed=0))
    shots = [Message(role="system", content="Answer in JSON."), Message(role="user", content="an example"),
             Message(role="assistant", content='{"query": "an example"}')]
    rows = [[*shots, Message(role="user", content=text)] for text in ("first", "a longer second one", "first")]
    prompts = [policy.tokenizer(render(policy.tokenizer, c, []), add_special_tokens=False)["input_ids"] for c in rows]
    system = policy._cached_lengths(prompts[:1])[0]
    shared = policy._cached_lengths(prompts)
    assert len(set(shared)) == 1 and shared[0] > system  # the examples too, not just the system turn
    assert prompts[0][:shared[0]] == prompts[1][:shared[0]] and prompts[0][shared[0]] == policy.turn_open_id
    with torch.inference_mode():
        alone = torch.stack([policy.model(torch.tensor([ids])).logits[0, -1] for ids in prompts])
    torch.testing.assert_close(next_token_logits(policy, prompts), alone, atol=1e-4, rtol=1e-4)


# --- the real model --------------------------------------------------------------------------

def test_smollm2_calls_a_weather_tool():
    policy = TransformersPolicy(*load_default_model())
    weather = tool("get_weather", {"city": {"type": "string"}}, ["city"])
    (reply,) = policy.chat([[Message(role="user", content="What is the weather in Paris today?")]], [[weather]],
                           Sampling(temperature=0, max_new_tokens=40))
    assert reply.parse_error is None, reply.raw
    (call,) = reply.message.tool_calls
    assert call.function.name == "get_weather" and isinstance(call.function.arguments["city"], str)


def test_smollm2_replies_are_the_same_with_and_without_the_system_turn_cache():
    model, tokenizer = load_default_model()
    weather = tool("get_weather", {"city": {"type": "string"}}, ["city"])
    batch = [[Message(role="user", content="What is the weather in Paris today?")],
             [Message(role="user", content="Convert 3 km to miles.")],
             [Message(role="user", content="Is it raining in Lyon, and how hard?")]]
    tools = [[weather], [CONVERT], [weather]]
    sampling = Sampling(temperature=0, max_new_tokens=40)
    cached = TransformersPolicy(model, tokenizer).chat(batch, tools, sampling)
    plain = TransformersPolicy(model, tokenizer, prefix_cache=False).chat(batch, tools, sampling)
    assert [reply.raw for reply in cached] == [reply.raw for reply in plain]
    assert all(reply.parse_error is None for reply in cached), [reply.raw for reply in cached]


def test_published_weights_become_the_models_weights_without_a_copy():
    """numpy arrays (Ray's object store hands them out as views) are adopted as they are, ties included."""
    policy = TransformersPolicy(*tiny_model(seed=0))
    other, _ = tiny_model(seed=1)
    wire = to_wire(other.state_dict())
    policy.load_weights(2, wire)
    weights = policy.model.state_dict()
    for name, array in wire.items():
        assert weights[name].data_ptr() == array.ctypes.data, name
    assert policy.model.get_input_embeddings().weight.data_ptr() == policy.model.get_output_embeddings().weight.data_ptr()
    input_ids = torch.tensor([[1, 20, 300, 42]])
    with torch.inference_mode():
        torch.testing.assert_close(policy.model(input_ids).logits, other(input_ids).logits)


def test_bf16_published_weights_arrive_in_the_models_own_dtype():
    policy = TransformersPolicy(*tiny_model(seed=0))
    other, _ = tiny_model(seed=1)
    wire = to_wire(other.state_dict(), "bf16")
    assert {array.dtype for array in wire.values()} == {np.dtype(np.uint16)}  # half the bytes in transit
    policy.load_weights(3, wire)
    for name, tensor in other.state_dict().items():
        loaded = policy.model.state_dict()[name]
        assert loaded.dtype == torch.float32
        torch.testing.assert_close(loaded, tensor.to(torch.bfloat16).float(), rtol=0, atol=0)


def test_a_torch_state_dict_is_copied_not_shared():
    policy = TransformersPolicy(*tiny_model(seed=0))
    other, _ = tiny_model(seed=1)
    policy.load_weights(1, other.state_dict())
    before = policy.model.lm_head.weight.clone()
    with torch.no_grad():
        other.lm_head.weight.add_(1.0)
    torch.testing.assert_close(policy.model.lm_head.weight, before)
