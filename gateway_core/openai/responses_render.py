"""Responses answers: the response object, and the SSE event sequence (http-openai-observed.md §4).

A response object is ``{id, object:"response", created_at, status, model, output, usage[, error]
[, incomplete_details]}``. Failures answer a *failed response object* (``output:[]``,
``error:{code,message}``) with the mapped status — not the ``{error}`` envelope (j01, k02).

The stream (``event: <type>\\ndata: <json>\\n\\n``, the JSON repeating ``type``, no
``sequence_number``; d02, d14, j02, k03):

=====  ===========================================================================
open   ``response.created``, ``response.in_progress`` (status in_progress, output
       ``[]``, zero usage), ``response.output_item.added`` (message item, ``content:[]``),
       ``response.content_part.added`` — all before the run answers
text   ``response.output_text.delta`` per update (trimmed, trailing whitespace held back)
end    ``output_text.done``, ``content_part.done``, ``output_item.done`` (phase
       ``final_answer``; ``commentary`` when tool calls follow), then per function call
       ``output_item.added`` + ``output_item.done`` (``status:"completed"``) at index 1, 2, …;
       ``response.completed`` | ``response.incomplete``
fail   only ``response.failed`` with the failed object
=====  ===========================================================================

then ``data: [DONE]`` (no ``event:`` line). Non-streamed tool calls differ: no message item unless
there is commentary, and no ``status`` on function_call items (§9.10).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from . import failures
from .chat_render import NO_RESPONSE, UNREPRESENTABLE, ShownText, assistant_data, run_usage
from .jsonbody import js_trim
from .responses import ResponsesPlan
from .wire import DONE, Answer, event_frame, json_answer


def responses_usage(result: Any | None) -> dict[str, Any]:
    """``input_tokens`` = input + cache read + cache write, with details; all zeros without a result."""
    if result is None:
        inp = out = cr = cw = reasoning = total = 0
    else:
        u = run_usage(result)
        inp, out, cr, cw = max(0, u.input), max(0, u.output), max(0, u.cache_read), max(0, u.cache_write)
        reasoning, total = max(0, getattr(u, "reasoning", 0) or 0), max(0, u.total)
    input_tokens = inp + cr + cw
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cr, "cache_write_tokens": cw},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": max(input_tokens + out, total),
    }


def resource(
    plan: ResponsesPlan, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": plan.response_id,
        "object": "response",
        "created_at": plan.created_at,
        "status": status,
        "model": plan.model,
        "output": output,
        "usage": usage if usage is not None else responses_usage(None),
    }
    if error is not None:
        obj["error"] = error
    if status == "incomplete":
        obj["incomplete_details"] = {"reason": "max_output_tokens"}
    return obj


def message_item(item_id: str, text: str, status: str, phase: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "message", "id": item_id, "role": "assistant",
                            "content": [{"type": "output_text", "text": text}]}
    if phase is not None:
        item["phase"] = phase
    item["status"] = status
    return item


def call_item(item_id: str, call: Any, *, completed: bool = False) -> dict[str, Any]:
    item = {"type": "function_call", "id": item_id, "call_id": call.id, "name": call.name, "arguments": call.arguments}
    if completed:
        item["status"] = "completed"
    return item


def _calls(result: Any) -> list[Any]:
    return list(result.tool_calls) if result.stop_reason == "tool_calls" and result.tool_calls else []


def _call_ids(call_ids: Sequence[str], n: int, plan: ResponsesPlan) -> list[str]:
    """``call_<uuid>`` item ids: the host's fresh uuids, else ones derived from the response id."""
    base = plan.response_id.removeprefix("resp_")
    return [f"call_{call_ids[i]}" if i < len(call_ids) else f"call_{base[:-3]}{i:03x}" for i in range(n)]


