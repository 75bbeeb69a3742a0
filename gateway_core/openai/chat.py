"""``POST /v1/chat/completions``: from request bytes to a planned turn (http-agents-channels.md §1.6.4, §2.4).

:func:`plan_chat` runs the published checks in the published order and raises
:class:`~gateway_core.openai.wire.Refused` at the first failure (every one is answered before any
run, as JSON even for ``stream:true``):

1. ``x-openclaw-model`` without owner/admin authority → 403 missing scope ``operator.admin``;
2. the body: not JSON → 400 with V8's ``JSON.parse`` text; schema → 400 ``<path>: <zod message>``;
3. ``max_completion_tokens``/``max_tokens``, ``response_format``, ``stop``, sampling ranges;
4. the agent (§2.1), the session (§2.3, or conversation mode), incognito keys;
5. ``x-openclaw-model`` resolution; tools and ``tool_choice``; images; no user text at all.

The object is not strict: unknown keys (``n``, ``logprobs``, …) are ignored.
"""

from __future__ import annotations

import math
from typing import Any, Final

from msgspec import Struct

from ..agents.loop import TurnSpec
from ..agents.roster import Agent, Roster
from ..providers.types import ToolSpec
from . import schema as z
from .conversation import ConversationLinks, ConversationSettings, Derived, since_last_reply
from .jsonbody import BadJson, parse_body
from .models import header, model_override, resolve_agent
from .prompt import DEFAULT_IMAGE_RULES, ImageRules, chat_prompt, resolve_images
from .sessions import CHAT_PREFIX, Scope, authorize_session, minted, session_key
from .toolchoice import Requirement, apply_choice, chat_choice, chat_tools
from .wire import Refused, invalid_request, missing_scope

MODEL_HEADER: Final = "x-openclaw-model"
CHANNEL_HEADER: Final = "x-openclaw-message-channel"
DEFAULT_CHANNEL: Final = "webchat"
MISSING_USER: Final = "Missing user message in `messages`."
INVALID_IMAGES: Final = "Invalid image_url content in `messages`."
BODY_LIMIT: Final = 20 * 1024 * 1024


def _nullish(schema: z.Schema) -> z.Schema:
    return schema.nullish()


#: The published request schema (zod, non-strict), key order as declared there.
CHAT_SCHEMA: Final = z.Obj(
    {
        "model": z.Str().opt(),
        "stream": _nullish(z.Bool()),
        "stream_options": _nullish(z.Obj({"include_usage": z.Bool().opt()}, mode="passthrough")),
        "tools": z.Arr(z.Unknown()).opt(),
        "tool_choice": z.Unknown(),
        "messages": z.Arr(z.Unknown()).opt(),
        "user": z.Str().opt(),
        "max_tokens": _nullish(z.Num(integer=True, positive=True)),
        "max_completion_tokens": _nullish(z.Num(integer=True, positive=True)),
        "temperature": _nullish(z.Num()),
        "top_p": _nullish(z.Num()),
        "response_format": z.Unknown(),
        "frequency_penalty": _nullish(z.Num()),
        "presence_penalty": _nullish(z.Num()),
        "seed": _nullish(z.Num()),
        "stop": _nullish(z.Union(z.Str(), z.Arr(z.Str()))),
    }
)

#: Sampling checks after the schema: (field, low, high, range message).
SAMPLING: Final = (
    ("temperature", 0.0, 2.0, "`temperature` must be between 0 and 2."),
    ("top_p", 0.0, 1.0, "`top_p` must be between 0 and 1."),
    ("frequency_penalty", -2.0, 2.0, "`frequency_penalty` must be between -2.0 and 2.0."),
    ("presence_penalty", -2.0, 2.0, "`presence_penalty` must be between -2.0 and 2.0."),
)


class RequestContext(Struct, frozen=True, kw_only=True):
    """What the route glue knows about the request besides its body (ids and clocks come from the host)."""

    headers: dict[str, str]  # lower-case names
    roster: Roster
    config: dict[str, Any] | None = None
    #: A fresh uuid4 (``str(uuid.uuid4())``): the run id and a stateless session key use it.
    request_id: str
    #: Wall clock in seconds (``created``) and milliseconds (links).
    now_s: int
    now_ms: int = 0
    #: Shared-secret callers, or identity callers with ``operator.admin``.
    sender_is_owner: bool = True
    #: Scope of links (``sessions.auth_subject``).
    auth_subject: str = "gateway-auth:token"
    #: The agent's model allowlist, if one is configured (``x-openclaw-model`` checks).
    model_allow: tuple[str, ...] | None = None
    #: More fresh uuid4s when a route needs them (Responses: the output message item's id).
    aux_ids: tuple[str, ...] = ()


