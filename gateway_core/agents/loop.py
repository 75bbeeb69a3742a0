"""The agent loop: one turn of one run, as a pure generator of effects (http-agents-channels.md §2.4).

A turn waits for its lane, loads (or creates) its session and history, builds the prompt, streams
the model (the host does retries and fallbacks), runs built-in tools and calls the model again,
stops at client tool calls, and writes the turn to the store in one transaction. Everything the
clients see is published through :class:`RunEvents` (``agent`` and ``chat`` events with the per-run
``seq``); the final answer of a two-stage ``agent`` call and the run's settlement come last.

Failures are outputs, not exceptions: a provider failure ends the run with ``lifecycle error`` and
a ``chat`` ``error`` event; an abort or the run deadline ends it as aborted. The user's message is
stored either way, so no accepted input is lost.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

from msgspec import Struct

from .. import errors as E
from ..app.effects import Effect, EffectFailed, Reply
from ..app.runs import Run
from ..idempotency import Final
from ..providers.errors import ProviderError
from ..providers.types import (
    ChatMessage,
    ContentPart,
    ImagePart,
    ReasoningDelta,
    StreamEnd,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    TurnBuilder,
    UsageReport,
)
from . import prompt as P
from .effects import (
    AwaitLane,
    ModelFailed,
    ModelNext,
    ModelOpen,
    RunAborted,
    RunDeadline,
    StoreCall,
    Streamed,
    TurnWritten,
)
from .events import RunEvents
from .roster import Agent, ModelTarget
from .store import MessageRecord, SessionRecord, Usage
from .tools import BUILTIN, run_tool

#: Model calls per turn at most (tool rounds + 1).
MAX_MODEL_CALLS = 10
SILENT_TOKEN = "NO_REPLY"
#: http-openai-observed.md §1.2: how an interrupted turn's input is carried into the next turn.
QUEUED_CONTEXT = (
    "[Queued user message from a previous active turn; preserved as context only. "
    "Continue with the active prompt below.]"
)


class TurnSpec(Struct, frozen=True, kw_only=True):
    """What a run was asked to do."""

    agent: Agent
    session_key: str
    message: str
    surface: str = "agent"  # "agent" | "chat" | "http"
    images: tuple[dict[str, Any], ...] = ()
    extra_system: str | None = None
    client_tools: tuple[ToolSpec, ...] = ()
    tool_choice: Any = None
    model_override: str | None = None
    max_tokens: int | None = None
    params: dict[str, Any] = {}
    timeout_s: float = 600.0
    channel: str = "webchat"
    idempotency_key: str | None = None
    sender: dict[str, Any] = {}
    route: dict[str, Any] | None = None
    #: For ``agent``: the request whose final answer this run sends.
    origin: tuple[str, str] | None = None
    #: The session key was minted for this run from a fresh uuid4 (a stateless HTTP request): no
    #: such session exists, and the store need not look (``SessionStore.ensure(new=True)``).
    new_session: bool = False
    #: An ``http`` run's text deltas are published to the route following it (:data:`ROUTE_TEXT`);
    #: ``False`` for a route that needs only the end (a non-streaming answer).
    route_text: bool = True


class TurnResult(Struct, kw_only=True):
    """How the turn ended (also the HTTP layer's answer)."""

    status: str  # ok | error | aborted | timeout
    text: str = ""
    stop_reason: str = "stop"
    usage: Usage = Usage()
    last_usage: Usage = Usage()
    tool_calls: list[ToolCall] = []
    provider: str | None = None
    model: str | None = None
    error: str | None = None
    error_detail: dict[str, Any] = {}
    session_id: str | None = None
    response_id: str | None = None
    duration_ms: int = 0
    silent: bool = False


def _usage(report: UsageReport | None) -> Usage:
    if report is None:
        return Usage()
    return Usage(
        input=report.input, output=report.output, cache_read=report.cache_read, cache_write=report.cache_write,
        total=report.total or report.input + report.output + report.cache_read + report.cache_write,
    )


def _request(
    target: ModelTarget, spec: TurnSpec, system: str, messages: list[ChatMessage], tools: list[ToolSpec]
) -> Any:
    from ..providers.types import ModelRequest

    wanted = spec.max_tokens if spec.max_tokens is not None else target.max_tokens
    if wanted is not None and target.max_tokens is not None:
        wanted = min(wanted, target.max_tokens)
    p = spec.params
    return ModelRequest(
        provider=target.provider,
        api=target.api,
        model=target.model,
        base_url=target.base_url,
        api_key=target.api_key,
        headers=target.headers,
        system=system,
        messages=messages,
        tools=tools,
        tool_choice="auto" if tools else None,
        max_tokens=wanted,
        temperature=p.get("temperature"),
        top_p=p.get("top_p"),
        frequency_penalty=p.get("frequency_penalty"),
        presence_penalty=p.get("presence_penalty"),
        seed=p.get("seed"),
        stop=p.get("stop"),
        response_format=p.get("response_format"),
        compat=target.compat,
        idle_timeout_s=target.timeout_s,
    )


def _current_message(spec: TurnSpec) -> ChatMessage:
    if not spec.images:
        return ChatMessage(role="user", content=spec.message)
    parts: list[ContentPart] = [TextPart(spec.message)] if spec.message else []
    for img in spec.images:
        parts.append(ImagePart(url=img.get("url"), data=img.get("data"), mime=img.get("mimeType")))
    return ChatMessage(role="user", content=parts)


def run_turn(ctx: Any, run: Run, spec: TurnSpec) -> Generator[Effect, Any, TurnResult]:
    """One turn. ``ctx`` is the run's :class:`gateway_core.app.Ctx` (its ``now``/``wall_ms`` move)."""
    app = ctx.app
    ev = RunEvents(ctx, run, surface=spec.surface, route_text=spec.route_text)
    started_ms = ctx.wall_ms
    if not app.lanes.request(run.run_id, spec.session_key):
        try:
            yield AwaitLane(run.run_id)
        except (RunAborted, RunDeadline) as stop:
            app.release_lane(run.run_id)
            return (yield from _end_without_session(ctx, run, spec, ev, stop))
    try:
        return (yield from _turn(ctx, run, spec, ev, started_ms))
    except EffectFailed as failure:  # the store failed: the run ends in an error, the gateway goes on
        ctx.log("error", "agents", f"run {run.run_id}: session store failed: {failure.detail or failure.message}")
        result = TurnResult(status="error", error=f"session store unavailable: {failure.message}", stop_reason="error")
        _settle(ctx, run, spec, ev, result)
        return result
    finally:
        app.release_lane(run.run_id)


def _end_without_session(ctx: Any, run: Run, spec: TurnSpec, ev: RunEvents, stop: Exception) -> Generator[Effect, Any, TurnResult]:
    status = "timeout" if isinstance(stop, RunDeadline) else "aborted"
    result = TurnResult(status=status, stop_reason=status)
    yield from ()
    _settle(ctx, run, spec, ev, result)
    return result


def _turn(ctx: Any, run: Run, spec: TurnSpec, ev: RunEvents, started_ms: int) -> Generator[Effect, Any, TurnResult]:
    app = ctx.app
    created = {"agent": {"createdVia": "run"}, "chat": {"createdVia": "operator", "chatType": "direct"}}.get(spec.surface, {})
    session: SessionRecord = yield StoreCall(
        "ensure", (spec.session_key, spec.agent.id, ctx.wall_ms, created), {"new": True} if spec.new_session else {}
    )
    ev.session_id = session.session_id
    if session.message_count == 0 and session.created_at == ctx.wall_ms:
        app.session_stats["count"] = app.session_stats.get("count", 0) + 1
    override = spec.model_override or session.model_override
    targets: list[ModelTarget] = app.model_chain(spec.agent, override)
    yield StoreCall("begin_run", (run.run_id, spec.session_key, spec.message, ctx.wall_ms))
    user_record = MessageRecord(
        role="user",
        content=P.user_parts(spec.message, list(spec.images)),
        ts=started_ms,
        run_id=run.run_id,
        meta={"idempotencyKey": f"{spec.idempotency_key or run.run_id}:user", **({"sender": spec.sender} if spec.sender else {})},
    )
    records: list[MessageRecord] = [user_record]
    ev.status("preparing_workspace")
    ev.status("preparing_context")
    history = yield StoreCall("messages", (session.session_id,), {"limit": P.HISTORY_LIMIT})
    carried = app.interrupted_inputs.pop(spec.session_key, [])
    ev.lifecycle({"phase": "start", "startedAt": started_ms})
    ev.status("starting_model")
    deadline = ctx.now + spec.timeout_s if spec.timeout_s != float("inf") else None
    result = TurnResult(status="ok", session_id=session.session_id)
    total = Usage()
    text = ""
    if not targets:
        error = f"Unknown model: {override}" if override else "No model provider is configured for this gateway."
        result = TurnResult(status="error", error=error, stop_reason="error", session_id=session.session_id)
        return (yield from _finish(ctx, run, spec, ev, result, records, started_ms))
    current = _current_message(spec)
    if carried:  # a crash cut these turns short: their input goes along as context (published wording)
        context = "\n\n".join(carried)
        current = ChatMessage(role="user", content=f"{QUEUED_CONTEXT}\n{context}\n\n{current.text()}")
    messages = [*P.history_messages(history), current]
    client_names = {t.name for t in spec.client_tools}
    try:
        for _call in range(MAX_MODEL_CALLS):
            supports_tools = targets[0].compat.supports_tools is not False and targets[0].api != "offline"
            builtin = list(BUILTIN.values()) if supports_tools else []
            tools = [*builtin, *spec.client_tools] if supports_tools else list(spec.client_tools)
            system = P.system_prompt(
                spec.agent, model_ref=targets[0].ref, extra=spec.extra_system, tools=[t.name for t in builtin]
            )
            candidates = tuple(_request(t, spec, system, messages, tools) for t in targets)
            handle = yield ModelOpen(candidates, deadline, run.run_id)
            builder = TurnBuilder()
            announced = False
            call_parts: list[str] = []  # joined once the call ends: per delta, work is the delta's size
            while True:
                got: Streamed = yield ModelNext(handle, deadline, ev.text_due_at)
                if got.due:  # the model paused past the pace: the held text goes out now
                    ev.flush_text()
                    continue
                if not announced:
                    provider, _, model = got.ref.partition("/")
                    result.provider, result.model = provider, model
                    ev.lifecycle({"phase": "model", "provider": provider, "model": model})
                    announced = True
                if got.event is None:
                    break
                for event in (got.event, *got.more) if got.more else (got.event,):
                    builder.feed(event)
                    if isinstance(event, TextDelta) and event.text:
                        call_parts.append(event.text)
                        ev.assistant(event.text)
                    elif isinstance(event, ReasoningDelta | ToolCallDelta | StreamEnd):
                        pass
                if got.ended:
                    break
            ev.flush_text()  # what the pace held goes out with the call's end
            call_text = "".join(call_parts)
            turn = builder.result()
            result.response_id = turn.response_id or result.response_id
            last = _usage(turn.usage)
            total = total.add(last)
            result.last_usage = last
            text += call_text
            calls = list(turn.tool_calls)
            if not calls:
                result.stop_reason = "length" if turn.finish_reason == "length" else "stop"
                break
            assistant_meta = {"toolCalls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]}
            records.append(
                MessageRecord(
                    role="assistant",
                    content=[{"type": "text", "text": call_text}] if call_text else [],
                    ts=ctx.wall_ms,
                    run_id=run.run_id,
                    meta=assistant_meta,
                )
            )
            messages.append(ChatMessage(role="assistant", content=call_text or None, tool_calls=calls))
            pending = [c for c in calls if c.name in client_names]
            for call in calls:
                if call.name in client_names:
                    # The client runs it: the transcript keeps a pending result, so every stored
                    # assistant tool call is answered (an upstream that checks tool history, as
                    # OpenAI's does, would refuse the next turn otherwise), as published (c10).
                    output: Any = {"status": "pending", "tool": call.name, "message": "Tool execution delegated to client"}
                elif pending:
                    output = {"status": "skipped", "tool": call.name, "message": "Not run: the turn ended for a client tool call"}
                else:
                    output = yield from run_tool(call.name, call.arguments, session)
                body = P.tool_result_text(output)
                if not pending:
                    ev.tool(call, output)
                records.append(
                    MessageRecord(
                        role="tool",
                        content=body,
                        ts=ctx.wall_ms,
                        run_id=run.run_id,
                        meta={"toolCallId": call.id, "toolName": call.name},
                    )
                )
                messages.append(ChatMessage(role="tool", content=body, tool_call_id=call.id, name=call.name))
            if pending:
                result.tool_calls = pending
                result.stop_reason = "tool_calls"
                break
        result.text = text
    except ModelFailed as failure:
        result = _failed(failure.error, failure.message, result, text)
    except RunAborted:
        result = TurnResult(status="aborted", text=text, stop_reason="rpc", provider=result.provider, model=result.model)
    except RunDeadline:
        result = TurnResult(status="timeout", text=text, stop_reason="timeout", provider=result.provider, model=result.model)
    result.usage = total
    result.session_id = session.session_id
    if result.status == "error":
        records.append(
            MessageRecord(
                role="assistant",
                content=[{"type": "text", "text": result.error or "agent run failed"}],
                ts=ctx.wall_ms,
                run_id=run.run_id,
                meta={"provider": result.provider, "model": result.model, "stopReason": "error",
                      "idempotencyKey": f"{run.run_id}:terminal-error"},
            )
        )
    elif result.text:
        silent = result.status == "ok" and result.text.strip() == SILENT_TOKEN
        result.silent = silent
        records.append(
            MessageRecord(
                role="assistant",
                content=[{"type": "text", "text": result.text}],
                ts=ctx.wall_ms,
                run_id=run.run_id,
                meta={
                    "api": targets[0].api,
                    "provider": result.provider,
                    "model": result.model,
                    "usage": _usage_json(result.last_usage),
                    "stopReason": "stop" if result.status != "ok" else result.stop_reason,
                    **({"responseId": result.response_id} if result.response_id else {}),
                    **({"silent": True} if silent else {}),
                    **({"aborted": True} if result.status != "ok" else {}),
                },
            )
        )
    return (yield from _finish(ctx, run, spec, ev, result, records, started_ms))


def _failed(error: ProviderError, message: str, so_far: TurnResult, text: str) -> TurnResult:
    detail: dict[str, Any] = {"failoverReason": error.kind}
    if error.provider:
        detail["provider"] = error.provider
    if error.model:
        detail["model"] = error.model
    if error.status:
        detail["httpStatus"] = error.status
    if error.message:
        detail["providerErrorMessagePreview"] = error.message[:300]
    return TurnResult(
        status="error", text=text, stop_reason="error", error=message, error_detail=detail,
        provider=so_far.provider or error.provider, model=so_far.model or error.model,
    )


def _usage_json(u: Usage) -> dict[str, Any]:
    return {"input": u.input, "output": u.output, "cacheRead": u.cache_read, "cacheWrite": u.cache_write, "totalTokens": u.total}


def _finish(
    ctx: Any, run: Run, spec: TurnSpec, ev: RunEvents, result: TurnResult, records: list[MessageRecord], started_ms: int
) -> Generator[Effect, Any, TurnResult]:
    """Write the turn (one transaction), then tell everyone how it ended."""
    result.duration_ms = max(0, ctx.wall_ms - started_ms)
    status = {"ok": "ok", "error": "error", "aborted": "aborted", "timeout": "timeout"}[result.status]
    extra = {
        "lastRunId": run.run_id,
        "status": {"ok": "done", "error": "failed"}.get(result.status, "killed"),
        "startedAt": started_ms,
        "endedAt": ctx.wall_ms,
        "runtimeMs": result.duration_ms,
        "abortedLastRun": result.status in ("aborted", "timeout"),
        "lastInteractionAt": started_ms,
        "systemSent": True,
    }
    if result.status == "error":
        extra["lastRunError"] = result.error
    saved = yield StoreCall(
        "append_turn",
        (spec.session_key, run.run_id, records, result.usage, ctx.wall_ms),
        {"model": result.model, "provider": result.provider, "status": status, "route": spec.route, "extra": extra},
    )
    ctx.app.session_changed(saved, "message")
    try:
        yield TurnWritten(run.run_id, result)  # the caller may have its answer before the final events
    except (RunAborted, RunDeadline):
        pass  # too late to stop: the turn is written and settles as it ended
    _settle(ctx, run, spec, ev, result)
    return result


def _settle(ctx: Any, run: Run, spec: TurnSpec, ev: RunEvents, result: TurnResult) -> None:
    """Final events, the run table, the idempotency ledger, and the two-stage final answer."""
    app = ctx.app
    if result.status == "ok":
        if result.usage.output:
            ev.usage(result.usage)
        ev.finishing(result.stop_reason)
        ev.lifecycle({"phase": "model", "provider": None, "model": None}, lane="main")
        ev.end(result)
        ev.chat_final(result)
        app.runs.finish(run, "ok", ctx.wall_ms, stop_reason=result.stop_reason)
    elif result.status == "error":
        ev.error(result)
        app.runs.finish(run, "error", ctx.wall_ms, error=result.error)
    else:
        ev.aborted(result)
        # As published, agent.wait reports an aborted run as an error ("aborted", stopReason rpc).
        app.runs.finish(run, "error", ctx.wall_ms, error="aborted" if spec.surface == "chat" else None, stop_reason=result.stop_reason)
    kind = "chat" if spec.surface == "chat" else "agent"
    # The final answer is built only for a caller that gets it (an HTTP route's run has none).
    final = agent_final(run, spec, result) if spec.origin is not None or (spec.idempotency_key and kind == "agent") else None
    if spec.idempotency_key is not None:
        if kind == "chat":
            app.ledger.finish("chat", spec.idempotency_key, Final(ok=True, payload=chat_final(run, result, ctx.wall_ms)), ctx.wall_ms)
        else:
            assert final is not None
            app.ledger.finish("agent", spec.idempotency_key, final, ctx.wall_ms)
    run.result = result
    app.run_settled(run)
    if spec.origin is not None:
        assert final is not None
        app.outbox.append(Reply(spec.origin[0], spec.origin[1], final.ok, final.payload, final.error))


def chat_final(run: Run, result: TurnResult, now_ms: int) -> dict[str, Any]:
    """What a repeated ``chat.send`` idempotency key answers once the run is over (as published)."""
    if result.status in ("aborted", "timeout"):
        return {"runId": run.run_id, "status": "timeout", "summary": "aborted", "stopReason": result.stop_reason, "endedAt": now_ms}
    return {"runId": run.run_id, "status": result.status}


def agent_final(run: Run, spec: TurnSpec, result: TurnResult) -> Final:
    """The second answer of a two-stage ``agent`` call (protocol.md §13.2)."""
    if result.status == "error":
        message = result.error or "agent run failed"
        return Final(ok=False, payload={"runId": run.run_id, "status": "error", "summary": message}, error=E.unavailable(message))
    if result.status in ("aborted", "timeout"):
        return Final(
            ok=True,
            payload={"runId": run.run_id, "status": "timeout", "summary": "aborted", "stopReason": result.stop_reason},
        )
    usage = {
        "input": result.usage.input, "output": result.usage.output, "cacheRead": result.usage.cache_read,
        "cacheWrite": result.usage.cache_write, "total": result.usage.total, "cost": {"total": 0},
    }
    last = {
        "input": result.last_usage.input, "output": result.last_usage.output, "cacheRead": result.last_usage.cache_read,
        "cacheWrite": result.last_usage.cache_write, "cost": {"total": 0}, "total": result.last_usage.total,
    }
    payloads = [] if result.silent else [{"text": result.text, "mediaUrl": None}]
    meta: dict[str, Any] = {
        "durationMs": result.duration_ms,
        "agentMeta": {
            "sessionId": result.session_id,
            "sessionFile": spec.session_key,
            "provider": result.provider,
            "model": result.model,
            "usage": usage,
            "lastCallUsage": last,
            "promptTokens": result.last_usage.input,
        },
        "aborted": False,
        "stopReason": result.stop_reason,
    }
    if result.tool_calls:
        meta["pendingToolCalls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in result.tool_calls
        ]
    return Final(
        ok=True,
        payload={"runId": run.run_id, "status": "ok", "summary": "completed", "result": {"payloads": payloads, "meta": meta}},
    )


__all__ = ["MAX_MODEL_CALLS", "SILENT_TOKEN", "TurnResult", "TurnSpec", "agent_final", "json", "run_turn"]
