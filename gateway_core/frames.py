"""Wire schema of protocol v4 as msgspec Structs (protocol.md §2, §4, §8, §10.4, §11, §16.2).

Rules of this module:

* Struct field names are snake_case; the wire is camelCase through ``rename="camel"``.
* Every inbound schema is closed (``forbid_unknown_fields``), as the published gateway's are.
* ``UNSET`` means "absent on the wire"; ``None`` means JSON ``null``.
* Payloads the core does not interpret stay ``Any`` (decoded JSON) or ``msgspec.Raw``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

NonEmptyStr = Annotated[str, Meta(min_length=1)]
NonNegInt = Annotated[int, Meta(ge=0)]
PositiveInt = Annotated[int, Meta(ge=1)]

#: protocol.md §4: the closed set of client ids.
ClientId = Literal[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
]
#: protocol.md §4: the closed set of client modes.
ClientMode = Literal["webchat", "cli", "ui", "backend", "node", "worker", "probe", "test"]


class _Closed(Struct, forbid_unknown_fields=True, omit_defaults=True, rename="camel", kw_only=True):
    """Base for inbound wire objects: closed, camelCase, absent fields omitted on encode."""


class _Open(Struct, omit_defaults=True, rename="camel", kw_only=True):
    """Base for outbound wire objects the core builds (never decoded strictly)."""


# --------------------------------------------------------------------------- frames (§2)


class ErrorShape(_Closed):
    """The error object of a failed response (§11)."""

    code: NonEmptyStr
    message: NonEmptyStr
    details: Any | UnsetType = UNSET
    retryable: bool | UnsetType = UNSET
    retry_after_ms: NonNegInt | UnsetType = UNSET


class RequestFrame(_Closed, tag_field="type", tag="req"):
    """``{type:"req", id, method, params?}`` from client to server."""

    id: NonEmptyStr
    method: NonEmptyStr
    params: Any | UnsetType = UNSET
    traceparent: Annotated[str, Meta(max_length=128)] | UnsetType = UNSET
    expected_profile_id: Annotated[str, Meta(min_length=1, max_length=128)] | UnsetType = UNSET


class ResponseFrame(_Closed, tag_field="type", tag="res"):
    """``{type:"res", id, ok, payload?, error?}``; a failed agent final carries both."""

    id: NonEmptyStr
    ok: bool
    payload: Any | UnsetType = UNSET
    error: ErrorShape | UnsetType = UNSET


class StateVersion(_Open):
    """Global ``{presence, health}`` counters (§10.2)."""

    presence: int
    health: int


class EventFrame(_Closed, tag_field="type", tag="event"):
    """``{type:"event", event, payload?, seq?, stateVersion?}`` from server to client."""

    event: NonEmptyStr
    payload: Any | UnsetType = UNSET
    seq: NonNegInt | UnsetType = UNSET
    state_version: StateVersion | UnsetType = UNSET
    recipient_profile_id: Annotated[str, Meta(min_length=1, max_length=128)] | UnsetType = UNSET


AnyFrame = RequestFrame | ResponseFrame | EventFrame


# --------------------------------------------------------------------------- connect (§4)


class ClientInfo(_Closed, kw_only=True):
    """``connect.params.client``."""

    id: ClientId
    display_name: NonEmptyStr | UnsetType = UNSET
    version: NonEmptyStr
    build_id: Annotated[str, Meta(min_length=1, max_length=96)] | UnsetType = UNSET
    platform: NonEmptyStr
    device_family: NonEmptyStr | UnsetType = UNSET
    model_identifier: NonEmptyStr | UnsetType = UNSET
    time_zone: Annotated[str, Meta(min_length=1, max_length=64)] | UnsetType = UNSET
    mode: ClientMode
    instance_id: NonEmptyStr | UnsetType = UNSET


class DeviceProof(_Closed):
    """``connect.params.device``: an Ed25519 proof over the challenge (§6.4)."""

    id: NonEmptyStr
    public_key: NonEmptyStr
    signature: NonEmptyStr
    signed_at: NonNegInt
    nonce: NonEmptyStr


class ConnectAuth(_Closed):
    """``connect.params.auth``: every credential a client may present."""

    token: str | UnsetType = UNSET
    bootstrap_token: str | UnsetType = UNSET
    device_token: str | UnsetType = UNSET
    password: str | UnsetType = UNSET
    approval_runtime_token: str | UnsetType = UNSET
    agent_runtime_identity_token: str | UnsetType = UNSET


class ConnectParams(_Closed):
    """``connect.params`` (closed at every level)."""

    min_protocol: PositiveInt
    max_protocol: PositiveInt
    client: ClientInfo
    caps: list[NonEmptyStr] | UnsetType = UNSET
    commands: list[str] | UnsetType = UNSET
    computer_use: Any | UnsetType = UNSET
    worker_runs: dict[str, Any] | UnsetType = UNSET
    permissions: dict[str, bool] | UnsetType = UNSET
    path_env: str | UnsetType = UNSET
    role: NonEmptyStr | UnsetType = UNSET
    scopes: list[NonEmptyStr] | UnsetType = UNSET
    model_catalog: dict[str, Any] | UnsetType = UNSET
    device: DeviceProof | UnsetType = UNSET
    auth: ConnectAuth | UnsetType = UNSET
    locale: str | UnsetType = UNSET
    user_agent: str | UnsetType = UNSET


# --------------------------------------------------------------------------- payloads


class ChallengePayload(_Open):
    """``connect.challenge`` payload (§3.1 step 2)."""

    nonce: str
    ts: int
    capabilities: list[str]


class TickPayload(_Open):
    """``tick`` payload (§10.5)."""

    ts: int


class ShutdownPayload(_Open):
    """``shutdown`` payload (§10.7)."""

    reason: str
    restart_expected_ms: int | UnsetType = UNSET


class PresenceUser(_Open):
    """``PresenceEntry.user``."""

    id: str
    identity: str | UnsetType = UNSET
    email: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    avatar_url: str | UnsetType = UNSET


class PresenceEntry(_Open):
    """One presence row (§10.4)."""

    ts: int
    host: str | UnsetType = UNSET
    client_id: str | UnsetType = UNSET
    ip: str | UnsetType = UNSET
    version: str | UnsetType = UNSET
    platform: str | UnsetType = UNSET
    device_family: str | UnsetType = UNSET
    model_identifier: str | UnsetType = UNSET
    time_zone: str | UnsetType = UNSET
    mode: str | UnsetType = UNSET
    last_input_seconds: float | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    tags: list[str] | UnsetType = UNSET
    text: str | UnsetType = UNSET
    online_since: int | UnsetType = UNSET
    last_activity_at: int | UnsetType = UNSET
    device_id: str | UnsetType = UNSET
    roles: list[str] | UnsetType = UNSET
    scopes: list[str] | UnsetType = UNSET
    instance_id: str | UnsetType = UNSET
    user: PresenceUser | UnsetType = UNSET
    watched_sessions: list[str] | UnsetType = UNSET


class ServerInfo(_Open):
    """``hello-ok.server``."""

    version: str
    conn_id: str
    build_id: str | UnsetType = UNSET
    boot_id: str | UnsetType = UNSET
    control_ui_build_source: str | UnsetType = UNSET


class Features(_Open):
    """``hello-ok.features``."""

    methods: list[str]
    events: list[str]
    capabilities: list[str] | UnsetType = UNSET


class Snapshot(_Open):
    """``hello-ok.snapshot``; the application supplies it, the core gates it by scope."""

    presence: list[Any]
    health: Any
    state_version: StateVersion
    uptime_ms: int
    suspension: Any | UnsetType = UNSET
    applied_config_hash: str | None | UnsetType = UNSET
    session_defaults: Any | UnsetType = UNSET
    config_path: str | UnsetType = UNSET
    state_dir: str | UnsetType = UNSET
    auth_mode: str | UnsetType = UNSET


class HelloAuth(_Open):
    """``hello-ok.auth``: the live effective role and scopes."""

    role: str
    scopes: list[str]
    method: str | UnsetType = UNSET
    device_token: str | UnsetType = UNSET
    issued_at_ms: int | UnsetType = UNSET


class Attachments(_Open):
    """``hello-ok.policy.attachments``."""

    max_bytes: int
    max_image_bytes: int


class HelloPolicy(_Open):
    """``hello-ok.policy``."""

    max_payload: int
    max_buffered_bytes: int
    tick_interval_ms: int
    attachments: Attachments | UnsetType = UNSET


class HelloOk(_Open, tag_field="type", tag="hello-ok"):
    """The connect response payload (§8)."""

    protocol: int
    server: ServerInfo
    features: Features
    snapshot: Snapshot
    auth: HelloAuth
    policy: HelloPolicy


# --------------------------------------------------------------------------- codec

_encoder = msgspec.json.Encoder()
_frame_decoder = msgspec.json.Decoder(AnyFrame)
_request_decoder = msgspec.json.Decoder(RequestFrame)
_any_decoder = msgspec.json.Decoder()


def encode(obj: Any) -> str:
    """Encode a frame or payload to its JSON text (compact, field order as declared)."""
    return _encoder.encode(obj).decode()


def encode_bytes(obj: Any) -> bytes:
    """:func:`encode` as UTF-8 bytes (what goes on the wire; no str round trip)."""
    return _encoder.encode(obj)


def decode_json(data: str | bytes) -> Any:
    """Parse JSON into plain Python values; raises ``msgspec.DecodeError`` on bad syntax."""
    return _any_decoder.decode(data)


class JsonTooDeep(ValueError):
    """The document nests deeper than the decoder's limit (about 1000 levels)."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