def failed(plan: ResponsesPlan, result: Any, usage: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    status, error = failures.response_error(result)
    return status, resource(plan, "failed", [], usage, error)


def response_answer(plan: ResponsesPlan, result: Any, call_ids: Sequence[str] = ()) -> Answer:
    """The non-streamed answer to a finished run; ``call_ids`` are fresh uuids for function_call items."""
    if result.status != "ok":
        status, obj = failed(plan, result)
        return json_answer(status, obj)
    usage = responses_usage(result)
    calls = _calls(result)
    text = js_trim(result.text or "")
    if plan.requirement is not None and not plan.requirement.satisfied(calls):
        error = {"code": "api_error", "message": plan.requirement.unsatisfied_message}
        return json_answer(502, resource(plan, "failed", [], usage, error))
    if calls:
        output = [message_item(plan.message_id, text, "completed", "commentary")] if text else []
        output += [call_item(i, c) for i, c in zip(_call_ids(call_ids, len(calls), plan), calls, strict=True)]
        return json_answer(200, resource(plan, "completed", output, usage))
    status = "incomplete" if result.stop_reason == "length" else "completed"
    item = message_item(plan.message_id, text or NO_RESPONSE, status, "final_answer")
    return json_answer(200, resource(plan, status, [item], usage))


#: Shared fields of the text events of output item 0.
_TEXT_AT: Final = {"output_index": 0, "content_index": 0}


class ResponsesStream:
    """The SSE events of one streamed response: :meth:`open`, :meth:`assistant` …, then :meth:`finish` or :meth:`fail`."""

    def __init__(self, plan: ResponsesPlan) -> None:
        self.plan = plan
        self.closed = False
        self.shown = ShownText(hold=plan.requirement is not None)

    def _event(self, type_: str, **fields: Any) -> bytes:
        return event_frame({"type": type_, **fields})

    def open(self) -> bytes:
        start = resource(self.plan, "in_progress", [])
        item = {"type": "message", "id": self.plan.message_id, "role": "assistant", "content": [], "status": "in_progress"}
        return b"".join(
            (
                self._event("response.created", response=start),
                self._event("response.in_progress", response=start),
                self._event("response.output_item.added", output_index=0, item=item),
                self._event("response.content_part.added", item_id=self.plan.message_id, **_TEXT_AT,
                            part={"type": "output_text", "text": ""}),
            )
        )

    def _delta(self, piece: str) -> bytes:
        return self._event("response.output_text.delta", item_id=self.plan.message_id, **_TEXT_AT, delta=piece)

    def assistant(self, *, text: str | None = None, delta: str | None = None) -> bytes:
        if self.closed:
            return b""
        piece = self.shown.update(text, delta)
        return self._delta(piece) if piece else b""

    def event(self, data: dict[str, Any]) -> bytes:
        """An ``agent`` event's ``assistant`` data; replaceable snapshots are ignored."""
        found = assistant_data(data)
        return b"" if found is None else self.assistant(text=found[0], delta=found[1])

    def _failed(self, obj: dict[str, Any]) -> bytes:
        self.closed = True
        return self._event("response.failed", response=obj) + DONE

    def fail(self, message: str = failures.INTERNAL, code: str = "api_error", result: Any | None = None) -> bytes:
        """End with ``response.failed`` (zero usage unless ``result`` is given) and ``[DONE]``."""
        if self.closed:
            return b""
        usage = responses_usage(result) if result is not None else None
        return self._failed(resource(self.plan, "failed", [], usage, {"code": code, "message": message}))

    def finish(self, result: Any, call_ids: Sequence[str] = ()) -> bytes:
        """The closing events for the run's result (``call_ids``: fresh uuids for function_call items)."""
        if self.closed:
            return b""
        if result.status != "ok":
            return self._failed(failed(self.plan, result)[1])
        usage = responses_usage(result)
        calls = _calls(result)
        requirement = self.plan.requirement
        if requirement is not None and not requirement.satisfied(calls):
            return self.fail(requirement.unsatisfied_message, "api_error", result)
        final = self.shown.final(result.text, "" if calls else NO_RESPONSE)
        if final is None:
            return self.fail(UNREPRESENTABLE, "server_error", result)
        status = "incomplete" if result.stop_reason == "length" and not calls else "completed"
        tail = self.shown.tail(final)
        out = [self._delta(tail)] if tail else []
        mid = self.plan.message_id
        out.append(self._event("response.output_text.done", item_id=mid, **_TEXT_AT, text=final))
        out.append(self._event("response.content_part.done", item_id=mid, **_TEXT_AT, part={"type": "output_text", "text": final}))
        item = message_item(mid, final, "incomplete" if status == "incomplete" else "completed",
                            "commentary" if calls else "final_answer")
        out.append(self._event("response.output_item.done", output_index=0, item=item))
        output = [item]
        for index, (item_id, call) in enumerate(zip(_call_ids(call_ids, len(calls), self.plan), calls, strict=True), 1):
            out.append(self._event("response.output_item.added", output_index=index, item=call_item(item_id, call)))
            done = call_item(item_id, call, completed=True)
            out.append(self._event("response.output_item.done", output_index=index, item=done))
            output.append(done)
        out.append(self._event(f"response.{status}", response=resource(self.plan, status, output, usage)))
        out.append(DONE)
        self.closed = True
        return b"".join(out)


__all__ = ["ResponsesStream", "call_item", "failed", "message_item", "resource", "response_answer", "responses_usage"]
