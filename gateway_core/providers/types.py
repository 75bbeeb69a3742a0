"""Neutral model-call types: the request the agent loop builds, and the events a provider streams back.

Every adapter (``openai-completions``, ``anthropic-messages``, ``offline``) maps :class:`ModelRequest`
to its wire form and its wire stream back to the same five events, so the agent loop, the HTTP
layer and the raw-stream log never see a provider's dialect. The events are tagged msgspec Structs
(``{"type":"text","text":…}`` in JSON), ready for the ``--raw-stream`` JSONL.

:class:`TurnBuilder` folds a stream of events into the finished assistant turn (text, tool calls
assembled from their fragments, usage, finish reason): the piece every consumer needs.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import Struct

Role = Literal["system", "user", "assistant", "tool"]


class TextPart(Struct, frozen=True, tag="text"):
    """A text content part."""

    text: str


class ImagePart(Struct, frozen=True, tag="image", kw_only=True):
    """An image content part: a URL (``https:`` or ``data:``), or base64 ``data`` with its ``mime`` type."""

    url: str | None = None
    data: str | None = None
    mime: str | None = None

    def as_url(self) -> str:
        """The image as one URL (a ``data:`` URL when it was given as base64 data)."""
        if self.url is not None:
            return self.url
        return f"data:{self.mime or 'image/png'};base64,{self.data or ''}"


ContentPart = TextPart | ImagePart


class ToolCall(Struct, frozen=True):
    """A tool call the model made: ``arguments`` is the JSON text exactly as the model produced it."""

    id: str
    name: str
    arguments: str = "{}"


class ChatMessage(Struct, frozen=True, kw_only=True):
    """One conversation entry.

    ``content`` is a plain string (sent as a JSON string) or a list of parts (sent as an array), so
    the caller decides the wire shape: the published gateway sends the internal-context block as a
    one-part array and every other user turn as a string.
    """

    role: Role
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] = []
    tool_call_id: str | None = None
    name: str | None = None

    def text(self) -> str:
        """The text parts joined with newlines (images dropped)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))


class ToolSpec(Struct, frozen=True, kw_only=True):
    """A function the model may call; ``parameters`` is its JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = {}


class Compat(Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """The ``models.providers.<id>.models[].compat`` flags the adapters honour (``None`` = not set).

    Decode the config object with :func:`compat_from_config`; unknown flags are ignored.
    """

    supports_tools: bool | None = None
    supports_usage_in_streaming: bool | None = None
    supports_temperature: bool | None = None
    requires_string_content: bool | None = None
    requires_tool_result_name: bool | None = None
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None


def compat_from_config(obj: dict[str, Any] | None) -> Compat:
    """``Compat`` from a config ``compat`` object (camelCase keys, unknown keys ignored)."""
    return msgspec.convert(obj or {}, Compat)


class ModelRequest(Struct, frozen=True, kw_only=True):
    """Everything one model call needs, already resolved from config by the caller.

    ``model`` is the provider-local id (``scripted``, not ``upstream/scripted``). ``max_tokens``
    is what goes on the wire (the caller picks the HTTP ``max_tokens`` or the model's
    ``maxTokens``); ``None`` leaves it out, as the published gateway does for an uncatalogued
    model. ``idle_timeout_s`` is ``models.providers.<id>.timeoutSeconds``: no bytes for that long
    ends the call with a ``timeout`` error. ``extra_body`` is merged into the wire body last.
    """

    provider: str
    api: str
    model: str
    base_url: str = ""
    api_key: str | None = None
    headers: dict[str, str] = {}
    system: str | None = None
    messages: list[ChatMessage] = []
    tools: list[ToolSpec] = []
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    compat: Compat = Compat()
    idle_timeout_s: float = 120.0
    stream: bool = True
    extra_body: dict[str, Any] = {}

    @property
    def ref(self) -> str:
        """``provider/model``, as logs and messages name a model."""
        return f"{self.provider}/{self.model}"


# --- stream events -------------------------------------------------------------------------------


class TextDelta(Struct, frozen=True, tag="text"):
    """Visible assistant text, appended."""

    text: str


class ReasoningDelta(Struct, frozen=True, tag="reasoning"):
    """Reasoning text (``reasoning_content``, Anthropic thinking), appended; never shown as the reply."""

    text: str


class ToolCallDelta(Struct, frozen=True, tag="tool_call"):
    """A fragment of tool call ``index``: ``id``/``name`` arrive once (usually first), arguments in pieces."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments_fragment: str = ""


