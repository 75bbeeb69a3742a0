"""Chat completion answers: the JSON body from a finished run, and the SSE encoder for a running one.

http-agents-channels.md §1.6.4, §2.5–§2.6; observed in http-openai-observed.md §3.1–§3.2, §3.6.
Assistant text is shown *trimmed*: the stream never sends leading whitespace and holds trailing
whitespace back until more text follows it (``"tick0 "`` → ``"tick0"``, then ``" tick1"``, h06);
what is still held at the end is dropped, as the non-streamed content is trimmed too.

A stream is, frame by frame (each ``data: <compact json>\\n\\n``):

====  ================================================================================
1     role chunk ``delta:{role:"assistant"}`` — written before the run answers
2     content chunks ``delta:{content}`` (none while a forcing ``tool_choice`` is active)
3     the text not streamed yet; per tool call: ``{index,id,type:"function",function:{name,
      arguments:""}}`` then argument fragments of at most 256 UTF-16 units
4     **always** a finish chunk ``delta:{}`` with ``finish_reason`` stop | length | tool_calls
5     with ``stream_options.include_usage``: ``choices:[]`` and ``usage``
6     ``data: [DONE]``
====  ================================================================================

A failure after the role chunk is one ``data: {"error":{…}}`` frame, then ``[DONE]``.
"""

from __future__ import annotations

from typing import Any, Final

from . import failures
from .chat import ChatPlan
from .jsonbody import JS_WHITESPACE, js_trim
from .wire import DONE, Answer, data_frame, json_answer

NO_RESPONSE: Final = "No response from OpenClaw."
UNREPRESENTABLE: Final = "Assistant output cannot be represented as an append-only response stream."
ARGUMENT_FRAGMENT: Final = 256


def chat_usage(result: Any) -> dict[str, Any]:
    """``prompt_tokens`` (input + cache reads), ``completion_tokens``, ``total_tokens``; details only when non-zero.

    The run's aggregate usage is preferred when it is non-zero, else the last model call's.
    """
    u = run_usage(result)
    prompt = max(0, u.input + u.cache_read)
    completion = max(0, u.output)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": max(prompt + completion, max(0, u.total)),
    }
    if u.cache_read > 0:
        out["prompt_tokens_details"] = {"cached_tokens": u.cache_read}
    reasoning = getattr(u, "reasoning", 0) or 0
    if reasoning > 0:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def run_usage(result: Any) -> Any:
    def nonzero(u: Any) -> bool:
        return any((u.input, u.output, u.cache_read, u.cache_write, u.total, getattr(u, "reasoning", 0) or 0))

    aggregate, last = result.usage, result.last_usage
    return aggregate if nonzero(aggregate) or not nonzero(last) else last


def _tool_calls(result: Any) -> list[Any]:
    return list(result.tool_calls) if result.stop_reason == "tool_calls" and result.tool_calls else []


def _finish_reason(result: Any) -> str:
    return "length" if result.stop_reason == "length" else "stop"


def chat_completion(plan: ChatPlan, result: Any) -> Answer:
    """The non-streamed answer to a finished run (``TurnResult``), success or failure."""
    if result.status != "ok":
        failure = failures.non_stream(result)
        return json_answer(failure.status, failure.envelope())
    calls = _tool_calls(result)
    if plan.requirement is not None and not plan.requirement.satisfied(calls):
        return json_answer(502, {"error": {"message": plan.requirement.unsatisfied_message, "type": "api_error"}})
    text = js_trim(result.text or "")
    if calls:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text,
            "tool_calls": [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls],
        }
        finish = "tool_calls"
    else:
        message = {"role": "assistant", "content": text or NO_RESPONSE}
        finish = _finish_reason(result)
    body = {
        "id": plan.run_id,
        "object": "chat.completion",
        "created": plan.created,
        "model": plan.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": chat_usage(result),
    }
    return json_answer(200, body)


def split_arguments(arguments: str, size: int = ARGUMENT_FRAGMENT) -> list[str]:
    """Argument fragments of at most ``size`` UTF-16 units, never splitting a surrogate pair; ``[""]`` if empty."""
    out: list[str] = []
    piece: list[str] = []
    units = 0
    for ch in arguments:
        width = 2 if ord(ch) > 0xFFFF else 1
        if units + width > size and piece:
            out.append("".join(piece))
            piece, units = [], 0
        piece.append(ch)
        units += width
    if piece or not out:
        out.append("".join(piece))
    return out


