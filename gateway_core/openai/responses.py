"""``POST /v1/responses``: request validation and the planned turn (http-agents-channels.md §1.6.5, §2.4).

The body is a **strict** object (zod): an unknown top-level key is 400 ``: Unrecognized key:
"service_tier"`` — note the empty path before ``": "``. Input items are strict too. The checks, in
the published order: ``x-openclaw-model`` authority (403), JSON (400), schema (400), agent (400),
``x-openclaw-model`` resolution (400), input files/images (400 ``invalid request``), tools and
``tool_choice`` (400 ``invalid tool configuration``), session (400 reserved key, or the session of
``previous_response_id`` within its scope), incognito (403), no user text (400 ``Missing user
message in `input`.``).
"""

from __future__ import annotations

from typing import Any, Final

from ..providers.types import ToolSpec
from . import schema as z
from .chat import MODEL_HEADER, PlannedTurn, RequestContext, channel_of, check_override_authority, read_json
from .models import header, model_override, resolve_agent
from .prompt import DEFAULT_IMAGE_MIMES, responses_prompt
from .sessions import RESPONSES_PREFIX, LinkMap, Scope, authorize_session, link_record, minted, session_key
from .toolchoice import apply_choice, responses_choice
from .wire import Refused, invalid_request

MISSING_INPUT: Final = "Missing user message in `input`."
INVALID_TOOLS: Final = "invalid tool configuration"
INVALID_INPUT: Final = "invalid request"
MAX_URL_PARTS: Final = 8
BODY_LIMIT: Final = 20 * 1024 * 1024

_ITEM_STATUS = ("in_progress", "completed", "incomplete")


def _source(url_or_base64: dict[str, z.Schema]) -> z.Tagged:
    return z.Tagged("type", {"url": z.Obj({"type": z.Literal("url"), "url": z.Str(url=True)}),
                             "base64": z.Obj({"type": z.Literal("base64"), **url_or_base64})})


_PART: Final = z.Tagged(
    "type",
    {
        "input_text": z.Obj({"type": z.Literal("input_text"), "text": z.Str()}, "strict"),
        "output_text": z.Obj({"type": z.Literal("output_text"), "text": z.Str()}, "strict"),
        "input_image": z.Obj({"type": z.Literal("input_image"), "source": _source(
            {"media_type": z.Enum(*DEFAULT_IMAGE_MIMES), "data": z.Str(min_len=1)})}, "strict"),
        "input_file": z.Obj({"type": z.Literal("input_file"), "source": _source(
            {"media_type": z.Str(min_len=1), "data": z.Str(min_len=1), "filename": z.Str().opt()})}, "strict"),
    },
)
_ITEM: Final = z.Tagged(
    "type",
    {
        "message": z.Obj(
            {
                "type": z.Literal("message"),
                "id": z.Str().opt(),
                "role": z.Enum("system", "developer", "user", "assistant"),
                "content": z.Union(z.Str(), z.Arr(_PART)),
                "phase": z.Enum("commentary", "final_answer").opt(),
                "status": z.Enum(*_ITEM_STATUS).opt(),
            },
            "strict",
            refine=[(lambda v: v.get("phase") is None or v.get("role") == "assistant", ("phase",),
                     "`phase` is only valid on assistant messages.")],
        ),
        "function_call": z.Obj(
            {"type": z.Literal("function_call"), "id": z.Str().opt(), "call_id": z.Str().opt(), "name": z.Str(),
             "arguments": z.Str(), "status": z.Enum(*_ITEM_STATUS).opt()},
            "strict",
        ),
        "function_call_output": z.Obj(
            {"type": z.Literal("function_call_output"), "call_id": z.Str(), "output": z.Str()}, "strict"
        ),
        "reasoning": z.Obj(
            {"type": z.Literal("reasoning"), "content": z.Str().opt(), "encrypted_content": z.Str().opt(),
             "summary": z.Str().opt()},
            "strict",
        ),
        "item_reference": z.Obj({"type": z.Literal("item_reference"), "id": z.Str()}, "strict"),
    },
)
_TOOL: Final = z.Obj(
    {"type": z.Literal("function"), "name": z.Str(min_len=1, min_message="Tool name cannot be empty"),
     "description": z.Str().opt(), "parameters": z.Record(z.Unknown()).opt(), "strict": z.Bool().opt()},
    "strict",
)
_CHOICE: Final = z.Union(
    z.Literal("auto"), z.Literal("none"), z.Literal("required"),
    z.Obj({"type": z.Literal("function"), "name": z.Str(min_len=1)}, "strict"),
    z.Obj({"type": z.Literal("function"), "function": z.Obj({"name": z.Str(min_len=1)})}, "strict"),
)

#: The published request schema, key order as declared there.
RESPONSES_SCHEMA: Final = z.Obj(
    {
        "model": z.Str(),
        "input": z.Union(z.Str(), z.Arr(_ITEM)),
        "instructions": z.Str().opt(),
        "tools": z.Arr(_TOOL).opt(),
        "tool_choice": _CHOICE.opt(),
        "text": z.Obj({"format": z.Obj({"type": z.Literal("text")}, "strict")}, "strict").opt(),
        "stream": z.Bool().opt(),
        "max_output_tokens": z.Num(integer=True, positive=True).opt(),
        "max_tool_calls": z.Num(integer=True, positive=True).opt(),
        "user": z.Str().opt(),
        "temperature": z.Num(lo=0, hi=2).opt(),
        "top_p": z.Num(lo=0, hi=1).opt(),
        "metadata": z.Record(z.Str()).opt(),
        "store": z.Bool().opt(),
        "previous_response_id": z.Str().opt(),
        "reasoning": z.Obj({"effort": z.Enum("low", "medium", "high").opt(),
                            "summary": z.Enum("auto", "concise", "detailed").opt()}).opt(),
        "truncation": z.Enum("auto", "disabled").opt(),
    },
    "strict",
)


