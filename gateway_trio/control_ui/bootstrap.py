"""What the Control UI knows about its gateway (:class:`UiSettings`, taken per request) and the
bootstrap JSON (``control-ui-config.json``) built from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msgspec import Struct


class UiSettings(Struct, frozen=True, kw_only=True):
    """What :func:`~gateway_trio.control_ui.serve` needs to know about the gateway, taken per request."""

    enabled: bool = True
    base_path: str = ""
    #: A configured build directory (``gateway.controlUi.root``); ``None``: the bundled UI.
    root: str | None = None
    #: The gateway's config (the bootstrap JSON reads ``gateway.controlUi.*`` and the agents).
    config: dict[str, Any] = {}
    server_version: str = ""
    auth_mode: str = "token"
    default_agent_id: str = "main"
    assistant_name: str = "Assistant"
    #: ``check_read(bearer)``: whether a bearer credential may read the bootstrap JSON.
    check_read: Callable[[str | None], bool] | None = None


def bootstrap_payload(settings: UiSettings, base: str) -> dict[str, Any]:
    """The bootstrap JSON's fields, as the published gateway sends them (no avatars, no terminal)."""
    ui = ((settings.config.get("gateway") or {}).get("controlUi") or {}) if isinstance(settings.config, dict) else {}
    cli_agents = (settings.config.get("gateway") or {}).get("cliAgents") or {}
    sandbox = ui.get("embedSandbox")
    body: dict[str, Any] = {
        "basePath": base,
        "assistantName": settings.assistant_name,
        "assistantAvatar": (settings.assistant_name[:1] or "A").upper(),
        "assistantAvatarSource": None,
        "assistantAvatarStatus": None,
        "assistantAvatarReason": None,
        "assistantAgentId": settings.default_agent_id,
        "serverVersion": settings.server_version,
        "embedSandbox": sandbox if sandbox in ("trusted", "strict") else "scripts",
        "allowExternalEmbedUrls": ui.get("allowExternalEmbedUrls") is True,
        "automaticallyFetchFavicons": ui.get("automaticallyFetchFavicons") is not False,
        "communityInvite": ui.get("communityInvite") is not False,
        "terminalEnabled": False,
        "cliAgentsEnabled": cli_agents.get("enabled") is not False if isinstance(cli_agents, dict) else True,
        "pluginAssetsRequireAuth": settings.auth_mode != "none",
        "pluginFrameGrants": [],
    }
    if settings.root is None:
        body["serverBuildId"] = settings.server_version
    if isinstance(ui.get("environment"), dict):
        body["environment"] = ui["environment"]
    return body
