"""The OpenAI-compatible routes: ``/v1/models*``, ``/v1/embeddings``, ``/v1/chat/completions``,
``/v1/responses`` (http-agents-channels.md §1.6, §2; http-openai-observed.md §2–§5).

Glue only: :mod:`gateway_core.openai` validates and plans each request and renders every byte of
the answer; this module reads the body, starts the turn through the host, feeds the run's events
to the stream renderer, and stops the run the moment its client goes away (the upstream request
is closed with it). A streamed answer's head and first frame go out before the run starts.

Links that outlive a request (``previous_response_id``, chat-UI conversations) are kept per
gateway in :class:`HttpState`; with ``…previousResponse.persist`` / ``…conversation.persist`` they
are also written to the session store and loaded back after a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import trio

from gateway_core import httpauth
from gateway_core.agents import roster as R
from gateway_core.httproutes import Match
from gateway_core.openai import models, wire
from gateway_core.openai.chat import ChatPlan, RequestContext, plan_chat
from gateway_core.openai.chat_render import ChatStream, chat_completion
from gateway_core.openai.conversation import ConversationLinks, conversation_settings
from gateway_core.openai.embeddings import embeddings_answer, embeddings_failure, plan_embeddings
from gateway_core.openai.jsonbody import parse_body
from gateway_core.openai.responses import ResponsesPlan, plan_responses, remember
from gateway_core.openai.responses_render import ResponsesStream, response_answer
from gateway_core.openai.sessions import LinkMap, Scope, auth_subject, previous_response_settings

from .. import _runtime
from .request import Request

if TYPE_CHECKING:
    from ..app import Gateway
    from ..turns import RunWatch

Caller = httpauth.Caller
RESPONSE_LINKS: Final = "response"
CONVERSATION_LINKS: Final = "conversation"


class HttpState:
    """Per gateway run: the link maps of the OpenAI routes (loaded from the store once, if persisted)."""

    def __init__(self) -> None:
        self.responses = LinkMap()
        self.conversations = ConversationLinks()
        self._loaded = False
        self._loading: trio.Event | None = None

    async def ready(self, gw: Gateway) -> None:
        """Load the persisted links on first use (once; concurrent first requests wait for it)."""
        if self._loaded:
            return
        if self._loading is not None:
            await self._loading.wait()
            return
        self._loading = trio.Event()
        try:
            store = await gw.agents.ready_store()
            now = _runtime.wall_ms()
            if store is not None:
                prs = previous_response_settings(gw.app.config)
                conv = conversation_settings(gw.app.config)
                self.responses = LinkMap(prs.ttl_ms, prs.max_entries)
                if prs.persist:
                    self.responses.load(await store.call("load_links", RESPONSE_LINKS, now - prs.ttl_ms), now)
                if conv.persist:
                    links = self.conversations.links
                    links.load(await store.call("load_links", CONVERSATION_LINKS, now - links.ttl_ms), now)
        except Exception as exc:  # noqa: BLE001 - a store problem loses links, never the route
            gw.log.warn("gateway/http", f"could not load persisted links: {exc}")
        finally:
            self._loaded = True
            self._loading.set()

    async def persist(self, gw: Gateway, kind: str, record: dict[str, Any] | None, links: LinkMap) -> None:
        store = await gw.agents.ready_store()
        if record is None or store is None:
            return
        try:
            await store.call(
                "save_link", kind, record, max_entries=links.max_entries, oldest_ms=_runtime.wall_ms() - links.ttl_ms
            )
        except Exception as exc:  # noqa: BLE001 - the link stays in memory
            gw.log.warn("gateway/http", f"could not persist a {kind} link: {exc}")


def http_state(gw: Gateway) -> HttpState:
    state = gw.app.parts.get("http")
    if state is None:
        state = gw.app.parts["http"] = HttpState()
    return state


def context(req: Request, gw: Gateway, caller: Caller, *, aux: int = 0) -> RequestContext:
    """The pure layer's view of the request (ids and clocks from the runtime)."""
    now = _runtime.wall_ms()
    return RequestContext(
        headers=req.headers,
        roster=gw.app.roster,
        config=gw.app.config,
        request_id=_runtime.new_uuid(),
        now_s=now // 1000,
        now_ms=now,
        sender_is_owner=caller.owner,
        auth_subject=auth_subject(caller.method, httpauth.bearer(req.headers), caller.user),
        aux_ids=tuple(_runtime.new_uuid() for _ in range(aux)),
    )


def _agent(gw: Gateway, agent_id: str) -> R.Agent:
    agent = gw.app.roster.get(agent_id)
    if agent is None:  # the plan resolved it against the same roster: a reload raced the request
        raise wire.Refused(wire.invalid_request(models.unknown_agent(agent_id)))
    return agent


async def _run_here(req: Request, gw: Gateway, spec: Any, run_id: str) -> Any:
    """Drive the run in this task and return its result; the client going away aborts it (the
    upstream request is closed at once) and the aborted run still settles. The answer is written
    after that: a client slow to read it holds no run (nor its lane or slot) meanwhile."""
    req.watch_disconnect(on_gone=lambda: gw.abort_run(run_id))
    return await gw.drive_turn(spec, run_id)


