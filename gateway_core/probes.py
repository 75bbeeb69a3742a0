"""Health, readiness and startup probes (http-agents-channels.md §1.5). Pure.

``/health`` ``/healthz`` (liveness), ``/startup`` ``/startupz``, ``/ready`` ``/readyz``; GET and
HEAD only (else 405 with ``Allow``). Version, uptime and the failing checks go only to detailed
callers (local-direct, or a valid bearer).
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import Struct

from .openai.wire import Answer, json_answer, text_answer

LIVENESS: Final = frozenset({"/health", "/healthz"})
STARTUP: Final = frozenset({"/startup", "/startupz"})
READINESS: Final = frozenset({"/ready", "/readyz"})
PROBES: Final = LIVENESS | STARTUP | READINESS
NO_STORE: Final = ("Cache-Control", "no-store")


class ProbeState(Struct, frozen=True, kw_only=True):
    """What the probes report, as the host sees it now."""

    draining: bool = False
    version: str = ""
    uptime_ms: int = 0
    #: Failing readiness checks besides draining (``channel ids``, ``state-database``, …).
    failing: tuple[str, ...] = ()
    extra: dict[str, Any] = {}


def answer(path: str, method: str, state: ProbeState, *, detailed: bool) -> Answer:
    """The probe's answer (``path`` must be one of :data:`PROBES`)."""
    if method not in ("GET", "HEAD"):
        return text_answer(405, "Method Not Allowed", ("Allow", "GET, HEAD"))
    if path in LIVENESS:
        return json_answer(200, {"ok": True, "status": "live"}, NO_STORE)
    if path in STARTUP:
        body: dict[str, Any] = {"ok": not state.draining, "status": "draining" if state.draining else "started"}
        if detailed:
            body.update({"version": state.version, "uptimeMs": state.uptime_ms})
        return json_answer(503 if state.draining else 200, body, NO_STORE)
    failing = (["gateway-draining"] if state.draining else []) + list(state.failing)
    ready = not failing
    body = {"ready": ready}
    if detailed:
        body.update({"failing": failing, "uptimeMs": state.uptime_ms, **state.extra})
    return json_answer(200 if ready else 503, body, NO_STORE)


__all__ = ["LIVENESS", "PROBES", "ProbeState", "answer"]
