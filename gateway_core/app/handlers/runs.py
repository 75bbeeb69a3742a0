"""Runs family: ``agent`` (two-stage), ``agent.wait``, ``chat.send``, ``chat.abort`` (protocol.md §13).

The request handlers check the call, register the run (idempotency key = run id), answer the ack,
and spawn the turn (``gateway_core.agents.loop``) as a gateway-level job keyed by the run id; the
turn publishes the ``agent``/``chat`` events and sends the final answer of a two-stage ``agent``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from msgspec import UNSET

from ... import errors as E
from ...agents import keys
from ...agents import roster as R
from ...agents.loop import TurnSpec, run_turn
from ...agents.roster import Agent
from ..effects import Effect, Sleep, WaitRun
from ..gateway import Ctx, GatewayApp, Job
from ..router import LATER, Refused, routes
from ..runs import Run


def pick_agent(app: GatewayApp, requested: Any, session_key: str | None = None, *, method: str | None = None) -> Agent:
    """The agent named by ``agentId`` (or by an ``agent:<id>:`` session key), else the default."""
    prefix = f"invalid {method} params: " if method else ""
    if isinstance(requested, str) and requested:
        agent = app.roster.get(keys.normalize_agent_id(requested))
        if agent is None:
            raise Refused(E.invalid_request(f'{prefix}unknown agent id "{requested}"'))
        if session_key and session_key.lower().startswith("agent:"):
            owner = keys.agent_of(session_key, app.roster.default_id)
            if owner != agent.id:
                raise Refused(
                    E.invalid_request(
                        "Multiple agents are configured, but session agent resolution has no explicit owner. "
                        f'The agent-scoped session key belongs to "{owner}", not "{agent.id}".'
                    )
                )
        return agent
    if session_key and session_key.lower().startswith("agent:"):
        agent = app.roster.get(keys.agent_of(session_key, app.roster.default_id))
        if agent is None:
            raise Refused(E.invalid_request(f'unknown agent id "{keys.agent_of(session_key)}"'))
        return agent
    return app.roster.default


def _check_key(raw: str) -> None:
    if keys.is_reserved(raw):
        raise Refused(E.invalid_request("sessionKey cannot use reserved internal session namespaces"))


def start_turn(ctx: Ctx, run: Run, spec: TurnSpec) -> None:
    """Spawn the turn of ``run`` as a gateway-level job (interruptible by its run id)."""
    app = ctx.app
    run_ctx = Ctx(app, None, ctx.request_id, ctx.method, ctx.now, ctx.wall_ms)
    app.spawn(Job(run_ctx, _turn_job(run_ctx, run, spec)), f"run {run.run_id}", key=run.run_id)


def start_route_turn(app: GatewayApp, spec: TurnSpec, run_id: str, *, now: float, wall_ms: int, kind: str = "http") -> Run:
    """Register and spawn a turn an HTTP route (or a hook, A2A) asked for; its events and result
    reach the route through the host (no connection owns it)."""
    run = app.runs.add(
        Run(run_id=run_id, session_key=spec.session_key, agent_id=spec.agent.id, kind=kind, started_at=wall_ms), wall_ms
    )
    ctx = Ctx(app, None, run_id, kind, now, wall_ms)
    app.spawn(Job(ctx, _route_job(ctx, run, spec)), f"run {run_id}", key=run_id)
    return run


def _route_job(ctx: Ctx, run: Run, spec: TurnSpec) -> Generator[Effect, Any, None]:
    run.result = yield from run_turn(ctx, run, spec)


def _turn_job(ctx: Ctx, run: Run, spec: TurnSpec) -> Generator[Effect, Any, None]:
    yield Sleep(0)  # the ack goes out first
    run.result = yield from run_turn(ctx, run, spec)


def _override(app: GatewayApp, agent: Agent, p: Any) -> str | None:
    """The run's model: ``provider/model``, split ``provider`` + ``model``, or a bare model id (resolved
    against the configured providers: a unique match, else the agent's own provider)."""
    model = p.model if p.model is not UNSET and p.model else None
    provider = p.provider if p.provider is not UNSET and p.provider else None
    if model is None:
        return None
    if provider:
        return f"{provider}/{model}"
    if "/" in model:
        return model
    owners = [pid for pid, pcfg in R.providers(app.config).items()
              if any(isinstance(m, dict) and m.get("id") == model for m in pcfg.get("models") or ())]
    if len(owners) == 1:
        return f"{owners[0]}/{model}"
    own = (agent.primary or R.OFFLINE_REF).partition("/")[0]
    return f"{own}/{model}"


