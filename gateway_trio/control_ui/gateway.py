"""The gateway's side of the Control UI: its settings taken from a running gateway, and the HTTP
layer's one call (:func:`respond`)."""

from __future__ import annotations

import hmac
from typing import Any

from gateway_core.auth import check_shared_secret
from gateway_core.frames import ConnectAuth

from .bootstrap import UiSettings
from .headers import Headers, Response
from .rules import normalize_base_path
from .serving import serve


def settings_for(gw: Any) -> UiSettings:
    """The Control UI settings of a running gateway (``gateway_trio.app.Gateway``).

    ``enabled`` is read from the applied config (hot); ``basePath`` and ``root`` from the config the
    gateway started with (they need a restart).
    """
    live = gw.app.config if gw is not None else {}
    started = (gw.settings.config if gw is not None else None) or {}
    ui_live = (live.get("gateway") or {}).get("controlUi") or {}
    ui_start = (started.get("gateway") or {}).get("controlUi") or {}
    root = ui_start.get("root")
    if gw is None:
        return UiSettings(enabled=False)
    roster = gw.app.roster
    agent = roster.default
    services = gw.services
    secret = gw.app.secret

    def check_read(bearer: str | None) -> bool:
        if not bearer:
            return False
        if check_shared_secret(secret, ConnectAuth(token=bearer)).ok:
            return True
        return any(
            t.role == "operator" and ("operator.read" in t.scopes or "operator.admin" in t.scopes or "operator.write" in t.scopes)
            and _same(t.token, bearer)
            for t in list(services.tokens.values())
        )

    return UiSettings(
        enabled=ui_live.get("enabled") is not False,
        base_path=normalize_base_path(ui_start.get("basePath")),
        root=root if isinstance(root, str) and root.strip() else None,
        config=live,
        server_version=gw.policy.server_version,
        auth_mode=secret.mode,
        default_agent_id=agent.id,
        assistant_name=agent.identity_name or "Assistant",
        check_read=check_read,
    )


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def respond(gw: Any, method: str, target: str, headers: Headers | None) -> Response | None:
    """The HTTP layer's one call: ``target`` is the raw request target, ``headers`` as received."""
    path, _, query = target.partition("?")
    named = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers or ()}
    return serve(method, path, query, named, settings_for(gw))
