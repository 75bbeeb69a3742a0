"""``/hooks/*``: webhooks with their own token (http-agents-channels.md §1.8).

The pure side (:mod:`gateway_core.openai.hooks`, :mod:`gateway_core.openai.hook_actions`) decides
the gate, the payload and the action; this module reads the body, starts the runs, waits when the
caller asked (``waitForCompletion``), settles idempotent replays, and hands replies meant for a
chat channel to the channel layer.

``/hooks/wake`` queues the text as a system event; ``mode: "now"`` also runs the agent on it at
once in the agent's main session (this gateway has no separate heartbeat runner), while
``next-heartbeat`` only queues it (``status`` shows it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

import trio

from gateway_core.agents import keys
from gateway_core.agents import roster as R
from gateway_core.agents.loop import TurnSpec
from gateway_core.httproutes import Match
from gateway_core.openai import hook_actions as H
from gateway_core.openai import hooks as hk
from gateway_core.openai.wire import Answer, json_answer, text_answer

from .. import _runtime
from .request import Request

if TYPE_CHECKING:
    from gateway_core.httpauth import Caller

    from ..app import Gateway


class HookState:
    """Per gateway run: the hook token limiter and the idempotency replay cache."""

    def __init__(self) -> None:
        self.gate = hk.HookGate()
        self.replays = H.ReplayCache()
        #: Runs admitted with an idempotency key and not yet settled: a waiting replay waits on these.
        self.settling: dict[str, trio.Event] = {}


def hook_state(gw: Gateway) -> HookState:
    state = gw.app.parts.get("hooks")
    if state is None:
        state = gw.app.parts["hooks"] = HookState()
    return state


def _iso(ms: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def hooks_route(req: Request, gw: Gateway, found: Match, caller: Caller | None) -> None:
    config = gw.app.config
    try:
        cfg = hk.hooks_config(config, gw.app.roster)
    except hk.HooksConfigError:
        cfg = None
    if cfg is None:
        await req.answer(text_answer(404, "Not Found"))
        return
    state = hook_state(gw)
    query = dict(parse_qsl(req.query, keep_blank_values=True))
    admitted = state.gate.admit(
        cfg, path=req.path, query=query, method=req.method, headers=req.headers, client_ip=req.client_ip,
        now_ms=_runtime.wall_ms(),
    )
    if admitted is None:
        await req.answer(text_answer(404, "Not Found"))
        return
    if isinstance(admitted, Answer):
        await req.answer(admitted)
        return
    body = await req.body(cfg.max_body_bytes, too_large=hk.too_large(), timeout=hk.body_timeout())
    payload = hk.read_hook_body(body)
    if isinstance(payload, Answer):
        await req.answer(payload)
        return
    if gw.app.config is not config:
        await req.answer(hk.failure(409, hk.CONFIG_CHANGED))
        return
    sub = admitted.strip("/")
    if sub == "wake":
        action: Any = H.wake(cfg, payload)
    elif sub == "agent":
        action = H.agent(cfg, payload, req.headers, fresh_id=_runtime.new_uuid(), channels=channel_ids(gw))
    else:
        await mapped_route(req, gw, cfg, sub, payload, query)
        return
    if isinstance(action, Answer):
        await req.answer(action)
        return
    await req.answer(await dispatch(req, gw, cfg, action, sub))


def channel_ids(gw: Gateway) -> tuple[str, ...]:
    channels = gw.app.config.get("channels") if isinstance(gw.app.config.get("channels"), dict) else {}
    return tuple(sorted(k for k, v in channels.items() if isinstance(v, dict)))


async def mapped_route(req: Request, gw: Gateway, cfg: hk.HooksConfig, sub: str, payload: dict[str, Any], query: dict[str, str]) -> None:
    mapping = H.match(cfg, sub, payload)
    if mapping is None:
        await req.answer(text_answer(404, "Not Found"))
        return
    items = H.fan_out(mapping, payload)
    now_iso = _iso(_runtime.wall_ms())
    actions = [
        H.mapped(cfg, mapping, item, headers=req.headers, query=query, path=sub, now_iso=now_iso, fresh_id=_runtime.new_uuid())
        for item in items
    ]
    if mapping.for_each is None:
        action = actions[0] if actions else None
        if action is None:
            await req.answer(Answer(204, (), b""))
        elif isinstance(action, Answer):
            await req.answer(action)
        else:
            await req.answer(await dispatch(req, gw, cfg, action, sub))
        return
    run_ids: list[str] = []
    errors: list[str] = []
    with trio.move_on_after(hk.FANOUT_DEADLINE_S):
        for action in actions:
            if action is None:
                continue
            answer = action if isinstance(action, Answer) else await dispatch(req, gw, cfg, action, sub)
            body = answer.json() if answer.body else {}
            if answer.status == 200 and isinstance(body, dict) and body.get("runId"):
                run_ids.append(body["runId"])
            elif len(errors) < 5:
                errors.append(str(body.get("error") if isinstance(body, dict) else answer.status))
    pending = len([a for a in actions if a is not None]) - len(run_ids) - len(errors)
    if errors or pending > 0:
        await req.answer(json_answer(502 if errors else 504, {"ok": False, "runIds": run_ids, "errors": errors}))
        return
    await req.answer(json_answer(200, {"ok": True, "runId": run_ids[0] if run_ids else None, "runIds": run_ids, "dispatched": len(run_ids)}))


async def dispatch(req: Request, gw: Gateway, cfg: hk.HooksConfig, action: H.Wake | H.AgentRun, sub: str) -> Answer:
    """Carry out a wake or an agent run; the answer to send."""
    app = gw.app
    agent = app.roster.get(action.agent_id) or app.roster.default
    if isinstance(action, H.Wake):
        outcome = "coalesced" if action.text in app.system_events else "queued"
        app.queue_system_event(action.text)
        if action.mode == "now":
            key = action.session_key or keys.main_key(agent.id)
            message = H.wrap_external(action.text, "wake")
            spec = TurnSpec(agent=agent, session_key=key, message=message, surface="agent", channel="hook",
                            timeout_s=R.run_timeout_s(app.config))
            gw.start_turn(spec, f"hook-{_runtime.new_uuid()}")
        return H.wake_answer(action.mode, outcome)
    state = hook_state(gw)
    scope = {"agentId": action.agent_id, "sessionKey": action.requested_session_key, "message": action.message,
             "deliver": action.deliver, "channel": action.channel, "to": action.to}
    replay_key = H.ReplayCache.key(cfg.token, sub, scope, action.idempotency_key)
    known = state.replays.entry(replay_key, _runtime.wall_ms())
    if known is not None:  # a replay: the first request's run (and, when asked, its completion)
        run_id, done = known
        if action.wait_for_completion and done is None and run_id in state.settling:
            req.watch_disconnect()
            await state.settling[run_id].wait()
            done = (state.replays.entry(replay_key, _runtime.wall_ms()) or (run_id, None))[1]
        return H.agent_answer(run_id, done if action.wait_for_completion else None)
    run_id = _runtime.new_uuid()
    timeout = float(action.timeout_seconds) if action.timeout_seconds else R.run_timeout_s(app.config)
    spec = TurnSpec(
        agent=agent, session_key=action.session_key, message=H.wrap_external(action.message, action.name),
        surface="agent", channel="hook", model_override=action.model, timeout_s=timeout, idempotency_key=run_id,
    )
    watch = gw.start_turn(spec, run_id)
    state.replays.admitted(replay_key, run_id, _runtime.wall_ms())
    if replay_key is not None:
        state.settling[run_id] = trio.Event()
    if not action.wait_for_completion:
        gw.background(_settle, gw, watch, action, replay_key)
        return H.agent_answer(run_id)
    req.watch_disconnect()
    return H.agent_answer(run_id, await _settle(gw, watch, action, replay_key))


async def _settle(gw: Gateway, watch: Any, action: H.AgentRun, replay_key: str | None) -> dict[str, Any]:
    """After the run: the reply is delivered if asked, the replay entry becomes terminal with the
    completion, and replays waiting for it are woken; the completion."""
    try:
        done = await _complete(gw, watch, action)
        hook_state(gw).replays.settled(replay_key, _runtime.wall_ms(), done)
        return done
    finally:
        _release(gw, watch.run_id)


async def _complete(gw: Gateway, watch: Any, action: H.AgentRun) -> dict[str, Any]:
    result = await watch.wait()
    status = "ok" if result is not None and result.status == "ok" else "error"
    text = (result.text or "").strip() if result is not None else ""
    disposition = "silent" if result is not None and result.silent else "visible" if text else "empty"
    # A finished run says whether its reply went out, also when nothing was to be delivered (as published).
    facts: dict[str, Any] = {"delivered": False, "deliveryAttempted": False} if status == "ok" else {}
    target = action.delivery if action.deliver else {"mode": "none"}
    if status == "ok" and disposition == "visible" and target.get("mode") == "announce":
        facts["deliveryAttempted"] = True
        try:
            await gw.deliver(target["channel"], target["to"], text, account_id=target.get("accountId"))
            facts["delivered"] = True
        except Exception as exc:  # noqa: BLE001 - the run happened; delivery failed, and says so
            gw.log.warn("hooks", f"delivery of run {watch.run_id} to {target['channel']} failed: {exc}")
            facts["delivered"] = False
            facts["deliveryError"] = "delivery-failed"
    return H.completion(status, disposition, **facts)


def _release(gw: Gateway, run_id: str) -> None:
    """Wake the replays waiting for ``run_id``."""
    event = hook_state(gw).settling.pop(run_id, None)
    if event is not None:
        event.set()


HANDLERS: Final = {"hooks": hooks_route}

__all__ = ["HANDLERS", "HookState", "hook_state"]
