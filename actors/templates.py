"""A ChatML chat template with tools, for models whose own template has none (SmolLM2).

The format is Qwen2.5's (Hermes style), so models trained on it recognise it:

    <|im_start|>system
    {system prompt}

    # Tools
    ... <tools>
    {"type": "function", "function": {...}}     one tool per line
    </tools> ...<|im_end|>
    <|im_start|>user
    {query}<|im_end|>
    <|im_start|>assistant
    <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call><|im_end|>
    <|im_start|>user
    <tool_response>
    {tool result}
    </tool_response><|im_end|>

One difference from Qwen: no newlines inside <tool_call>...</tool_call>, so the rendered call is
exactly what the policy's grammar decodes (literal tag, compact JSON with ", " and ": ", tag).
Each assistant turn's body and its closing <|im_end|> sit inside `{% generation %}` blocks, so
`apply_chat_template(..., return_dict=True, return_assistant_tokens_mask=True)` marks exactly
the tokens the model produced: what a learner trains on.
"""
from __future__ import annotations

from typing import Any

from replay.episode import Message
from replay.export import message_to_chat

DEFAULT_SYSTEM = "You are a helpful assistant."

TOOL_TEMPLATE = (
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system = messages[0].content -%}{%- set messages = messages[1:] -%}"
    "{%- else -%}{%- set system = '" + DEFAULT_SYSTEM + "' -%}{%- endif -%}"
    "{{- '<|im_start|>system\\n' + system }}"
    "{%- if tools -%}"
    "{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{ '\\n' + (tool | tojson) }}{% endfor -%}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}</tool_call>' }}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' }}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation -%}"
    "{{- message.content if message.content is string else '' }}"
    "{%- for call in message.tool_calls or [] -%}"
    "{%- set call = call.function if call.function is defined else call -%}"
    "{%- if message.content or not loop.first %}{{ '\\n' }}{% endif -%}"
    "{{- '<tool_call>{\"name\": ' + (call.name | tojson) + ', \"arguments\": ' }}"
    "{{- call.arguments if call.arguments is string else (call.arguments | tojson) }}"
    "{{- '}</tool_call>' }}"
    "{%- endfor -%}"
    "{{- '<|im_end|>' }}"
    "{%- endgeneration -%}"
    "{{- '\\n' }}"
    "{%- elif message.role == 'tool' -%}"
    "{%- if loop.first or loop.previtem.role != 'tool' %}{{ '<|im_start|>user' }}{% endif -%}"
    "{{- '\\n<tool_response>\\n' + (message.content if message.content is string else '') + '\\n</tool_response>' }}"
    "{%- if loop.last or loop.nextitem.role != 'tool' %}{{ '<|im_end|>\\n' }}{% endif -%}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + (message.content if message.content is string else '') + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif -%}"
)


def supports_tools(tokenizer) -> bool:
    """Whether the tokenizer's own chat template renders a `tools` list (HF templates name it so)."""
    template = tokenizer.chat_template
    return isinstance(template, str) and "tools" in template


def ensure_tool_template(tokenizer):
    """Install TOOL_TEMPLATE on a tokenizer whose template cannot render tools; returns the tokenizer."""
    if not supports_tools(tokenizer):
        tokenizer.chat_template = TOOL_TEMPLATE
    return tokenizer


def render(tokenizer, messages: list[Message], tools: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
    """The prompt text for a conversation and its tools, ending with the assistant header."""
    return tokenizer.apply_chat_template(
        [message_to_chat(m) for m in messages], tools=tools or None, tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