class UsageReport(
    Struct,
    frozen=True,
    tag="usage",
    kw_only=True,
    rename={"cache_read": "cacheRead", "cache_write": "cacheWrite", "reasoning": "reasoningTokens"},
):
    """Token usage normalized as http-agents-channels.md §2.6: ``input`` excludes cached tokens.

    ``total`` is the provider's total when it gave one, else the sum of the parts.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    total: int = 0


class StreamEnd(Struct, frozen=True, tag="end", kw_only=True):
    """The model finished. ``finish_reason`` uses OpenAI's words: stop, length, tool_calls, content_filter."""

    finish_reason: str = "stop"
    response_id: str | None = None
    response_model: str | None = None


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | UsageReport | StreamEnd

_event_decoder: msgspec.json.Decoder[StreamEvent] | None = None


def encode_event(event: StreamEvent) -> bytes:
    """One event as compact JSON (a raw-stream JSONL line without the newline)."""
    return msgspec.json.encode(event)


def decode_event(data: bytes | str) -> StreamEvent:
    """The inverse of :func:`encode_event`."""
    global _event_decoder
    if _event_decoder is None:  # built on first use: keeps the import cheap
        _event_decoder = msgspec.json.Decoder(StreamEvent)
    return _event_decoder.decode(data)


# --- folding a stream into a turn ----------------------------------------------------------------


class AssistantTurn(Struct, frozen=True, kw_only=True):
    """A finished model call: what the agent loop stores and acts on."""

    text: str
    reasoning: str = ""
    tool_calls: list[ToolCall] = []
    usage: UsageReport | None = None
    finish_reason: str = "stop"
    response_id: str | None = None
    response_model: str | None = None


class TurnBuilder:
    """Folds :data:`StreamEvent` s into an :class:`AssistantTurn`.

    Tool-call fragments are joined per ``index`` in first-seen order; a call whose id never
    arrived gets ``call_<index>`` (deterministic, so replays compare equal).
    """

    __slots__ = ("_text", "_reasoning", "_calls", "usage", "end")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, list[Any]] = {}
        self.usage: UsageReport | None = None
        self.end: StreamEnd | None = None

    def feed(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            self._reasoning.append(event.text)
        elif isinstance(event, ToolCallDelta):
            slot = self._calls.setdefault(event.index, [None, None, []])
            if event.id and slot[0] is None:
                slot[0] = event.id
            if event.name and slot[1] is None:
                slot[1] = event.name
            slot[2].append(event.arguments_fragment)
        elif isinstance(event, UsageReport):
            self.usage = event
        elif isinstance(event, StreamEnd):
            self.end = event

    @property
    def text(self) -> str:
        """The visible text so far."""
        return "".join(self._text)

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls so far (arguments ``{}`` when the model sent none)."""
        return [
            ToolCall(id=slot[0] or f"call_{index}", name=slot[1] or "", arguments="".join(slot[2]) or "{}")
            for index, slot in self._calls.items()
        ]

    def result(self) -> AssistantTurn:
        """The turn; before a :class:`StreamEnd` the finish reason says ``tool_calls`` or ``stop``."""
        calls = self.tool_calls
        end = self.end
        finish = end.finish_reason if end is not None else ("tool_calls" if calls else "stop")
        return AssistantTurn(
            text=self.text,
            reasoning="".join(self._reasoning),
            tool_calls=calls,
            usage=self.usage,
            finish_reason=finish,
            response_id=end.response_id if end else None,
            response_model=end.response_model if end else None,
        )


def fold(events: list[StreamEvent]) -> AssistantTurn:
    """Shorthand: a whole list of events as one turn."""
    builder = TurnBuilder()
    for event in events:
        builder.feed(event)
    return builder.result()


# --- embeddings ----------------------------------------------------------------------------------


class EmbeddingsRequest(Struct, frozen=True, kw_only=True):
    """One embeddings call; ``inputs`` as given (a string is sent as a one-element array)."""

    provider: str
    api: str
    model: str
    inputs: str | list[str]
    dimensions: int | None = None
    base_url: str = ""
    api_key: str | None = None
    headers: dict[str, str] = {}
    idle_timeout_s: float = 120.0

    @property
    def count(self) -> int:
        """How many vectors the answer must hold."""
        return 1 if isinstance(self.inputs, str) else len(self.inputs)


class EmbeddingsResult(Struct, frozen=True, kw_only=True):
    """The vectors in input order, the model that made them and the upstream's token usage."""

    model: str
    vectors: list[list[float]]
    prompt_tokens: int = 0
    total_tokens: int = 0
