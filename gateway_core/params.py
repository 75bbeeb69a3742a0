"""Params schemas of the core methods (protocol.md §14), as closed msgspec Structs.

The core validates these before handing a request to the application, so an invalid call answers
``INVALID_REQUEST "invalid <method> params: <text>"`` exactly as the published gateway does, and
handlers receive typed values. Methods whose params the published gateway ignores or does not
validate have no entry in :data:`PARAMS_SCHEMAS`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from .errors import invalid_request
from .frames import ErrorShape, NonEmptyStr, NonNegInt


class Params(Struct, forbid_unknown_fields=True, omit_defaults=True, rename="camel", kw_only=True):
    """Base for closed method params."""


class OpenParams(Struct, omit_defaults=True, rename="camel", kw_only=True):
    """Base for params objects that tolerate extra properties (as ``wake`` does)."""


class Empty(Params):
    """``{}``, closed (``config.get``, ``config.schema``)."""


class LogsTailParams(Params):
    """``sinceMs`` (records newer than now − sinceMs) is the runbook's; the published 2026.9.6
    schema has no such key and refuses it (the runbook wins, design.md §1)."""

    cursor: NonNegInt | UnsetType = UNSET
    limit: Annotated[int, Meta(ge=1, le=5000)] | UnsetType = UNSET
    max_bytes: Annotated[int, Meta(ge=1, le=1_000_000)] | UnsetType = UNSET
    since_ms: NonNegInt | UnsetType = UNSET


class ConfigSetParams(Params):
    raw: NonEmptyStr
    base_hash: str | UnsetType = UNSET


class DeliveryContext(Params):
    channel: str | UnsetType = UNSET
    to: str | UnsetType = UNSET
    account_id: str | UnsetType = UNSET
    thread_id: str | UnsetType = UNSET


class ConfigApplyParams(Params):
    raw: NonEmptyStr
    base_hash: str | UnsetType = UNSET
    session_key: str | UnsetType = UNSET
    delivery_context: DeliveryContext | UnsetType = UNSET
    note: str | UnsetType = UNSET
    restart_delay_ms: NonNegInt | UnsetType = UNSET


class ConfigPatchParams(ConfigApplyParams):
    replace_paths: Annotated[list[str], Meta(max_length=256)] | UnsetType = UNSET


class ConfigSchemaLookupParams(Params):
    path: str


class ChannelsStatusParams(Params):
    probe: bool | UnsetType = UNSET
    timeout_ms: NonNegInt | UnsetType = UNSET
    channel: str | UnsetType = UNSET


class ModelsListParams(Params):
    agent_id: str | UnsetType = UNSET
    session_key: str | UnsetType = UNSET
    auth_profile_id: str | UnsetType = UNSET
    provider: str | UnsetType = UNSET
    include_details: bool | UnsetType = UNSET
    include_provider_capabilities: bool | UnsetType = UNSET
    include_default_models: bool | UnsetType = UNSET
    prepared_only: bool | UnsetType = UNSET
    refresh: bool | UnsetType = UNSET
    view: Literal["default", "configured", "provider-config", "all"] | UnsetType = UNSET


class AgentParams(Params):
    message: NonEmptyStr
    idempotency_key: NonEmptyStr
    agent_id: str | UnsetType = UNSET
    provider: str | UnsetType = UNSET
    model: str | UnsetType = UNSET
    to: str | UnsetType = UNSET
    reply_to: str | UnsetType = UNSET
    session_id: str | UnsetType = UNSET
    session_key: str | UnsetType = UNSET
    thinking: str | UnsetType = UNSET
    deliver: bool | UnsetType = UNSET
    attachments: list[Any] | UnsetType = UNSET
    channel: str | UnsetType = UNSET
    reply_channel: str | UnsetType = UNSET
    account_id: str | UnsetType = UNSET
    reply_account_id: str | UnsetType = UNSET
    thread_id: str | UnsetType = UNSET
    group_id: str | UnsetType = UNSET
    group_channel: str | UnsetType = UNSET
    group_space: str | UnsetType = UNSET
    timeout: NonNegInt | UnsetType = UNSET
    best_effort_deliver: bool | UnsetType = UNSET
    lane: str | UnsetType = UNSET
    label: str | UnsetType = UNSET
    extra_system_prompt: str | UnsetType = UNSET


class AgentWaitParams(Params):
    run_id: NonEmptyStr
    timeout_ms: NonNegInt | UnsetType = UNSET


class ChatSendParams(Params):
    session_key: Annotated[str, Meta(min_length=1, max_length=512)]
    message: str
    idempotency_key: NonEmptyStr
    agent_id: str | UnsetType = UNSET
    session_id: str | UnsetType = UNSET
    thinking: str | UnsetType = UNSET
    fast_mode: bool | Literal["auto"] | UnsetType = UNSET
    queue_mode: Literal["steer", "followup", "collect", "interrupt"] | UnsetType = UNSET
    deliver: bool | UnsetType = UNSET
    attachments: list[Any] | UnsetType = UNSET
    timeout_ms: NonNegInt | UnsetType = UNSET
    reply_to_id: str | UnsetType = UNSET
    #: A transcript-branch compare-and-swap (the published Control UI sends it with every send).
    #: Accepted and not checked: our transcripts have one branch, so no other client can switch it.
    expected_leaf_entry_id: str | None | UnsetType = UNSET
    fast_auto_on_seconds: Annotated[float, Meta(ge=0)] | UnsetType = UNSET


class ChatHistoryParams(Params):
    session_key: NonEmptyStr
    agent_id: str | UnsetType = UNSET
    cursor: Any | UnsetType = UNSET
    limit: Annotated[int, Meta(ge=1, le=1000)] | UnsetType = UNSET
    max_bytes: Annotated[int, Meta(ge=1024)] | UnsetType = UNSET
    offset: NonNegInt | UnsetType = UNSET
    pending_before: Any | UnsetType = UNSET
    input_run_ids: list[str] | UnsetType = UNSET
    message_id: str | UnsetType = UNSET
    session_id: str | UnsetType = UNSET
    max_chars: Annotated[int, Meta(ge=1)] | UnsetType = UNSET


class ChatAbortParams(Params):
    session_key: NonEmptyStr
    agent_id: str | UnsetType = UNSET
    run_id: str | UnsetType = UNSET
    preserve_side_runs: bool | UnsetType = UNSET


class SessionsListParams(Params):
    limit: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    configured_agents_only: bool | UnsetType = UNSET
    include_derived_titles: bool | UnsetType = UNSET
    include_last_message: bool | UnsetType = UNSET
    offset: NonNegInt | UnsetType = UNSET
    active_minutes: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    active_only: bool | UnsetType = UNSET
    sort_by: str | UnsetType = UNSET
    include_global: bool | UnsetType = UNSET
    include_unknown: bool | UnsetType = UNSET
    label: str | UnsetType = UNSET
    agent_id: str | UnsetType = UNSET
    search: str | UnsetType = UNSET
    archived: bool | Literal["all"] | UnsetType = UNSET
    # The rest of the published schema (the published Control UI sends several): accepted; the
    # filters that name things this gateway does not have (subagents, cron, projects, groups,
    # boards, owners) select nothing beyond what is listed without them.
    spawned_by: NonEmptyStr | UnsetType = UNSET
    require_last_interaction: bool | UnsetType = UNSET
    exclude_subagents: bool | UnsetType = UNSET
    exclude_cron: bool | UnsetType = UNSET
    exclude_system: bool | UnsetType = UNSET
    include_activity_summary: bool | UnsetType = UNSET
    project_id: NonEmptyStr | UnsetType = UNSET
    workspace_dir: NonEmptyStr | UnsetType = UNSET
    group: str | UnsetType = UNSET
    pinned: bool | UnsetType = UNSET
    board_face: Literal["chat", "dashboard"] | UnsetType = UNSET
    has_board: bool | UnsetType = UNSET
    creator_id: NonEmptyStr | UnsetType = UNSET
    owner_id: NonEmptyStr | UnsetType = UNSET
    owner_first: bool | UnsetType = UNSET
    involving_me: bool | UnsetType = UNSET
    profile_relation: dict[str, Any] | UnsetType = UNSET
    involving_profile_id: NonEmptyStr | UnsetType = UNSET
    include_people: bool | UnsetType = UNSET


class SessionsPreviewParams(Params):
    keys: Annotated[list[NonEmptyStr], Meta(min_length=1)]
    limit: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    max_chars: Annotated[int, Meta(ge=20)] | UnsetType = UNSET


class SessionsPatchParams(OpenParams):
    """Open on purpose: the published UI patches keys this gateway does not keep (pinned, color, …)."""

    key: NonEmptyStr
    label: str | None | UnsetType = UNSET
    model: str | None | UnsetType = UNSET
    thinking_level: str | None | UnsetType = UNSET
    fast_mode: bool | str | None | UnsetType = UNSET
    verbose_level: str | None | UnsetType = UNSET


class SessionsResetParams(Params):
    key: NonEmptyStr
    agent_id: str | UnsetType = UNSET
    reason: Literal["new", "reset"] | UnsetType = UNSET
    expected_session_id: str | UnsetType = UNSET


class SessionsDeleteParams(OpenParams):
    key: NonEmptyStr
    agent_id: str | UnsetType = UNSET
    delete_transcript: bool | UnsetType = UNSET
    expected_session_id: str | UnsetType = UNSET


class SessionsMessagesSubscribeParams(Params):
    key: NonEmptyStr
    agent_id: str | UnsetType = UNSET
    include_approvals: bool | UnsetType = UNSET


class SendParams(Params):
    to: NonEmptyStr
    idempotency_key: NonEmptyStr
    message: str | UnsetType = UNSET
    media_url: str | UnsetType = UNSET
    media_urls: list[str] | UnsetType = UNSET
    buffer: str | UnsetType = UNSET
    filename: str | UnsetType = UNSET
    content_type: str | UnsetType = UNSET
    as_voice: bool | UnsetType = UNSET
    gif_playback: bool | UnsetType = UNSET
    channel: str | UnsetType = UNSET
    account_id: str | UnsetType = UNSET
    agent_id: str | UnsetType = UNSET
    reply_to_id: str | UnsetType = UNSET
    thread_id: str | UnsetType = UNSET
    force_document: bool | UnsetType = UNSET
    silent: bool | UnsetType = UNSET
    parse_mode: Literal["HTML"] | UnsetType = UNSET
    session_key: str | UnsetType = UNSET


class WakeParams(OpenParams):
    mode: Annotated[Literal["now", "next-heartbeat"], Meta(extra={"anyOf": True})]
    text: NonEmptyStr
    session_key: str | UnsetType = UNSET
    agent_id: str | UnsetType = UNSET


class SystemEventParams(OpenParams):
    text: str
    device_id: str | UnsetType = UNSET
    instance_id: str | UnsetType = UNSET
    host: str | UnsetType = UNSET
    ip: str | UnsetType = UNSET
    mode: str | UnsetType = UNSET
    version: str | UnsetType = UNSET
    platform: str | UnsetType = UNSET
    device_family: str | UnsetType = UNSET
    model_identifier: str | UnsetType = UNSET
    last_input_seconds: float | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    roles: list[str] | UnsetType = UNSET
    scopes: list[str] | UnsetType = UNSET
    tags: list[str] | UnsetType = UNSET
    session_key: str | UnsetType = UNSET
    wake: Any | UnsetType = UNSET


class SetHeartbeatsParams(OpenParams):
    enabled: bool


#: method → params schema. Absent params validate as ``{}``.
PARAMS_SCHEMAS: Final[dict[str, type[Struct]]] = {
    "logs.tail": LogsTailParams,
    "config.get": Empty,
    "config.set": ConfigSetParams,
    "config.apply": ConfigApplyParams,
    "config.patch": ConfigPatchParams,
    "config.schema": Empty,
    "config.schema.lookup": ConfigSchemaLookupParams,
    "channels.status": ChannelsStatusParams,
    "models.list": ModelsListParams,
    "agent": AgentParams,
    "agent.wait": AgentWaitParams,
    "chat.send": ChatSendParams,
    "chat.history": ChatHistoryParams,
    "chat.abort": ChatAbortParams,
    "sessions.list": SessionsListParams,
    "sessions.subscribe": SessionsListParams,
    "sessions.preview": SessionsPreviewParams,
    "sessions.patch": SessionsPatchParams,
    "sessions.reset": SessionsResetParams,
    "sessions.delete": SessionsDeleteParams,
    "agents.list": Empty,
    "sessions.messages.subscribe": SessionsMessagesSubscribeParams,
    "sessions.messages.unsubscribe": SessionsMessagesSubscribeParams,
    "send": SendParams,
    "wake": WakeParams,
    "system-event": SystemEventParams,
    "set-heartbeats": SetHeartbeatsParams,
}

#: Methods whose params failures use a fixed message instead of the schema text (§14).
#: (``status`` ignores its params entirely, so it has no schema here.)
FIXED_PARAMS_MESSAGES: Final[dict[str, str]] = {
    "set-heartbeats": "invalid set-heartbeats params: enabled (boolean) required",
}


def precheck(method: str, params: Any) -> ErrorShape | None:
    """Checks the published gateway makes before the schema (observed, see conformance/README.md)."""
    if (
        method == "chat.send"
        and isinstance(params, dict)
        and not params.get("sessionKey")
        and not params.get("sessionId")
    ):
        return invalid_request(
            "session mutation target is unavailable",
            {"code": "SESSION_MUTATION_TARGET_REQUIRED", "method": "chat.send"},
        )
    return None


def postcheck(method: str, params: Any) -> ErrorShape | None:
    """Semantic checks after the schema passed (e.g. blank ``system-event`` text)."""
    if method == "system-event" and not params.text.strip():
        return invalid_request("text required")
    return None


__all__ = ["FIXED_PARAMS_MESSAGES", "PARAMS_SCHEMAS", "postcheck", "precheck"] + [
    name for name, obj in list(globals().items()) if isinstance(obj, type) and issubclass(obj, Struct)
]