async def _stream(
    req: Request, gw: Gateway, renderer: ChatStream | ResponsesStream, watch_start: Any, run_id: str
) -> tuple[Any, bytes]:
    """Write the stream: head and opening frames, then a frame per delta of the run's text; the
    run's result and the frames still to write with the end. On an otherwise idle gateway the
    run's task sends its upstream request first (one scheduling pass), so the opening write
    overlaps the upstream's work instead of delaying its request; with other work queued the
    opening goes out at once (a pass would put it behind all of that work). Either way it
    precedes the model's answer. The deltas that queued while a write was waiting for the socket
    go out in one write (still a frame each); the watch holds the run's upstream while this is
    behind. Deltas taken once the run has settled go out with the end, in one write (a quick
    answer: two writes in all, the opening and the rest)."""
    watch: RunWatch = watch_start()
    try:
        if trio.lowlevel.current_statistics().tasks_runnable <= 1:  # only the run's task, just started
            await _runtime.one_pass()  # it runs up to its first wait (the upstream's answer) first
        await req.open_stream(200, wire.SSE_HEADERS)
        await req.write(renderer.open())
        while (deltas := await watch.take()) is not None:
            frames = b"".join(renderer.assistant(delta=d) for d in deltas)
            if watch.settled and not watch.buffered:  # nothing more comes: these go with the end
                return watch.result, frames
            if frames:
                await req.write(frames)
        return watch.result, b""
    finally:
        if not watch.settled:
            gw.abort_run(run_id)
            gw.watches.drop(run_id)


# --------------------------------------------------------------------------- /v1/models


async def models_route(req: Request, gw: Gateway, found: Match, caller: Caller | None) -> None:
    roster = gw.app.roster
    await req.answer(models.models_list(roster) if found.row.name == "models" else models.model_detail(roster, found.rest))


# --------------------------------------------------------------------------- /v1/embeddings


async def embeddings_route(req: Request, gw: Gateway, found: Match, caller: Caller | None) -> None:
    assert caller is not None
    body = await req.body(found.row.body_limit)
    plan = plan_embeddings(body, context(req, gw, caller))
    if plan.offline:
        await req.answer(embeddings_answer(plan, plan.offline_vectors()))
        return
    request = plan.request(gw.app.config, gw.app.provider_keys)
    if request is None:
        await req.answer(embeddings_failure())
        return
    req.watch_disconnect()
    try:
        result = await gw.agents.embed(request)
    except Exception as exc:  # noqa: BLE001 - provider failures are one 500 (as published), the cause logged
        gw.log.warn("gateway/http", f"embeddings via {plan.provider} failed: {exc}")
        await req.answer(embeddings_failure())
        return
    await req.answer(embeddings_answer(plan, result.vectors))


# --------------------------------------------------------------------------- /v1/chat/completions


def _spec(gw: Gateway, plan: ChatPlan | ResponsesPlan) -> Any:
    # A non-streaming answer needs only the end: the run's deltas are not published for it.
    return plan.turn_spec(_agent(gw, plan.agent_id), timeout_s=R.run_timeout_s(gw.app.config), route_text=plan.stream)


async def chat_route(req: Request, gw: Gateway, found: Match, caller: Caller | None) -> None:
    assert caller is not None
    body = await req.body(found.row.body_limit)
    state = http_state(gw)
    settings = conversation_settings(gw.app.config)
    if settings.mode == "conversation":
        await state.ready(gw)
    ctx = context(req, gw, caller)
    plan = plan_chat(body, ctx, conversation=(settings, state.conversations))
    spec = _spec(gw, plan)
    if plan.stream:
        result, tail = await _stream(req, gw, renderer := ChatStream(plan), lambda: gw.start_turn(spec, plan.run_id), plan.run_id)
        await req.end(tail + (renderer.finish(result) if result is not None else renderer.fail()))
    else:
        result = await _run_here(req, gw, spec, plan.run_id)
        await req.answer(chat_completion(plan, result) if result is not None else wire.internal_error())
    derived = plan.conversation
    if derived is not None and derived.source == "first" and result is not None and result.status == "ok":
        scope = _scope(ctx, plan.agent_id)
        record = state.conversations.remember(
            derived, scope=scope, user=_user(body), reply=result.text or "", now_ms=_runtime.wall_ms()
        )
        if settings.persist:
            await state.persist(gw, CONVERSATION_LINKS, record, state.conversations.links)


def _scope(ctx: RequestContext, agent_id: str) -> Scope:
    return Scope.of(ctx.auth_subject, agent_id, ctx.headers)


def _user(body: bytes) -> str | None:
    """The request's ``user`` (the body parsed once already, so this cannot fail)."""
    payload = parse_body(body)
    user = payload.get("user") if isinstance(payload, dict) else None
    return user if isinstance(user, str) else None


# --------------------------------------------------------------------------- /v1/responses


async def responses_route(req: Request, gw: Gateway, found: Match, caller: Caller | None) -> None:
    assert caller is not None
    body = await req.body(found.row.body_limit)
    state = http_state(gw)
    await state.ready(gw)
    plan = plan_responses(body, context(req, gw, caller, aux=1), state.responses)
    spec = _spec(gw, plan)
    run_id = plan.response_id
    if plan.stream:
        renderer = ResponsesStream(plan)
        result, tail = await _stream(req, gw, renderer, lambda: gw.start_turn(spec, run_id), run_id)
        ids = _call_ids(result)
        await req.end(tail + (renderer.finish(result, ids) if result is not None else renderer.fail()))
    else:
        result = await _run_here(req, gw, spec, run_id)
        await req.answer(response_answer(plan, result, _call_ids(result)) if result is not None else wire.internal_error())
    if result is None:
        return
    record = remember(state.responses, plan, _runtime.wall_ms())
    if previous_response_settings(gw.app.config).persist:
        await state.persist(gw, RESPONSE_LINKS, record, state.responses)


def _call_ids(result: Any) -> tuple[str, ...]:
    calls = getattr(result, "tool_calls", None) or ()
    return tuple(_runtime.new_uuid() for _ in calls)


HANDLERS: Final = {
    "models": models_route,
    "model": models_route,
    "embeddings": embeddings_route,
    "chat.completions": chat_route,
    "responses": responses_route,
}

__all__ = ["HANDLERS", "HttpState", "context", "http_state"]
