"""The config file's schema (runtime-cli.md §2, §9) as msgspec Structs, and its validation.

Pure: the caller reads and parses the file (JSON5); :func:`validate_config` returns every problem,
each naming its dotted path (``gateway.bogus: unknown key``, ``gateway.port: must be <= 65535``).
``agents`` and ``models`` are typed (http-agents-channels.md §3); keys this gateway does not
interpret yet (``channels``, ``hooks``, …) are accepted as objects and passed through untouched;
keys nobody knows are errors, as in the published gateway.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

Port = Annotated[int, Meta(ge=1, le=65535)]
PositiveInt = Annotated[int, Meta(ge=1)]
NonNegInt = Annotated[int, Meta(ge=0)]
Obj = dict[str, Any]


class _C(Struct, forbid_unknown_fields=True, omit_defaults=True, rename="camel", kw_only=True):
    """Base: closed, camelCase keys."""


class SecretRef(_C, kw_only=True):
    """``{source, provider, id}`` (runtime-cli.md §4)."""

    source: Literal["env", "file", "exec", "store"]
    provider: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,63}$")] = "default"
    id: Annotated[str, Meta(min_length=1)]


SecretInput = str | SecretRef


class RateLimit(_C):
    max_attempts: PositiveInt | UnsetType = UNSET
    window_ms: PositiveInt | UnsetType = UNSET
    lockout_ms: NonNegInt | UnsetType = UNSET
    exempt_loopback: bool | UnsetType = UNSET


class DeviceAutoApprove(_C):
    enabled: bool | UnsetType = UNSET
    scopes: list[str] | UnsetType = UNSET


class TrustedProxy(_C):
    user_header: str | UnsetType = UNSET
    required_headers: list[str] | UnsetType = UNSET
    allow_users: list[str] | UnsetType = UNSET
    allow_loopback: bool | UnsetType = UNSET
    cloudflare_access_oidc: Obj | UnsetType = UNSET
    device_auto_approve: DeviceAutoApprove | UnsetType = UNSET


class GatewayAuth(_C):
    mode: Literal["none", "token", "password", "trusted-proxy"] | UnsetType = UNSET
    token: SecretInput | UnsetType = UNSET
    password: SecretInput | UnsetType = UNSET
    allow_tailscale: bool | UnsetType = UNSET
    identity_scopes: dict[str, list[str]] | UnsetType = UNSET
    rate_limit: RateLimit | UnsetType = UNSET
    trusted_proxy: TrustedProxy | UnsetType = UNSET


class GatewayReload(_C):
    mode: Literal["off", "hot", "restart", "hybrid"] | UnsetType = UNSET


class ControlUiEnvironment(_C):
    label: str | UnsetType = UNSET
    color: str | UnsetType = UNSET


class ControlUiGithub(_C):
    token: SecretInput | UnsetType = UNSET


class ControlUiExperimental(_C):
    custom_plugins: bool | UnsetType = UNSET


class ControlUi(_C):
    enabled: bool | UnsetType = UNSET
    base_path: str | UnsetType = UNSET
    root: str | UnsetType = UNSET
    allowed_origins: list[str] | UnsetType = UNSET
    dangerously_allow_host_header_origin_fallback: bool | UnsetType = UNSET
    dangerously_disable_device_auth: bool | UnsetType = UNSET
    environment: ControlUiEnvironment | UnsetType = UNSET
    community_invite: bool | UnsetType = UNSET
    github: ControlUiGithub | UnsetType = UNSET
    session_observer: bool | UnsetType = UNSET
    embed_sandbox: str | UnsetType = UNSET
    allow_external_embed_urls: bool | UnsetType = UNSET
    automatically_fetch_favicons: bool | UnsetType = UNSET
    experimental: ControlUiExperimental | UnsetType = UNSET


class Endpoint(_C):
    enabled: bool | UnsetType = UNSET
    images: Obj | UnsetType = UNSET
    files: Obj | UnsetType = UNSET
    max_url_parts: NonNegInt | UnsetType = UNSET
    # Our extensions (gateway_core.openai.conversation / .sessions); the defaults are published behaviour.
    session_mode: Literal["user", "stateless", "conversation"] | UnsetType = UNSET
    conversation: Obj | UnsetType = UNSET
    previous_response: Obj | UnsetType = UNSET


class HttpEndpoints(_C):
    chat_completions: Endpoint | UnsetType = UNSET
    responses: Endpoint | UnsetType = UNSET


class SecurityHeaders(_C):
    strict_transport_security: str | bool | UnsetType = UNSET  # a header value, or false


class GatewayHttp(_C):
    endpoints: HttpEndpoints | UnsetType = UNSET
    security_headers: SecurityHeaders | UnsetType = UNSET


class GatewayRemote(_C):
    url: str | UnsetType = UNSET
    transport: Literal["ssh", "direct"] | UnsetType = UNSET
    remote_port: Port | UnsetType = UNSET
    token: SecretInput | UnsetType = UNSET
    password: SecretInput | UnsetType = UNSET
    edge_auth: Obj | UnsetType = UNSET
    tls_fingerprint: str | UnsetType = UNSET
    ssh_target: str | UnsetType = UNSET
    ssh_identity: str | UnsetType = UNSET
    ssh_host_key_policy: Literal["strict", "openssh"] | UnsetType = UNSET


class GatewayTailscale(_C):
    mode: Literal["off", "serve", "funnel"] | UnsetType = UNSET
    preserve_funnel: bool | UnsetType = UNSET


class GatewayConfig(_C):
    mode: Literal["local", "remote"] | UnsetType = UNSET
    port: Port | UnsetType = UNSET
    bind: Literal["auto", "lan", "loopback", "custom", "tailnet"] | UnsetType = UNSET
    custom_bind_host: str | UnsetType = UNSET
    public_origin: str | UnsetType = UNSET
    auth: GatewayAuth | UnsetType = UNSET
    reload: GatewayReload | UnsetType = UNSET
    control_ui: ControlUi | UnsetType = UNSET
    http: GatewayHttp | UnsetType = UNSET
    trusted_proxies: list[str] | UnsetType = UNSET
    allow_real_ip_fallback: bool | UnsetType = UNSET
    remote: GatewayRemote | UnsetType = UNSET
    tailscale: GatewayTailscale | UnsetType = UNSET
    # Accepted and kept for later work (validated as objects only).
    tools: Obj | UnsetType = UNSET
    cli_agents: Obj | UnsetType = UNSET
    terminal: Obj | UnsetType = UNSET
    tls: Obj | UnsetType = UNSET
    push: Obj | UnsetType = UNSET
    nodes: Obj | UnsetType = UNSET
    portals: Obj | UnsetType = UNSET
    roles: Obj | UnsetType = UNSET


class LoggingConfig(_C):
    level: Literal["silent", "fatal", "error", "warn", "info", "debug", "trace"] | UnsetType = UNSET
    console_level: Literal["silent", "fatal", "error", "warn", "info", "debug", "trace"] | UnsetType = UNSET
    file: str | UnsetType = UNSET
    max_file_bytes: PositiveInt | UnsetType = UNSET
    console_style: Literal["pretty", "json"] | UnsetType = UNSET
    redact_patterns: list[str] | UnsetType = UNSET


class MdnsConfig(_C):
    mode: Literal["minimal", "full", "off"] | UnsetType = UNSET


class DiscoveryConfig(_C):
    """``discovery.*``: mDNS advertising (``gateway_core.discovery``); wide-area DNS-SD passes through."""

    mdns: MdnsConfig | UnsetType = UNSET
    wide_area: Obj | UnsetType = UNSET


ModelRef = Annotated[str, Meta(min_length=3, pattern=r"^[^/\s]+/.+$")]


class AgentModel(_C):
    """``{primary, fallbacks}``: the primary model ref and the refs tried, in order, when it fails."""

    primary: ModelRef | UnsetType = UNSET
    fallbacks: list[ModelRef] | UnsetType = UNSET


AgentModelInput = ModelRef | AgentModel


class AgentDefaults(_C):
    """``agents.defaults`` (http-agents-channels.md §3.1). Typed where this gateway acts on a key;
    the other published keys are accepted as they are."""

    model: AgentModelInput | UnsetType = UNSET
    workspace: str | UnsetType = UNSET
    timeout_seconds: NonNegInt | UnsetType = UNSET
    max_concurrent: PositiveInt | UnsetType = UNSET
    models: Obj | UnsetType = UNSET
    model_policy: Obj | UnsetType = UNSET
    utility_model: Any | UnsetType = UNSET
    image_model: Any | UnsetType = UNSET
    pdf_model: Any | UnsetType = UNSET
    media_models: Any | UnsetType = UNSET
    params: Obj | UnsetType = UNSET
    thinking_default: str | UnsetType = UNSET
    reasoning_default: Any | UnsetType = UNSET
    fast_mode_default: Any | UnsetType = UNSET
    skip_bootstrap: bool | UnsetType = UNSET
    bootstrap_max_chars: Any | UnsetType = UNSET
    context_limits: Obj | UnsetType = UNSET
    heartbeat: Obj | UnsetType = UNSET
    system_agent: Any | UnsetType = UNSET
    compaction: Obj | UnsetType = UNSET
    sandbox: Obj | UnsetType = UNSET
    model_selection_scope: Literal["session", "agent", "global"] | UnsetType = UNSET
    user_timezone: str | UnsetType = UNSET
    decision_model: Any | UnsetType = UNSET
    session_store: Any | UnsetType = UNSET
    tools: Obj | UnsetType = UNSET
    identity: Obj | UnsetType = UNSET
    subagents: Obj | UnsetType = UNSET


AgentId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


class AgentEntry(_C):
    """One agent (``agents.entries.<id>`` or an element of ``agents.list``)."""

    id: AgentId | UnsetType = UNSET
    name: str | UnsetType = UNSET
    default: bool | UnsetType = UNSET
    model: AgentModelInput | UnsetType = UNSET
    workspace: str | UnsetType = UNSET
    system_prompt: str | UnsetType = UNSET
    identity: Obj | UnsetType = UNSET
    agent_dir: str | UnsetType = UNSET
    cwd: str | UnsetType = UNSET
    utility_model: Any | UnsetType = UNSET
    thinking_default: str | UnsetType = UNSET
    reasoning_default: Any | UnsetType = UNSET
    fast_mode_default: Any | UnsetType = UNSET
    params: Obj | UnsetType = UNSET
    models: Obj | UnsetType = UNSET
    skills: Any | UnsetType = UNSET
    group_chat: Obj | UnsetType = UNSET
    sandbox: Obj | UnsetType = UNSET
    runtime: Any | UnsetType = UNSET
    subagents: Obj | UnsetType = UNSET
    tools: Obj | UnsetType = UNSET
    tts: Obj | UnsetType = UNSET
    context_limits: Obj | UnsetType = UNSET
    experimental: Obj | UnsetType = UNSET
    model_policy: Obj | UnsetType = UNSET
    heartbeat: Obj | UnsetType = UNSET


class AgentsConfig(_C):
    defaults: AgentDefaults | UnsetType = UNSET
    roster: list[AgentEntry] | UnsetType = msgspec.field(default=UNSET, name="list")
    entries: dict[AgentId, AgentEntry] | UnsetType = UNSET
    ownership: Literal["explicit", "implicit"] | UnsetType = UNSET


class ModelCost(_C):
    input: float | UnsetType = UNSET
    output: float | UnsetType = UNSET
    cache_read: float | UnsetType = UNSET
    cache_write: float | UnsetType = UNSET


class ProviderModel(_C):
    """``models.providers.<id>.models[]``: one model of a provider (its id is provider-local)."""

    id: Annotated[str, Meta(min_length=1)]
    name: str | UnsetType = UNSET
    reasoning: bool | UnsetType = UNSET
    input: list[Literal["text", "image", "audio", "video", "file"]] | UnsetType = UNSET
    cost: ModelCost | UnsetType = UNSET
    context_window: PositiveInt | UnsetType = UNSET
    context_tokens: PositiveInt | UnsetType = UNSET
    max_tokens: PositiveInt | UnsetType = UNSET
    compat: Obj | UnsetType = UNSET
    params: Obj | UnsetType = UNSET
    headers: dict[str, str] | UnsetType = UNSET


ProviderApi = Literal[
    "openai-completions",
    "openai-responses",
    "openai-chatgpt-responses",
    "anthropic-messages",
    "google-generative-ai",
    "google-vertex",
    "github-copilot",
    "bedrock-converse-stream",
    "ollama",
    "pi-messages",
    "azure-openai-responses",
    "offline",
    "offline-echo",
]


class ModelProvider(_C):
    """``models.providers.<id>``: where a provider lives and how to call it."""

    base_url: str | UnsetType = UNSET
    baseURL: str | UnsetType = UNSET  # noqa: N815 - the published alternative spelling
    api_key: SecretInput | UnsetType = UNSET
    api: ProviderApi | UnsetType = UNSET
    auth: Literal["api-key", "token", "oauth", "aws-sdk"] | UnsetType = UNSET
    auth_header: bool | UnsetType = UNSET
    headers: dict[str, str] | UnsetType = UNSET
    request: Obj | UnsetType = UNSET
    timeout_seconds: PositiveInt | UnsetType = UNSET
    max_tokens: PositiveInt | UnsetType = UNSET
    inject_num_ctx_for_open_ai_compat: bool | UnsetType = UNSET
    local_service: Obj | UnsetType = UNSET
    agent_runtime: Any | UnsetType = UNSET
    params: Obj | UnsetType = UNSET
    models: list[ProviderModel] | UnsetType = UNSET


class ModelsConfig(_C):
    mode: Literal["merge", "replace"] | UnsetType = UNSET
    providers: dict[Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")], ModelProvider] | UnsetType = UNSET


class OpenClawConfig(Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """The root of ``openclaw.json``. Unknown root keys are errors."""

    schema_: str | UnsetType = msgspec.field(default=UNSET, name="$schema")
    gateway: GatewayConfig | UnsetType = UNSET
    logging: LoggingConfig | UnsetType = UNSET
    discovery: DiscoveryConfig | UnsetType = UNSET
    # Validated pass-through for later work: each must be an object.
    meta: Obj | UnsetType = UNSET
    agents: AgentsConfig | UnsetType = UNSET
    agent: Obj | UnsetType = UNSET
    models: ModelsConfig | UnsetType = UNSET
    channels: Obj | UnsetType = UNSET
    plugins: Obj | UnsetType = UNSET
    hooks: Obj | UnsetType = UNSET
    session: Obj | UnsetType = UNSET
    messages: Obj | UnsetType = UNSET
    commands: Obj | UnsetType = UNSET
    skills: Obj | UnsetType = UNSET
    tools: Obj | UnsetType = UNSET
    secrets: Obj | UnsetType = UNSET
    env: Obj | UnsetType = UNSET
    cron: Obj | UnsetType = UNSET
    ui: Obj | UnsetType = UNSET
    talk: Obj | UnsetType = UNSET
    memory: Obj | UnsetType = UNSET
    identity: Obj | UnsetType = UNSET
    wizard: Obj | UnsetType = UNSET
    bindings: Obj | list[Any] | UnsetType = UNSET
    routing: Obj | UnsetType = UNSET
    audio: Obj | UnsetType = UNSET
    tui: Obj | UnsetType = UNSET
    approvals: Obj | UnsetType = UNSET
    auth: Obj | UnsetType = UNSET
    broadcast: Obj | UnsetType = UNSET
    diagnostics: Obj | UnsetType = UNSET
    update: Obj | UnsetType = UNSET
    telemetry: Obj | UnsetType = UNSET
    security: Obj | UnsetType = UNSET
    transcripts: Obj | UnsetType = UNSET
    mcp: Obj | UnsetType = UNSET
    acp: Obj | UnsetType = UNSET
    attachments: Obj | UnsetType = UNSET


class Issue(Struct, frozen=True):
    """One problem in a config: the dotted path and what is wrong there."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


