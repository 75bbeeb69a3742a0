"""``POST /api/v1/admin/rpc``: gateway methods over HTTP (http-agents-channels.md §1.10). Pure.

Off unless ``plugins.entries["admin-http-rpc"].enabled``. :func:`parse` checks the body and
names the call; :func:`check` runs the same authorization and parameter validation a WebSocket
request gets (scopes, pre-checks, the method's schema) and gives the typed params or the error;
:func:`answer` maps the method's outcome to HTTP (the status follows the error code). Every
answer says ``Cache-Control: no-store``.
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import UNSET

from . import errors as E
from .frames import ErrorShape
from .methods import authorize
from .openai.jsonbody import BadJson, parse_body
from .openai.wire import Answer, json_answer
from .params import FIXED_PARAMS_MESSAGES, PARAMS_SCHEMAS, postcheck, precheck
from .validation import SchemaError, convert

NO_STORE: Final = ("Cache-Control", "no-store")

#: The methods the published plugin forwards, in the order its ``commands.list`` gives them
#: (everything else: 400 "not supported").
METHODS: Final = (
    "health", "status", "logs.tail", "usage.status", "usage.cost", "gateway.restart.request", "gateway.suspend.prepare",
    "gateway.suspend.status", "gateway.suspend.resume", "commands.list", "config.get", "config.schema",
    "config.schema.lookup", "config.set", "config.patch", "config.apply", "channels.status", "channels.start",
    "channels.stop", "channels.logout", "web.login.start", "web.login.wait", "models.list", "models.authStatus",
    "agents.list", "agents.create", "agents.update", "agents.delete", "exec.approvals.get", "exec.approvals.set",
    "exec.approvals.node.get", "exec.approvals.node.set", "cron.status", "cron.list", "cron.get", "cron.runs", "cron.add",
    "cron.update", "cron.remove", "cron.run", "device.pair.list", "device.pair.approve", "device.pair.reject",
    "device.pair.remove", "node.list", "node.describe", "node.pair.list", "node.pair.approve", "node.pair.reject",
    "node.pair.remove", "node.rename", "tasks.list", "tasks.get", "tasks.cancel", "doctor.memory.status", "update.status",
)
ALLOWED: Final = frozenset(METHODS)
#: Error code → HTTP status (any other code: 500).
STATUS: Final = {
    E.INVALID_REQUEST: 400,
    "APPROVAL_NOT_FOUND": 404,
    "NOT_LINKED": 409,
    E.NOT_PAIRED: 409,
    E.UNAVAILABLE: 503,
    "AGENT_TIMEOUT": 504,
}


def _invalid(message: str) -> Answer:
    """A body the route cannot read as a call: ``{"ok":false,"error":{"type":"invalid_request",…}}``."""
    return json_answer(400, {"ok": False, "error": {"type": "invalid_request", "message": message}}, NO_STORE)


def too_large() -> Answer:
    """413 in the route's own shape (not the §1.4 default), with ``Cache-Control: no-store``."""
    return json_answer(413, {"ok": False, "error": {"type": "invalid_request", "message": "Payload too large"}}, NO_STORE)


def parse(body: bytes, fresh_id: str) -> tuple[str, str, Any] | Answer:
    """``(id, method, params)`` of the call, or the 400 to answer (empty body is an error here)."""
    if not body.strip():
        return _invalid("request body must be JSON")
    try:
        payload = parse_body(body)
    except BadJson:
        return _invalid("request body must be valid JSON")
    if not isinstance(payload, dict):
        return _invalid("request body must be an object")
    method = payload.get("method")
    if not isinstance(method, str) or not method.strip():
        return _invalid("method must be a non-empty string")
    rid = payload.get("id")
    rid = rid if isinstance(rid, str) and rid else fresh_id
    if method not in ALLOWED:  # a call with an id: answered as an RPC error, ``{"code","message"}``
        return answer(rid, False, error=E.invalid_request(f"admin HTTP RPC method is not supported: {method}"))
    return rid, method, payload.get("params")


def check(method: str, params: Any, scopes: frozenset[str]) -> Any:
    """The typed params for the method, or the :class:`ErrorShape` a WebSocket caller would get."""
    denied = authorize(method, params, "operator", scopes)
    if denied is not None:
        return denied
    early = precheck(method, params)
    if early is not None:
        return early
    schema = PARAMS_SCHEMAS.get(method)
    if schema is None:
        return params
    try:
        value = convert({} if params is None else params, schema)
    except SchemaError as exc:
        return E.invalid_request(FIXED_PARAMS_MESSAGES.get(method) or f"invalid {method} params: {exc.text}")
    late = postcheck(method, value)
    return late if late is not None else value


def answer(rid: str, ok: bool, payload: Any = None, error: ErrorShape | None = None) -> Answer:
    """The HTTP answer for the method's outcome."""
    if ok:
        return json_answer(200, {"id": rid, "ok": True, "payload": payload}, NO_STORE)
    assert error is not None
    shape: dict[str, Any] = {"code": error.code, "message": error.message}
    for field, key in (("details", "details"), ("retryable", "retryable"), ("retry_after_ms", "retryAfterMs")):
        value = getattr(error, field, UNSET)
        if value is not UNSET and value is not None:
            shape[key] = value
    return json_answer(STATUS.get(error.code, 500), {"id": rid, "ok": False, "error": shape}, NO_STORE)


def commands_list() -> dict[str, Any]:
    """``commands.list``, answered by the route itself."""
    return {"methods": list(METHODS)}


__all__ = ["ALLOWED", "METHODS", "NO_STORE", "STATUS", "answer", "check", "commands_list", "parse", "too_large"]