def agent(ctx: Ctx, p: Any) -> Any:
    app = ctx.app
    key = p.idempotency_key
    session_raw = p.session_key if p.session_key is not UNSET and p.session_key else None
    if session_raw is not None:
        _check_key(session_raw)
    named = p.agent_id if p.agent_id is not UNSET and p.agent_id else None
    chosen = pick_agent(app, named, session_raw, method="agent")
    in_flight: dict[str, Any] = {"runId": key, "status": "in_flight", "agentId": chosen.id}
    if session_raw:
        session_key = keys.canonical(session_raw, chosen.id)
    elif named:
        session_key = keys.main_key(chosen.id)  # as published: an agent id alone means its main session
    else:
        session_key = keys.explicit_key(chosen.id, key)
    scoped = bool(session_raw or named)
    if scoped:
        in_flight["sessionKey"] = session_key
    begin = app.ledger.begin("agent", key, ctx.wall_ms, in_flight)
    if begin.status != "new":
        answer = begin.replay()
        if not answer.ok:
            assert answer.error is not None
            raise Refused(answer.error, answer.payload)
        return answer.payload
    assert ctx.conn is not None
    run = app.runs.add(
        Run(run_id=key, session_key=session_key, agent_id=chosen.id, started_at=ctx.wall_ms, origin=(ctx.conn.conn_id, ctx.request_id)),
        ctx.wall_ms,
    )
    ack: dict[str, Any] = {"runId": key, "agentId": chosen.id, "status": "accepted", "acceptedAt": run.started_at}
    if scoped:
        ack = {"runId": key, "sessionKey": session_key, "agentId": chosen.id, "status": "accepted", "acceptedAt": run.started_at}
    ctx.reply(ack)
    timeout = float(p.timeout) if p.timeout is not UNSET and p.timeout > 0 else R.run_timeout_s(app.config)
    spec = TurnSpec(
        agent=chosen,
        session_key=session_key,
        message=p.message,
        surface="agent",
        extra_system=p.extra_system_prompt if p.extra_system_prompt is not UNSET else None,
        model_override=_override(app, chosen, p),
        timeout_s=timeout,
        idempotency_key=key,
        sender=_sender(ctx),
        origin=run.origin,
    )
    start_turn(ctx, run, spec)
    return LATER


def _sender(ctx: Ctx) -> dict[str, Any]:
    if ctx.conn is None:
        return {}
    c = ctx.conn.principal.client
    return {"clients": [{"id": c.id, "mode": c.mode}]}


def chat_send(ctx: Ctx, p: Any) -> Any:
    app = ctx.app
    key = p.idempotency_key
    _check_key(p.session_key)
    chosen = pick_agent(app, p.agent_id if p.agent_id is not UNSET else None, p.session_key, method="chat.send")
    begin = app.ledger.begin("chat", key, ctx.wall_ms, {"runId": key, "status": "in_flight"})
    if begin.status != "new":
        final = begin.entry.final
        return final.payload if final is not None else begin.entry.in_flight_payload
    session_key = keys.canonical(p.session_key, chosen.id)
    run = app.runs.add(
        Run(run_id=key, session_key=session_key, agent_id=chosen.id, kind="chat", started_at=ctx.wall_ms), ctx.wall_ms
    )
    timeout = p.timeout_ms / 1000 if p.timeout_ms is not UNSET and p.timeout_ms > 0 else R.run_timeout_s(app.config)
    spec = TurnSpec(
        agent=chosen,
        session_key=session_key,
        message=p.message,
        surface="chat",
        timeout_s=timeout,
        idempotency_key=key,
        sender=_sender(ctx),
    )
    start_turn(ctx, run, spec)
    return {"runId": key, "status": "started"}


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
    if run.stop_reason:
        out["stopReason"] = run.stop_reason
    return out


def chat_abort(ctx: Ctx, p: Any) -> Any:
    app = ctx.app
    chosen = pick_agent(app, p.agent_id if p.agent_id is not UNSET else None, p.session_key)
    active = app.runs.active_for(keys.canonical(p.session_key, chosen.id))
    if p.run_id is not UNSET:
        active = [r for r in active if r.run_id == p.run_id]
    for run in active:
        run.abort_requested = True
        app.interrupt(run.run_id)
    return {"ok": True, "aborted": bool(active), "runIds": [r.run_id for r in active]}


ROUTES = routes(
    "runs",
    [("agent", agent), ("agent.wait", agent_wait), ("chat.send", chat_send), ("chat.abort", chat_abort)],
)
