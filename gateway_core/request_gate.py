"""One post-handshake frame judged: §9.2 frame validation, then §7.3 authorization, admission and
params. Pure, and separate from the connection's state machine as the handshake is: the
:class:`~gateway_core.server.ServerConnection` keeps the state (in-flight count, the unauthorized
streak) and acts on the verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec
from msgspec import UNSET, Struct

from .errors import INVALID_REQUEST, invalid_request, unavailable
from .frames import (
    ErrorShape,
    JsonTooDeep,
    RequestFrame,
    decode_json_lenient,
    decode_request,
    has_lone_surrogate,
    may_have_lone_surrogate,
    top_level_id,
)
from .methods import CATALOGUE, STARTUP_GATED, authorize
from .params import FIXED_PARAMS_MESSAGES, PARAMS_SCHEMAS, postcheck, precheck
from .services import Admission, GatewayServices
from .validation import SchemaError, convert

if TYPE_CHECKING:
    from .events import Principal
    from .server import ServerPolicy

#: The answer past ``max_inflight_requests`` (same text and shape as the published gateway's).
BUSY: Final = unavailable("The server is busy. Please try again in a moment.", retryable=True)

#: What an answer does to the connection's unauthorized-role streak (§7.1 flood guard).
Streak = Literal["keep", "reset", "bump"]


class Ignored(Struct, frozen=True):
    """Not a request at all (not JSON): nothing is answered (§9.2)."""

    reason: str


class Answered(Struct, frozen=True):
    """Refused with ``error``, answered to ``id``; ``streak`` says how the flood guard counts it."""

    id: str
    error: ErrorShape
    streak: Streak = "keep"


class Admitted(Struct, frozen=True):
    """A valid, authorized request for the application (params converted to their Struct)."""

    id: str
    method: str
    params: Any


Verdict = Ignored | Answered | Admitted


def judge(
    text: str, principal: Principal, *, inflight: int, policy: ServerPolicy, services: GatewayServices, wall_ms: int
) -> Verdict:
    """The fate of one post-handshake frame, in the published gateway's order."""
    try:
        frame: RequestFrame | Verdict = decode_request(text)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        frame = slow_frame(text)
        if not isinstance(frame, RequestFrame):
            return frame
    rid, method, params = frame.id, frame.method, frame.params
    if inflight >= policy.max_inflight_requests:
        return Answered(rid, BUSY)
    denied = authorize(method, params if params is not UNSET else None, principal.role, principal.scopes)
    if denied is not None:  # an unauthorized role feeds the flood guard (§7.1); any other denial resets it
        return Answered(rid, denied, "bump" if denied.code == INVALID_REQUEST else "reset")
    err = admission_error(method, principal, policy, services, wall_ms)
    if err is not None:
        return Answered(rid, err, "reset")
    value: Any = None if params is UNSET else params
    early = precheck(method, value)
    if early is not None:
        return Answered(rid, early, "reset")
    schema = PARAMS_SCHEMAS.get(method)
    if schema is not None:
        try:
            value = convert({} if value is None else value, schema)
        except SchemaError as exc:
            message = FIXED_PARAMS_MESSAGES.get(method) or f"invalid {method} params: {exc.text}"
            return Answered(rid, invalid_request(message), "reset")
        late = postcheck(method, value)
        if late is not None:
            return Answered(rid, late, "reset")
    return Admitted(rid, method, value)


def slow_frame(text: str) -> RequestFrame | Ignored | Answered:
    """A frame the fast decoder refused, parsed again as a JavaScript peer would, with what is
    still wrong with it answered.

    Out-of-range numbers are ±infinity, as in the published gateway. Deliberately stricter than
    it: a lone surrogate or nesting past the decoder's limit is answered ``invalid request
    frame`` instead of being processed. Text that is not JSON at all is ignored (§9.2).
    """
    try:
        obj = decode_json_lenient(text)
    except JsonTooDeep:
        return _frame_error(top_level_id(text), "invalid request frame: JSON nesting too deep")
    except msgspec.DecodeError:
        return Ignored("invalid JSON")
    rid = obj.get("id") if isinstance(obj, dict) else None
    if may_have_lone_surrogate(text) and has_lone_surrogate(obj):
        if not isinstance(rid, str) or has_lone_surrogate(rid):
            rid = None
        return _frame_error(rid, "invalid request frame: unpaired UTF-16 surrogate in a string")
    try:
        return convert(obj, RequestFrame)
    except SchemaError as exc:
        return _frame_error(rid, f"invalid request frame: {exc.text}")


def _frame_error(rid: Any, message: str) -> Answered:
    return Answered(rid if rid is not None else "invalid", invalid_request(message), "reset")


def admission_error(
    method: str, p: Principal, policy: ServerPolicy, services: GatewayServices, wall_ms: int
) -> ErrorShape | None:
    """§7.3 steps 9-11 and the restart gate: admission, unknown names, write budget."""
    admission = services.admission()
    if admission is Admission.STARTING and method in STARTUP_GATED:
        return unavailable(
            f"{method} unavailable during gateway startup",
            {"reason": "startup-sidecars", "method": method},
            retryable=True,
            retry_after_ms=500,
        )
    if admission is Admission.DRAINING:  # new work while stopping (observed: stop and restart alike)
        return unavailable(
            f"{method} unavailable during gateway restart",
            {"method": method, "reason": "gateway-restarting", "phase": "accepting"},
            retryable=True,
            retry_after_ms=1000,
        )
    if admission in (Admission.RESTARTING, Admission.SUSPENDING):
        word = "restart" if admission is Admission.RESTARTING else "suspension"
        return unavailable(
            f"{method} unavailable during gateway {word}",
            {"method": method, "reason": f"gateway-{word}", "phase": admission.value},
            retryable=True,
            retry_after_ms=1000,
        )
    if method == "connect":
        return invalid_request("connect is only valid as the first request")
    spec = CATALOGUE.get(method)
    if spec is None and method not in policy.extra_methods:
        return invalid_request(f"unknown method: {method}")
    if spec is not None and spec.control_plane_write:
        wait = services.write_budget.take(method, p.device_id or p.client_ip, wall_ms)
        if wait is not None:
            seconds = max(1, -(-wait // 1000))
            return unavailable(
                f"rate limit exceeded for {method}; retry after {seconds}s",
                {"method": method, "limit": "30 per 60s"},
                retryable=True,
                retry_after_ms=wait,
            )
    return None


__all__ = ["BUSY", "Admitted", "Answered", "Ignored", "Verdict", "admission_error", "judge", "slow_frame"]