def decode_json_lenient(data: str | bytes) -> Any:
    """Parse JSON as a JavaScript peer would write it: out-of-range numbers become ±infinity and
    escaped lone surrogates are kept (``has_lone_surrogate`` finds them). The fast decoder is
    tried first; only a document it refuses is parsed again by the standard library.

    Raises ``msgspec.DecodeError`` on bad syntax and :class:`JsonTooDeep` past the nesting limit.
    """
    try:
        return _any_decoder.decode(data)
    except RecursionError:
        raise JsonTooDeep("nesting too deep") from None
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    try:
        return json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise JsonTooDeep("nesting too deep") from None
    except ValueError as exc:
        raise msgspec.DecodeError(str(exc)) from None


#: A ``\uD800``-``\uDFFF`` escape: the only way JSON text (valid UTF-8) can carry a surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def may_have_lone_surrogate(text: str) -> bool:
    """Cheap pre-check (C speed) before :func:`has_lone_surrogate` walks decoded JSON."""
    return _SURROGATE_ESCAPE.search(text) is not None


def has_lone_surrogate(value: Any) -> bool:
    """Whether any string (key or value) in decoded JSON holds an unpaired UTF-16 surrogate."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


#: JSON strings and brackets: enough to find a top-level key without parsing the nesting.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_VALUE = json.JSONDecoder()


#: Tokens looked at by :func:`top_level_id` before it gives up (bounds the work a hostile frame buys).
TOP_LEVEL_SCAN_TOKENS = 100_000


def top_level_id(text: str) -> str | None:
    """The string ``id`` of a top-level JSON object that is too deep to parse, if it has one
    among its first ``TOP_LEVEL_SCAN_TOKENS`` strings and brackets."""
    depth = 0
    for n, m in enumerate(_TOKENS.finditer(text)):
        if n >= TOP_LEVEL_SCAN_TOKENS:
            return None
        tok = m.group()
        if tok in ("{", "["):
            if depth == 0 and tok == "[":
                return None
            depth += 1
        elif tok in ("}", "]"):
            depth -= 1
            if depth <= 0:
                return None
        elif depth == 1 and tok == '"id"':
            i = m.end()
            n = len(text)
            while i < n and text[i] in " \t\r\n":
                i += 1
            if i >= n or text[i] != ":":
                continue
            i += 1
            while i < n and text[i] in " \t\r\n":
                i += 1
            try:
                value, _ = _VALUE.raw_decode(text, i)
            except (ValueError, RecursionError):
                return None
            return value if isinstance(value, str) and not has_lone_surrogate(value) else None
    return None


def decode_request(data: str | bytes) -> RequestFrame:
    """Parse and validate a request frame in one pass (the fast path after the handshake)."""
    return _request_decoder.decode(data)


def decode_frame(data: str | bytes) -> AnyFrame:
    """Parse any frame (client side: events and responses)."""
    return _frame_decoder.decode(data)


__all__ = [
    "UNSET",
    "JsonTooDeep",
    "decode_json_lenient",
    "encode_bytes",
    "has_lone_surrogate",
    "may_have_lone_surrogate",
    "top_level_id",
    "AnyFrame",
    "Attachments",
    "ChallengePayload",
    "ClientId",
    "ClientInfo",
    "ClientMode",
    "ConnectAuth",
    "ConnectParams",
    "DeviceProof",
    "ErrorShape",
    "EventFrame",
    "Features",
    "HelloAuth",
    "HelloOk",
    "HelloPolicy",
    "NonEmptyStr",
    "PresenceEntry",
    "PresenceUser",
    "RequestFrame",
    "ResponseFrame",
    "ServerInfo",
    "ShutdownPayload",
    "Snapshot",
    "StateVersion",
    "TickPayload",
    "UnsetType",
    "decode_frame",
    "decode_json",
    "decode_request",
    "encode",
]
