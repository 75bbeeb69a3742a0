"""The ``openai-completions`` wire: chat bodies out, ``chat.completion.chunk`` s in, and embeddings.

Request bodies follow what reached the upstream from the published gateway
(http-openai-observed.md §1.1, recordings ``b01``/``b24``/``c02``): keys in the order
``model, messages, stream, stream_options, [temperature, top_p, frequency_penalty,
presence_penalty, seed, stop, response_format], tools, tool_choice, max_completion_tokens``;
``stream_options.include_usage`` on every streamed call unless ``compat.supportsUsageInStreaming``
is explicitly false (the published gateway sends it even without the flag, §9 item 4);
``tool_choice:"auto"`` whenever tools are present unless the request names another choice.
Embeddings (§1.5): a string input goes as a one-element array; ``encoding_format`` never goes
upstream (:func:`to_base64` encodes locally, as OpenAI does).
"""

from __future__ import annotations

import base64
import json
import struct
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

API = "openai-completions"

#: Chunk ``finish_reason`` values passed through as they are; others (``function_call``, ``eos``) are mapped.
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter",
           "function_call": "tool_calls", "eos": "stop", "eos_token": "stop"}


def join_url(base_url: str, path: str) -> str:
    """``{baseUrl}/{path}`` with exactly one slash between them (``baseUrl`` usually ends in ``/v1``)."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def chat_url(req: ModelRequest) -> str:
    """``POST {baseUrl}/chat/completions``."""
    return join_url(req.base_url, "chat/completions")


def request_headers(api_key: str | None, extra: dict[str, str]) -> dict[str, str]:
    """Headers for a call: JSON in and out, ``Authorization: Bearer <key>`` when there is a key.

    The configured ``headers`` come last and win (a proxy may want its own ``Authorization``).
    """
    headers = {"accept": "application/json", "content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    for name, value in extra.items():
        headers[name.lower()] = value
    return headers


def _parts(content: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            out.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            out.append({"type": "image_url", "image_url": {"url": part.as_url()}})
    return out


def _message(msg: ChatMessage, req: ModelRequest) -> dict[str, Any]:
    strings = bool(req.compat.requires_string_content)
    if msg.role == "assistant":
        text = msg.text()
        out: dict[str, Any] = {"role": "assistant", "content": text if (text or not msg.tool_calls) else None}
        if msg.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in msg.tool_calls
            ]
        return out
    if msg.role == "tool":
        out = {"role": "tool", "content": msg.text(), "tool_call_id": msg.tool_call_id or ""}
        if req.compat.requires_tool_result_name and msg.name:
            out["name"] = msg.name
        return out
    if isinstance(msg.content, list) and not strings:
        return {"role": msg.role, "content": _parts(msg.content)}
    return {"role": msg.role, "content": msg.text()}


def chat_messages(req: ModelRequest) -> list[dict[str, Any]]:
    """The ``messages`` array: the system prompt first, then the conversation."""
    out: list[dict[str, Any]] = []
    if req.system:
        out.append({"role": "system", "content": req.system})
    out.extend(_message(m, req) for m in req.messages)
    return out


def tools_array(req: ModelRequest) -> list[dict[str, Any]]:
    """The ``tools`` array of function schemas."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters or {"type": "object", "properties": {}},
            },
        }
        for t in req.tools
    ]