class ResponsesPlan(PlannedTurn, frozen=True, kw_only=True):
    """A validated Responses request: the turn to run and how to answer it."""

    response_id: str  # resp_<uuid>, also the run id
    message_id: str  # msg_<uuid> of the assistant output item
    created_at: int
    model: str
    stream: bool
    scope: Scope
    #: Whether the session came from ``previous_response_id``.
    continued: bool = False


def _images_of(payload: dict[str, Any], active: int) -> list[dict[str, Any]]:
    """Base64 images of the active user message; URL sources are counted (``maxUrlParts``) and left to the host.

    ``input_file`` parts and URL images need fetching and extraction (PDF, text, SSRF guards): the
    host does that and adds their text to the extra system prompt wrapped as external content.
    """
    items = payload["input"] if isinstance(payload["input"], list) else []
    url_parts = 0
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if item.get("type") != "message" or isinstance(item["content"], str):
            continue
        for part in item["content"]:
            if part["type"] not in ("input_image", "input_file"):
                continue
            if part["source"]["type"] == "url":
                url_parts += 1
                if url_parts > MAX_URL_PARTS:
                    raise Refused(invalid_request(INVALID_INPUT), f"Too many URL-based input sources: {url_parts}")
            if i != active or part["type"] != "input_image":
                continue
            source = part["source"]
            if source["type"] == "base64":
                out.append({"type": "image", "data": source["data"], "mimeType": source["media_type"]})
            else:
                out.append({"type": "image", "url": source["url"]})
    return out


def plan_responses(body: bytes, ctx: RequestContext, links: LinkMap | None = None) -> ResponsesPlan:
    """Validate a Responses request and plan its turn; raises :class:`Refused`.

    ``ctx.request_id`` makes ``resp_<uuid>``, ``ctx.aux_ids[0]`` the output item's ``msg_<uuid>``
    (derived from the request id when the host passes none).
    """
    headers = ctx.headers
    check_override_authority(headers, ctx.sender_is_owner)
    payload = read_json(body)
    problem = z.first_issue(RESPONSES_SCHEMA, payload)
    if problem is not None:
        raise Refused(invalid_request(problem))
    model: str = payload["model"]
    agent_id = resolve_agent(ctx.roster, model, headers)
    override = model_override(ctx.config, ctx.roster, agent_id, header(headers, MODEL_HEADER), allowed=ctx.model_allow)
    prompt = responses_prompt(payload["input"])
    images = _images_of(payload, prompt.active)
    tools = [
        ToolSpec(name=t["name"], description=t.get("description") or "", parameters=t.get("parameters") or {})
        for t in payload.get("tools") or ()
    ]
    try:
        tools, requirement = apply_choice(tools, responses_choice(payload.get("tool_choice")))
    except ValueError as bad:
        raise Refused(invalid_request(INVALID_TOOLS), str(bad)) from None
    fresh = session_key(agent_id, RESPONSES_PREFIX, headers, payload.get("user"), ctx.request_id)
    scope = Scope.of(ctx.auth_subject, agent_id, headers)
    previous = links.lookup(payload.get("previous_response_id"), scope, ctx.now_ms) if links is not None else None
    key = previous or fresh
    authorize_session(key, ctx.sender_is_owner)
    extra = "\n\n".join(
        p for p in (payload.get("instructions"), prompt.extra_system, requirement.prompt if requirement else None) if p
    )
    if not prompt.message:
        raise Refused(invalid_request(MISSING_INPUT))
    params = {k: payload[k] for k in ("temperature", "top_p") if isinstance(payload.get(k), int | float)}
    ids = ctx.request_id
    return ResponsesPlan(
        response_id=f"resp_{ids}",
        message_id=f"msg_{ctx.aux_ids[0] if ctx.aux_ids else message_uuid(ids)}",
        created_at=ctx.now_s,
        model=model,
        stream=payload.get("stream") is True,
        agent_id=agent_id,
        session_key=key,
        new_session=minted(key, ctx.request_id),
        scope=scope,
        message=prompt.message,
        extra_system=extra or None,
        images=tuple(images),
        client_tools=tuple(tools),
        requirement=requirement,
        model_override=override,
        max_tokens=payload.get("max_output_tokens"),
        params=params,
        channel=channel_of(headers),
        continued=previous is not None,
    )


def remember(links: LinkMap, plan: ResponsesPlan, now_ms: int) -> dict[str, Any]:
    """After a completed, failed or mapped-error answer (not after a disconnect): link the response id
    to its session for ``previous_response_id``. Returns the record a persisting host writes."""
    return link_record(links.store(plan.response_id, plan.session_key, plan.scope, now_ms))


def message_uuid(request_id: str) -> str:
    """A second uuid-shaped id derived from the request's, for hosts that pass only one."""
    head, _, tail = request_id.rpartition("-")
    return f"{head}-{tail[::-1]}" if head else request_id[::-1]


__all__ = ["BODY_LIMIT", "INVALID_INPUT", "INVALID_TOOLS", "MISSING_INPUT", "RESPONSES_SCHEMA", "ResponsesPlan",
           "message_uuid", "plan_responses", "remember"]
