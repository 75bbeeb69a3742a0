"""The application layer, pure: the method router, its handlers, and the state they share.

``GatewayApp`` is hosted by the Trio shell (``gateway_trio.app``) and by the conformance core
driver alike, so both run the same handlers. See ``docs/architecture.md``.
"""

from .effects import (
    CloseConnection,
    Effect,
    EffectFailed,
    Interrupt,
    KeepDecisions,
    LaneGranted,
    LogLine,
    Output,
    Publish,
    ReadFile,
    Reply,
    ResolveSecrets,
    RunSettled,
    Sleep,
    Spawn,
    TailLog,
    WaitRun,
    WriteFile,
)
from .gateway import (
    ConnView,
    Ctx,
    GatewayApp,
    HostFacts,
    Job,
    allow_real_ip_fallback,
    allowed_origins,
    origin_policy_for,
    rate_limit_policy,
    trusted_proxies,
)
from .router import LATER, Refused, Route, Router, routes


def default_router() -> Router:
    """Every method family this gateway implements (imported here: the families import the agents layer,
    which imports this package's effects)."""
    from .handlers import agents, channels, config, logs, runs, secrets, sessions, system, ui

    return Router(
        system.ROUTES,
        logs.ROUTES,
        config.ROUTES,
        secrets.ROUTES,
        channels.ROUTES,
        agents.ROUTES,
        runs.ROUTES,
        sessions.ROUTES,
        ui.ROUTES,
    )


__all__ = [
    "LATER",
    "CloseConnection",
    "ConnView",
    "Ctx",
    "Effect",
    "EffectFailed",
    "GatewayApp",
    "Interrupt",
    "KeepDecisions",
    "LaneGranted",
    "HostFacts",
    "Job",
    "LogLine",
    "Output",
    "Publish",
    "ReadFile",
    "Refused",
    "Reply",
    "ResolveSecrets",
    "Route",
    "Router",
    "RunSettled",
    "Sleep",
    "Spawn",
    "TailLog",
    "WaitRun",
    "WriteFile",
    "allow_real_ip_fallback",
    "allowed_origins",
    "default_router",
    "origin_policy_for",
    "rate_limit_policy",
    "trusted_proxies",
    "routes",
]