class PlannedTurn(Struct, frozen=True, kw_only=True):
    """What both routes plan: the agent, its session, the message and the run's options."""

    agent_id: str
    session_key: str
    message: str
    extra_system: str | None
    images: tuple[dict[str, Any], ...]
    client_tools: tuple[ToolSpec, ...]
    requirement: Requirement | None
    model_override: str | None
    max_tokens: int | None
    params: dict[str, Any]
    channel: str
    #: The session key was minted from this request's fresh uuid (stateless): no such session exists.
    new_session: bool = False

    def turn_spec(self, agent: Agent, **extra: Any) -> TurnSpec:
        """The agent runtime's :class:`TurnSpec` (``agent`` is the roster entry for :attr:`agent_id`)."""
        return turn_spec(self, agent, **extra)


class ChatPlan(PlannedTurn, frozen=True, kw_only=True):
    """A validated chat completion: the turn to run and how to answer it."""

    run_id: str  # chatcmpl_<uuid>, also the completion's id
    created: int
    model: str  # echoed as given ("openclaw" when omitted)
    stream: bool
    include_usage: bool
    #: Conversation mode only: how the session was found (the glue calls ``remember`` for ``first``).
    conversation: Derived | None = None


def turn_spec(plan: PlannedTurn, agent: Agent, **extra: Any) -> TurnSpec:
    """A planned OpenAI-compatible turn as a :class:`TurnSpec` (chat and responses plans alike).

    ``tool_choice`` stays unset: a forcing choice is prompt text plus a check afterwards (§9.3).
    """
    return TurnSpec(
        agent=agent, session_key=plan.session_key, message=plan.message, surface="http", images=plan.images,
        extra_system=plan.extra_system, client_tools=plan.client_tools, tool_choice=None,
        model_override=plan.model_override, max_tokens=plan.max_tokens, params=plan.params, channel=plan.channel,
        new_session=plan.new_session, **extra,
    )


def read_json(body: bytes) -> Any:
    """The body's JSON (``{}`` when empty); 400 with V8's text when it is not JSON."""
    try:
        return parse_body(body)
    except BadJson as bad:
        raise Refused(invalid_request(bad.message)) from None


def check_override_authority(headers: dict[str, str], sender_is_owner: bool) -> None:
    """``x-openclaw-model`` needs owner/admin authority (checked before the body is parsed)."""
    if header(headers, MODEL_HEADER) is not None and not sender_is_owner:
        raise Refused(missing_scope("operator.admin"))


