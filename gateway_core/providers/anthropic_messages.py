"""The ``anthropic-messages`` wire: Messages API bodies out, its SSE events in.

``POST {baseUrl}/v1/messages``, or ``{baseUrl}/messages`` when the configured ``baseUrl`` already
ends in ``/v1`` (the published gateway's rule; the docs configure Anthropic-compatible providers
as ``https://api.minimax.io/anthropic``), default base ``https://api.anthropic.com``. Headers
``x-api-key`` and ``anthropic-version: 2023-06-01``. The system prompt is the top-level
``system``; tool calls are ``tool_use`` blocks, their results ``tool_result`` blocks inside a
user message (consecutive results and user turns are merged: the API wants one user turn after
a ``tool_use`` turn). Stream events: ``message_start``, ``content_block_start``/``_delta``/``_stop``,
``message_delta`` (cumulative output usage, ``stop_reason``), ``message_stop``, ``ping``, ``error``.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import PROTOCOL, ProviderError, error_from_stream
from .types import (
    ChatMessage,
    ImagePart,
    ModelRequest,
    ReasoningDelta,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCallDelta,
    UsageReport,
)

API = "anthropic-messages"
DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
#: ``max_tokens`` is required by the Messages API; used when the request leaves it unset.
DEFAULT_MAX_TOKENS = 4096

_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
         "pause_turn": "stop", "refusal": "content_filter"}


def messages_url(base_url: str) -> str:
    """The Messages endpoint for a configured ``baseUrl``."""
    base = (base_url.strip() or DEFAULT_BASE_URL).rstrip("/")
    return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"


def request_headers(api_key: str | None, extra: dict[str, str]) -> dict[str, str]:
    """``content-type``, ``anthropic-version``, ``x-api-key``; configured headers last."""
    headers = {"accept": "application/json", "content-type": "application/json",
               "anthropic-version": ANTHROPIC_VERSION}
    if api_key:
        headers["x-api-key"] = api_key
    for name, value in extra.items():
        headers[name.lower()] = value
    return headers


def _image(part: ImagePart) -> dict[str, Any]:
    url = part.as_url()
    if url.startswith("data:") and ";base64," in url:
        mime, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": mime or "image/png", "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(msg: ChatMessage) -> list[dict[str, Any]]:
    if msg.role == "tool":
        return [{"type": "tool_result", "tool_use_id": msg.tool_call_id or "", "content": msg.text()}]
    blocks: list[dict[str, Any]] = []
    if isinstance(msg.content, str):
        if msg.content:
            blocks.append({"type": "text", "text": msg.content})
    elif msg.content:
        for part in msg.content:
            if isinstance(part, TextPart) and part.text:
                blocks.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                blocks.append(_image(part))
    for call in msg.tool_calls:
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = {}
        if not isinstance(arguments, dict):
            arguments = {"value": arguments}
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return blocks


def messages_and_system(req: ModelRequest) -> tuple[list[dict[str, Any]], str | None]:
    """The ``messages`` array (roles alternating, merged where needed) and the ``system`` text."""
    system = [req.system] if req.system else []
    out: list[dict[str, Any]] = []
    for msg in req.messages:
        if msg.role == "system":
            if msg.text():
                system.append(msg.text())
            continue
        role = "assistant" if msg.role == "assistant" else "user"
        blocks = _blocks(msg)
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            prev = out[-1]
            if isinstance(prev["content"], str):
                prev["content"] = [{"type": "text", "text": prev["content"]}]
            prev["content"].extend(blocks)
            continue
        simple = len(blocks) == 1 and blocks[0]["type"] == "text" and isinstance(msg.content, str)
        out.append({"role": role, "content": blocks[0]["text"] if simple else blocks})
    return out, ("\n\n".join(system) if system else None)


def _tool_choice(choice: str | dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(choice, dict):
        if choice.get("type") == "function":
            return {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
        return choice
    return {"type": {"required": "any", "none": "none"}.get(choice or "auto", "auto")}


def build_messages_body(req: ModelRequest) -> dict[str, Any]:
    """The JSON body of ``POST …/v1/messages``."""
    messages, system = messages_and_system(req)
    body: dict[str, Any] = {"model": req.model, "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS}
    if system:
        body["system"] = system
    body["messages"] = messages
    if req.stream:
        body["stream"] = True
    if req.temperature is not None and req.compat.supports_temperature is not False:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop is not None:
        body["stop_sequences"] = [req.stop] if isinstance(req.stop, str) else list(req.stop)
    if req.tools and req.compat.supports_tools is not False:
        body["tools"] = [
            {"name": t.name, "description": t.description,
             "input_schema": t.parameters or {"type": "object", "properties": {}}}
            for t in req.tools
        ]
        body["tool_choice"] = _tool_choice(req.tool_choice)
    body.update(req.extra_body)
    return body


def _n(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class MessagesStreamParser:
    """Anthropic stream events (decoded ``data:`` objects) → :data:`StreamEvent` s.

    Tool-use blocks are numbered 0, 1, … in the order they start, whatever their content-block
    index. Usage is reported once, at ``message_stop``: input and cache counts from
    ``message_start``, output (cumulative) from the last ``message_delta``.
    """

    __slots__ = ("_tools", "_kinds", "_usage", "_stop", "_id", "_model", "_done", "_stopped")

    def __init__(self) -> None:
        self._tools: dict[int, int] = {}
        self._kinds: dict[int, str] = {}
        self._usage: dict[str, int] = {}
        self._stop: str | None = None
        self._id: str | None = None
        self._model: str | None = None
        self._done = False
        self._stopped = False

    def _take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
                if key in usage and usage[key] is not None:
                    self._usage[key] = _n(usage[key])

    def usage(self) -> UsageReport:
        """The usage seen so far, normalized (§2.6)."""
        u = self._usage
        inp, out = u.get("input_tokens", 0), u.get("output_tokens", 0)
        read, write = u.get("cache_read_input_tokens", 0), u.get("cache_creation_input_tokens", 0)
        return UsageReport(input=inp, output=out, cache_read=read, cache_write=write, total=inp + out + read + write)

    def parse_event(self, obj: Any) -> list[StreamEvent]:
        """Events for one SSE ``data`` object; an ``error`` event raises :class:`ProviderError`."""
        if not isinstance(obj, dict):
            raise ProviderError(PROTOCOL, f"unexpected stream event: {str(obj)[:200]}")
        kind = obj.get("type")
        if kind == "error":
            raise error_from_stream(obj)
        if kind == "message_start":
            message = obj.get("message") or {}
            self._id = message.get("id") if isinstance(message.get("id"), str) else None
            self._model = message.get("model") if isinstance(message.get("model"), str) else None
            self._take_usage(message.get("usage"))
            return []
        if kind == "content_block_start":
            index = obj.get("index", 0)
            block = obj.get("content_block") or {}
            btype = block.get("type", "")
            self._kinds[index] = btype
            if btype == "tool_use":
                slot = self._tools.setdefault(index, len(self._tools))
                return [ToolCallDelta(slot, block.get("id") or None, block.get("name") or None, "")]
            if btype == "text" and block.get("text"):
                return [TextDelta(block["text"])]
            if btype == "thinking" and block.get("thinking"):
                return [ReasoningDelta(block["thinking"])]
            return []
        if kind == "content_block_delta":
            index = obj.get("index", 0)
            delta = obj.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                return [TextDelta(delta["text"])]
            if dtype == "thinking_delta" and delta.get("thinking"):
                return [ReasoningDelta(delta["thinking"])]
            if dtype == "input_json_delta":
                slot = self._tools.setdefault(index, len(self._tools))
                return [ToolCallDelta(slot, None, None, delta.get("partial_json") or "")]
            return []
        if kind == "message_delta":
            delta = obj.get("delta") or {}
            if isinstance(delta.get("stop_reason"), str):
                self._stop = delta["stop_reason"]
            self._take_usage(obj.get("usage"))
            return []
        if kind == "message_stop":
            self._stopped = True
            return [self.usage()]
        return []  # ping, content_block_stop, unknown future events

    def finish(self) -> list[StreamEnd]:
        """The closing :class:`StreamEnd`; a stream cut before ``message_stop`` raises."""
        if self._done:
            return []
        self._done = True
        if not self._stopped:
            raise ProviderError(PROTOCOL, "model stream ended before message_stop")
        reason = _STOP.get(self._stop or "end_turn", self._stop or "stop")
        return [StreamEnd(finish_reason=reason, response_id=self._id, response_model=self._model)]


def parse_message(obj: Any) -> list[StreamEvent]:
    """A non-streamed Messages answer as the same events a stream gives."""
    if not isinstance(obj, dict) or obj.get("type") == "error":
        raise error_from_stream(obj) if isinstance(obj, dict) else ProviderError(PROTOCOL, "unexpected body")
    if not isinstance(obj.get("content"), list):
        raise ProviderError(PROTOCOL, f"unexpected message body: {str(obj)[:200]}")
    parser = MessagesStreamParser()
    events: list[StreamEvent] = []
    events += parser.parse_event({"type": "message_start", "message": obj})
    for index, block in enumerate(obj["content"]):
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_use":
            start = dict(block, input=None)
            events += parser.parse_event({"type": "content_block_start", "index": index, "content_block": start})
            args = json.dumps(block.get("input") or {}, separators=(",", ":"))
            events += parser.parse_event({"type": "content_block_delta", "index": index,
                                          "delta": {"type": "input_json_delta", "partial_json": args}})
        else:
            events += parser.parse_event({"type": "content_block_start", "index": index, "content_block": block})
    events += parser.parse_event({"type": "message_delta", "delta": {"stop_reason": obj.get("stop_reason")},
                                  "usage": obj.get("usage")})
    events += parser.parse_event({"type": "message_stop"})
    return events + list(parser.finish())