def validate_config(value: Any) -> list[Issue]:
    """Every schema problem in ``value`` (empty when valid). Unknown keys are each reported."""
    from .validation import all_errors

    issues = [Issue(path, message) for path, message in all_errors(value, OpenClawConfig)]
    if isinstance(value, dict):
        auth = (value.get("gateway") or {}).get("auth") if isinstance(value.get("gateway"), dict) else None
        if isinstance(auth, dict) and auth.get("mode") is None and auth.get("token") and auth.get("password"):
            issues.append(Issue("gateway.auth", "both token and password are set: set gateway.auth.mode"))
    return issues


_SCHEMA: dict[str, Any] | None = None


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``openclaw.json`` (generated from the Structs once)."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = msgspec.json.schema(OpenClawConfig)
    return _SCHEMA


def schema_lookup(path: str) -> dict[str, Any] | None:
    """The sub-schema at dotted ``path`` (``gateway.auth.mode``), or ``None`` when there is none."""
    schema = config_json_schema()
    defs = schema.get("$defs", {})

    def deref(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        return node

    node = deref(schema)
    for part in [p for p in path.split(".") if p]:
        candidates = [deref(n) for n in node.get("anyOf", [node])]
        found = None
        for candidate in candidates:
            props = candidate.get("properties", {})
            if part in props:
                found = deref(props[part])
                break
        if found is None:
            return None
        node = found
    return node


def warnings_for(value: Any) -> list[str]:
    """Accepted but not acted on by this gateway (said clearly instead of silently ignored)."""
    out: list[str] = []
    gateway = value.get("gateway") if isinstance(value, dict) else None
    if isinstance(gateway, dict):
        tailscale = gateway.get("tailscale")
        if isinstance(tailscale, dict) and tailscale.get("mode") not in (None, "off"):
            out.append("gateway.tailscale: Tailscale serve/funnel is not supported by this gateway; ignored")
    return out


__all__ = ["Issue", "OpenClawConfig", "SecretRef", "config_json_schema", "schema_lookup", "validate_config", "warnings_for"]