def _token_cap(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer() or not 0 < value <= z.MAX_SAFE:
        raise Refused(invalid_request(f"{field} must be a positive safe integer"))
    return int(value)


def _response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Refused(invalid_request("Invalid response_format: response_format must be an object"))
    if value.get("type") not in ("text", "json_object", "json_schema"):
        raise Refused(invalid_request("Invalid response_format: response_format.type must be text, json_object, or json_schema"))
    return value


def _stop(value: Any) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if len(items) > 4:
        raise Refused(invalid_request("Invalid stop: stop supports at most 4 sequences"))
    if any(not isinstance(s, str) or not s for s in items):
        raise Refused(invalid_request("Invalid stop: stop entries must be non-empty strings"))
    return list(items) or None


def _sampling(payload: dict[str, Any]) -> None:
    for field, low, high, message in SAMPLING:
        value = payload.get(field)
        if value is None:
            continue
        if not math.isfinite(value):
            raise Refused(invalid_request(f"`{field}` must be a finite number."))
        if not low <= value <= high:
            raise Refused(invalid_request(message))
    seed = payload.get("seed")
    if seed is not None and not float(seed).is_integer():
        raise Refused(invalid_request("`seed` must be an integer."))


def stream_params(payload: dict[str, Any]) -> dict[str, Any]:
    """``TurnSpec.params``: the sampling fields given (response_format and stop validated)."""
    out: dict[str, Any] = {}
    for field in ("temperature", "top_p", "frequency_penalty", "presence_penalty", "seed"):
        value = payload.get(field)
        if value is not None:
            out[field] = int(value) if field == "seed" else value
    fmt = _response_format(payload.get("response_format"))
    if fmt is not None:
        out["response_format"] = fmt
    stop = _stop(payload.get("stop"))
    if stop is not None:
        out["stop"] = stop
    return out


def channel_of(headers: dict[str, str]) -> str:
    """``x-openclaw-message-channel``, lower-cased; ``webchat`` when absent."""
    value = header(headers, CHANNEL_HEADER)
    return value.lower() if value else DEFAULT_CHANNEL


def plan_chat(
    body: bytes,
    ctx: RequestContext,
    *,
    conversation: tuple[ConversationSettings, ConversationLinks] | None = None,
    images: ImageRules = DEFAULT_IMAGE_RULES,
) -> ChatPlan:
    """Validate a chat completion request and plan its turn; raises :class:`Refused`."""
    headers = ctx.headers
    check_override_authority(headers, ctx.sender_is_owner)
    payload = read_json(body)
    problem = z.first_issue(CHAT_SCHEMA, payload)
    if problem is not None:
        raise Refused(invalid_request(problem))
    stream = payload.get("stream") is True
    options = payload.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    model = payload["model"] if isinstance(payload.get("model"), str) else "openclaw"
    user = payload.get("user") if isinstance(payload.get("user"), str) else None
    cap = _token_cap(payload.get("max_completion_tokens"), "max_completion_tokens")
    legacy = _token_cap(payload.get("max_tokens"), "max_tokens")
    params = stream_params(payload)
    _sampling(payload)
    agent_id = resolve_agent(ctx.roster, model, headers)
    derived: Derived | None = None
    messages = payload.get("messages")
    if conversation is not None and conversation[0].mode == "conversation":
        settings, links = conversation
        derived = links.derive(
            settings, agent_id=agent_id, prefix=CHAT_PREFIX, headers=headers, body=payload,
            scope=Scope.of(ctx.auth_subject, agent_id, headers), request_id=ctx.request_id, now_ms=ctx.now_ms,
        )
        key = derived.session_key
        if settings.history == "session" and derived.source in ("linked", "anchor", "id", "header"):
            messages = since_last_reply(messages)
    elif conversation is not None and conversation[0].mode == "stateless":
        key = session_key(agent_id, CHAT_PREFIX, headers, None, ctx.request_id)
    else:
        key = session_key(agent_id, CHAT_PREFIX, headers, user, ctx.request_id)
    authorize_session(key, ctx.sender_is_owner)
    override = model_override(ctx.config, ctx.roster, agent_id, header(headers, MODEL_HEADER), allowed=ctx.model_allow)
    prompt = chat_prompt(messages)
    try:
        tools, requirement = apply_choice(chat_tools(payload.get("tools")), chat_choice(payload.get("tool_choice")))
    except ValueError as bad:
        raise Refused(invalid_request(f"Invalid tools/tool_choice: {str(bad).strip()}")) from None
    try:
        pictures = resolve_images(prompt.image_urls, images)
    except ValueError as bad:
        raise Refused(invalid_request(INVALID_IMAGES), str(bad)) from None
    if not prompt.message and not pictures:
        raise Refused(invalid_request(MISSING_USER))
    extra = "\n\n".join(p for p in (prompt.extra_system, requirement.prompt if requirement else None) if p)
    return ChatPlan(
        run_id=f"chatcmpl_{ctx.request_id}",
        created=ctx.now_s,
        model=model,
        stream=stream,
        include_usage=include_usage,
        agent_id=agent_id,
        session_key=key,
        new_session=minted(key, ctx.request_id),
        message=prompt.message,
        extra_system=extra or None,
        images=tuple(pictures),
        client_tools=tuple(tools),
        requirement=requirement,
        model_override=override,
        max_tokens=cap if cap is not None else legacy,
        params=params,
        channel=channel_of(headers),
        conversation=derived,
    )


__all__ = [
    "BODY_LIMIT",
    "CHAT_SCHEMA",
    "INVALID_IMAGES",
    "MISSING_USER",
    "MODEL_HEADER",
    "ChatPlan",
    "PlannedTurn",
    "RequestContext",
    "channel_of",
    "check_override_authority",
    "plan_chat",
    "read_json",
    "stream_params",
    "turn_spec",
]