def build_chat_body(req: ModelRequest) -> dict[str, Any]:
    """The JSON body of ``POST {baseUrl}/chat/completions``, keys in the published order."""
    compat = req.compat
    body: dict[str, Any] = {"model": req.model, "messages": chat_messages(req)}
    if req.stream:
        body["stream"] = True
        if compat.supports_usage_in_streaming is not False:
            body["stream_options"] = {"include_usage": True}
    if req.temperature is not None and compat.supports_temperature is not False:
        body["temperature"] = req.temperature
    for key in ("top_p", "frequency_penalty", "presence_penalty", "seed", "stop", "response_format"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if req.tools and compat.supports_tools is not False:
        body["tools"] = tools_array(req)
        body["tool_choice"] = req.tool_choice if req.tool_choice is not None else "auto"
    if req.max_tokens is not None:
        body[compat.max_tokens_field or "max_completion_tokens"] = req.max_tokens
    body.update(req.extra_body)
    return body


# --- responses -----------------------------------------------------------------------------------


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def usage_from_openai(usage: dict[str, Any]) -> UsageReport:
    """Normalize ``{prompt_tokens, completion_tokens, total_tokens, *_details}`` (§2.6).

    ``input`` excludes the cached prompt tokens, which go to ``cache_read``.
    """
    prompt = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    output = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    pdetails = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    cdetails = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    cached = _int(pdetails.get("cached_tokens")) if isinstance(pdetails, dict) else 0
    written = _int(pdetails.get("cache_write_tokens")) if isinstance(pdetails, dict) else 0
    reasoning = _int(cdetails.get("reasoning_tokens")) if isinstance(cdetails, dict) else 0
    cached = min(cached, prompt)
    written = min(written, prompt - cached)
    total = _int(usage.get("total_tokens")) or prompt + output
    return UsageReport(
        input=prompt - cached - written,
        output=output,
        cache_read=cached,
        cache_write=written,
        reasoning=reasoning,
        total=total,
    )


class ChatStreamParser:
    """Turns ``chat.completion.chunk`` objects into :data:`StreamEvent` s.

    Stateful only where the wire is: ``finish_reason`` comes before the usage chunk, so
    :class:`StreamEnd` is emitted by :meth:`finish` (at ``[DONE]`` or the end of the body).
    Servers that reuse ``index`` 0 for parallel calls with different ids get distinct indices.
    """

    __slots__ = ("finish_reason", "response_id", "response_model", "_index", "_ids", "_next", "_done")

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.response_id: str | None = None
        self.response_model: str | None = None
        self._index: dict[int, int] = {}
        self._ids: dict[int, str] = {}
        self._next = 0
        self._done = False

    def parse_chunk(self, obj: Any) -> list[StreamEvent]:
        """Events in one decoded chunk. An ``{"error":…}`` chunk raises :class:`ProviderError`."""
        if not isinstance(obj, dict):
            raise ProviderError(PROTOCOL, f"unexpected stream chunk: {str(obj)[:200]}")
        if "error" in obj and not obj.get("choices"):
            raise error_from_stream(obj)
        if isinstance(obj.get("id"), str) and self.response_id is None:
            self.response_id = obj["id"]
        if isinstance(obj.get("model"), str) and self.response_model is None:
            self.response_model = obj["model"]
        events: list[StreamEvent] = []
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            if isinstance(delta, dict):
                events.extend(self._delta(delta))
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self.finish_reason = _FINISH.get(reason, reason)
        usage = obj.get("usage")
        if isinstance(usage, dict) and usage:
            events.append(usage_from_openai(usage))
        return events

    def _delta(self, delta: dict[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for key in ("reasoning_content", "reasoning"):
            value = delta.get(key)
            if isinstance(value, str) and value:
                events.append(ReasoningDelta(value))
                break
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.append(TextDelta(content))
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            fn = call.get("function") or {}
            wire_index = call.get("index", 0) if isinstance(call.get("index", 0), int) else 0
            call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
            index = self._slot(wire_index, call_id)
            name = fn.get("name") if isinstance(fn.get("name"), str) and fn.get("name") else None
            args = fn.get("arguments")
            if isinstance(args, dict):  # some servers send an object, not JSON text
                args = json.dumps(args, separators=(",", ":"))
            events.append(ToolCallDelta(index, call_id, name, args if isinstance(args, str) else ""))
        return events

    def _slot(self, wire_index: int, call_id: str | None) -> int:
        known = self._ids.get(wire_index)
        if wire_index not in self._index or (call_id is not None and known is not None and call_id != known):
            self._index[wire_index] = self._next
            self._next += 1
            if call_id is not None:
                self._ids[wire_index] = call_id
            else:
                self._ids.pop(wire_index, None)
        elif call_id is not None and known is None:
            self._ids[wire_index] = call_id
        return self._index[wire_index]

    def finish(self) -> list[StreamEvent]:
        """The closing :class:`StreamEnd`, once. A stream that never said why it stopped is cut off."""
        if self._done:
            return []
        self._done = True
        if self.finish_reason is None:
            raise ProviderError(PROTOCOL, "model stream ended before a finish_reason")
        return [StreamEnd(finish_reason=self.finish_reason, response_id=self.response_id,
                          response_model=self.response_model)]


def parse_completion(obj: Any) -> list[StreamEvent]:
    """A non-streamed ``chat.completion`` as the same events a stream would give."""
    if isinstance(obj, dict) and "error" in obj and not obj.get("choices"):
        raise error_from_stream(obj)
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list) or not obj["choices"]:
        raise ProviderError(PROTOCOL, f"unexpected completion body: {str(obj)[:200]}")
    parser = ChatStreamParser()
    events = parser.parse_chunk(obj)
    if parser.finish_reason is None:
        parser.finish_reason = "tool_calls" if any(isinstance(e, ToolCallDelta) for e in events) else "stop"
    return events + parser.finish()


# --- embeddings ----------------------------------------------------------------------------------


def embeddings_url(base_url: str) -> str:
    """``POST {baseUrl}/embeddings``."""
    return join_url(base_url, "embeddings")


def build_embeddings_body(model: str, inputs: str | list[str], dimensions: int | None = None) -> dict[str, Any]:
    """``{"model", "input": [..], "dimensions"?}``; never ``encoding_format`` (§1.5)."""
    body: dict[str, Any] = {"model": model, "input": [inputs] if isinstance(inputs, str) else list(inputs)}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return body


def parse_embeddings(obj: Any, count: int) -> list[list[float]]:
    """The vectors of an embeddings answer, in input order (``data[].index``); base64 items decoded."""
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, list) or len(data) != count:
        raise ProviderError(PROTOCOL, f"embeddings answer has {len(data) if isinstance(data, list) else 'no'} "
                                      f"vectors for {count} inputs")
    vectors: list[list[float] | None] = [None] * count
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, dict) else position
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vector, str):
            vector = from_base64(vector)
        if not isinstance(index, int) or not 0 <= index < count or not isinstance(vector, list):
            raise ProviderError(PROTOCOL, "malformed embeddings item")
        vectors[index] = [float(x) for x in vector]
    if any(v is None for v in vectors):
        raise ProviderError(PROTOCOL, "embeddings answer repeats an index")
    return [v for v in vectors if v is not None]


def to_base64(vector: list[float]) -> str:
    """OpenAI's ``encoding_format:"base64"``: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def from_base64(text: str) -> list[float]:
    """The inverse of :func:`to_base64`."""
    raw = base64.b64decode(text)
    if len(raw) % 4:
        raise ProviderError(PROTOCOL, "base64 embedding is not a whole number of float32 values")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))
