"""Runs family: ``agent`` (two-stage), ``agent.wait``, ``chat.send``, ``chat.abort`` (protocol.md §13).

The request handlers register the run (idempotency key = run id), answer the ack, and spawn the
run as a gateway-level job; the run job publishes the ``agent``/``chat`` events (per-run ``seq``
from :meth:`Run.next_seq`) and sends the final answer of a two-stage ``agent`` call.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from msgspec import UNSET

from ... import errors as E
from ...idempotency import Final
from ..effects import Effect, Reply, Sleep, WaitRun
from ..gateway import Ctx, Job
from ..router import LATER, Refused, routes
from ..runs import Run

NO_PROVIDER = "No model provider is configured for this gateway."


def canonical_session_key(raw: str, agent_id: str = "main") -> str:
    return raw if raw.startswith("agent:") else f"agent:{agent_id}:{raw}"


def agent(ctx: Ctx, p: Any) -> Any:
    app = ctx.app
    key = p.idempotency_key
    begin = app.ledger.begin("agent", key, ctx.wall_ms, {"runId": key, "status": "in_flight", "agentId": "main"})
    if begin.status != "new":
        answer = begin.replay()
        if not answer.ok:
            assert answer.error is not None
            raise Refused(answer.error, answer.payload)
        return answer.payload
    session_key = p.session_key if p.session_key is not UNSET else f"agent:main:explicit:{key}"
    run = app.runs.add(Run(run_id=key, session_key=session_key, started_at=ctx.wall_ms), ctx.wall_ms)
    assert ctx.conn is not None
    run.origin = (ctx.conn.conn_id, ctx.request_id)
    ctx.reply({"runId": key, "agentId": "main", "status": "accepted", "acceptedAt": run.started_at})
    run_ctx = Ctx(app, None, ctx.request_id, "agent", ctx.now, ctx.wall_ms)
    app.spawn(Job(run_ctx, _agent_run(run_ctx, run)), f"run {key}")
    return LATER


def _agent_run(ctx: Ctx, run: Run) -> Generator[Effect, Any, None]:
    """No provider yet: the run fails the way the published gateway's do without credentials."""
    yield Sleep(0)
    app = ctx.app
    base = {"runId": run.run_id, "sessionKey": run.session_key, "sessionId": run.run_id, "agentId": "main"}
    ctx.publish(
        "agent",
        {**base, "stream": "lifecycle", "seq": run.next_seq(), "ts": ctx.wall_ms,
         "data": {"phase": "start", "startedAt": run.started_at}},
    )
    app.runs.finish(run, "error", ctx.wall_ms, error=NO_PROVIDER)
    ctx.publish(
        "agent",
        {**base, "stream": "lifecycle", "seq": run.next_seq(), "ts": ctx.wall_ms,
         "data": {"phase": "error", "startedAt": run.started_at, "endedAt": run.ended_at, "error": NO_PROVIDER}},
    )
    ctx.publish(
        "chat",
        {"runId": run.run_id, "sessionKey": run.session_key, "agentId": "main", "seq": run.next_seq(),
         "state": "error", "errorMessage": NO_PROVIDER},
    )
    err = E.unavailable(NO_PROVIDER)
    payload = {"runId": run.run_id, "status": "error", "summary": NO_PROVIDER}
    app.ledger.finish("agent", run.run_id, Final(ok=False, payload=payload, error=err), ctx.wall_ms)
    app.run_settled(run)
    if run.origin is not None:
        app.outbox.append(Reply(run.origin[0], run.origin[1], False, payload, err))


def chat_send(ctx: Ctx, p: Any) -> Any:
    app = ctx.app
    key = p.idempotency_key
    begin = app.ledger.begin("chat", key, ctx.wall_ms, {"runId": key, "status": "in_flight"})
    if begin.status != "new":
        final = begin.entry.final
        return final.payload if final is not None else begin.entry.in_flight_payload
    run = app.runs.add(
        Run(run_id=key, session_key=canonical_session_key(p.session_key), kind="chat", started_at=ctx.wall_ms),
        ctx.wall_ms,
    )
    run_ctx = Ctx(app, None, ctx.request_id, "chat.send", ctx.now, ctx.wall_ms)
    app.spawn(Job(run_ctx, _chat_run(run_ctx, run)), f"chat {key}")
    return {"runId": key, "status": "started"}


def _chat_run(ctx: Ctx, run: Run) -> Generator[Effect, Any, None]:
    yield Sleep(0)
    app = ctx.app
    app.runs.finish(run, "error", ctx.wall_ms, error=NO_PROVIDER)
    ctx.publish(
        "chat",
        {"runId": run.run_id, "sessionKey": run.session_key, "agentId": "main", "seq": run.next_seq(),
         "state": "error", "errorMessage": NO_PROVIDER},
    )
    app.ledger.finish("chat", run.run_id, Final(ok=True, payload={"runId": run.run_id, "status": "error"}), ctx.wall_ms)
    app.run_settled(run)


def agent_wait(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    """Waits for the run (or the timeout); an unknown run waits the whole timeout, as published."""
    timeout_ms = p.timeout_ms if p.timeout_ms is not UNSET else 30_000
    run = ctx.app.runs.get(p.run_id)
    if run is None:
        yield Sleep(timeout_ms / 1000)
        return {"runId": p.run_id, "status": "timeout"}
    if run.active:
        yield WaitRun(p.run_id, timeout_ms / 1000)
    if run.active:
        return {"runId": p.run_id, "status": "timeout"}
    out: dict[str, Any] = {"runId": p.run_id, "status": run.status, "startedAt": run.started_at, "endedAt": run.ended_at}
    if run.error:
        out["error"] = run.error
    return out


def chat_abort(ctx: Ctx, p: Any) -> Any:
    app = ctx.app
    active = app.runs.active_for(canonical_session_key(p.session_key))
    if p.run_id is not UNSET:
        active = [r for r in active if r.run_id == p.run_id]
    for run in active:
        run.abort_requested = True
        app.runs.finish(run, "aborted", ctx.wall_ms)
        app.run_settled(run)
    return {"ok": True, "aborted": bool(active), "runIds": [r.run_id for r in active]}


ROUTES = routes(
    "runs",
    [("agent", agent), ("agent.wait", agent_wait), ("chat.send", chat_send), ("chat.abort", chat_abort)],
)