class ShownText:
    """The assistant text of a streamed run, as the client sees it: trimmed, appended to, never rewritten.

    :meth:`update` takes a delta (or the whole text so far) and returns the piece to send now
    (``""`` while only whitespace grew, or while ``hold`` — a forcing ``tool_choice`` — is set).
    The work per delta is the delta's size: leading whitespace is dropped until the first visible
    character, trailing whitespace is held (as parts) until a visible character follows it, and
    the text is kept as parts, joined only by :meth:`final`.
    A non-append update sets :attr:`broken`: the stream must then end in an error.
    :meth:`final` is the text the stream ends with: what streamed, else the run's result text.
    """

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.broken = False
        self._parts: list[str] = []  # everything the run said so far
        self._size = 0  # its length
        self._started = False  # a visible character went out (leading whitespace is dropped)
        self._held: list[str] = []  # whitespace after the last piece sent, sent when text follows
        self._streamed: list[str] = []  # what went out
        self._streamed_size = 0

    @property
    def text(self) -> str:
        """Everything the run said so far."""
        return _joined(self._parts)

    @property
    def streamed(self) -> str:
        """What went out."""
        return _joined(self._streamed)

    def update(self, text: str | None = None, delta: str | None = None) -> str:
        if text is not None and self.hold:  # nothing streams, so nothing can be contradicted
            self._parts, self._size = [text], len(text)
            return ""
        if text is not None:  # a whole text: it must extend the last one
            if len(text) < self._size or not text.startswith(self.text):
                self.broken = True
            delta = text[self._size:]
        delta = delta or ""
        if delta:
            self._parts.append(delta)
            self._size += len(delta)
        if self.hold or self.broken or not delta:
            return ""
        if not self._started:
            delta = delta.lstrip(JS_WHITESPACE)
            if not delta:
                return ""
            self._started = True
        body = delta.rstrip(JS_WHITESPACE)
        if not body:
            self._held.append(delta)
            return ""
        piece = "".join(self._held) + body if self._held else body
        self._held = [delta[len(body):]] if len(body) < len(delta) else []
        self._streamed.append(piece)
        self._streamed_size += len(piece)
        return piece

    def final(self, result_text: str | None, fallback: str) -> str | None:
        """The whole final text, or ``None`` when it cannot extend what was streamed."""
        if self.broken:
            return None
        if not self._streamed_size:
            return js_trim(result_text or "") or fallback
        final = js_trim(self.text)
        return final if final.startswith(self.streamed) else None

    def tail(self, final: str) -> str:
        return final[self._streamed_size:]


def _joined(parts: list[str]) -> str:
    """``parts`` as one string, kept as one part from then on (each join copies once)."""
    if len(parts) > 1:
        parts[:] = ["".join(parts)]
    return parts[0] if parts else ""


def assistant_data(data: dict[str, Any]) -> tuple[str | None, str | None] | None:
    """``(text, delta)`` of an ``agent`` event's ``assistant`` data; ``None`` for replaceable or empty ones."""
    if data.get("replaceable") is True:
        return None
    text = data.get("text") if isinstance(data.get("text"), str) else None
    delta = data.get("delta") if isinstance(data.get("delta"), str) else None
    if delta is not None and data.get("replace") is not True:
        return None, delta  # an append: the delta is enough (the whole text is not compared again)
    return None if text is None and delta is None else (text, None if text is not None else delta)


class ChatStream:
    """The SSE frames of one streamed chat completion. Feed it the run's progress; write what it returns.

    :meth:`open` (the role chunk, before the run starts), then :meth:`assistant` for every text
    update, then exactly one of :meth:`finish` (the run's ``TurnResult``) or :meth:`fail`. After
    the end every call returns ``b""``; :attr:`closed` says so.
    """

    def __init__(self, plan: ChatPlan) -> None:
        self.plan = plan
        self.closed = False
        self.shown = ShownText(hold=plan.requirement is not None)

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        plan = self.plan
        return data_frame({"id": plan.run_id, "object": "chat.completion.chunk", "created": plan.created,
                           "model": plan.model, "choices": choices, **extra})

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": finish}])

    def open(self) -> bytes:
        return self._delta({"role": "assistant"})

    def assistant(self, *, text: str | None = None, delta: str | None = None) -> bytes:
        """The run's assistant text grew: ``text`` is the whole text so far (else ``delta`` is appended)."""
        if self.closed:
            return b""
        piece = self.shown.update(text, delta)
        return self._delta({"content": piece}) if piece else b""

    def event(self, data: dict[str, Any]) -> bytes:
        """An ``agent`` event's ``assistant`` data (``{text, delta, …}``); replaceable snapshots are ignored."""
        found = assistant_data(data)
        return b"" if found is None else self.assistant(text=found[0], delta=found[1])

    def fail(self, message: str = failures.INTERNAL, type_: str = "api_error") -> bytes:
        """End with an error frame and ``[DONE]``."""
        if self.closed:
            return b""
        self.closed = True
        return data_frame({"error": {"message": message, "type": type_}}) + DONE

    def finish(self, result: Any) -> bytes:
        """The closing frames for the run's result: tail, tool calls, finish chunk, usage, ``[DONE]``."""
        if self.closed:
            return b""
        if result.status != "ok":
            frame = failures.stream_frame(result)["error"]
            return self.fail(frame["message"], frame["type"])
        if self.shown.broken:
            return self.fail(UNREPRESENTABLE)
        calls = _tool_calls(result)
        requirement = self.plan.requirement
        if requirement is not None and not requirement.satisfied(calls):
            return self.fail(requirement.unsatisfied_message)
        final = self.shown.final(result.text, "" if calls else NO_RESPONSE)
        if final is None:
            return self.fail(UNREPRESENTABLE)
        tail = self.shown.tail(final)
        out = [self._delta({"content": tail})] if tail else []
        for index, call in enumerate(calls):
            head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
            out.append(self._delta({"tool_calls": [head]}))
            for piece in split_arguments(call.arguments):
                out.append(self._delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        out.append(self._delta({}, "tool_calls" if calls else _finish_reason(result)))
        if self.plan.include_usage:
            out.append(self._chunk([], usage=chat_usage(result)))
        out.append(DONE)
        self.closed = True
        return b"".join(out)


__all__ = [
    "ARGUMENT_FRAGMENT",
    "NO_RESPONSE",
    "UNREPRESENTABLE",
    "ChatStream",
    "ShownText",
    "assistant_data",
    "chat_completion",
    "chat_usage",
    "run_usage",
    "split_arguments",
]
