"""What goes on the wire: answers as ``(status, headers, body)``, the shared error bodies, SSE frames.

http-agents-channels.md §1.4 lists the error bodies every gateway-authenticated JSON route shares;
http-openai-observed.md §2–§6 shows them byte for byte. JSON is compact with keys in insertion
order, as ``JSON.stringify`` writes it (msgspec escapes strings the same way); floats that must
look like JavaScript numbers go through :func:`js_number`. A request refused before any run is a
:class:`Refused` exception carrying its :class:`Answer`, so parsers can stop at the first problem.
"""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec
from msgspec import Struct

JSON_TYPE: Final = "application/json; charset=utf-8"
TEXT_TYPE: Final = "text/plain; charset=utf-8"
SSE_TYPE: Final = "text/event-stream; charset=utf-8"

#: Every HTTP answer carries these (§1.2); ``Strict-Transport-Security`` only when configured.
SECURITY_HEADERS: Final = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Permissions-Policy", "camera=(), microphone=(self), geolocation=()"),
)
#: The head of a streamed answer (chat and responses alike): flushed before the run starts.
SSE_HEADERS: Final = (("Content-Type", SSE_TYPE), ("Cache-Control", "no-cache"), ("Connection", "keep-alive"))

_encoder = msgspec.json.Encoder()


def dumps(obj: Any) -> bytes:
    """Compact JSON in insertion order (``JSON.stringify`` of the same object)."""
    return _encoder.encode(obj)


def js_number(value: float) -> str:
    """A float as JavaScript's ``Number.prototype.toString`` writes it (``1`` not ``1.0``, ``1e+21``).

    Python's ``repr`` already gives the shortest round-trip digits, as ECMAScript does; only the
    layout differs (ECMA-262 Number::toString: plain up to 21 integer digits, ``0.000001``, else
    exponent form with a sign).
    """
    if math.isnan(value) or math.isinf(value):
        return "null"  # JSON.stringify's answer
    if value == 0:
        return "0"
    text = repr(abs(float(value)))
    mantissa, _, exp_text = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    n = len(whole) + (int(exp_text) if exp_text else 0)  # value = 0.<digits> × 10^n
    n -= len(digits) - len(digits.lstrip("0"))
    digits = digits.strip("0")
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return ("-" if value < 0 else "") + out


def js_floats(values: list[float]) -> list[msgspec.Raw]:
    """Floats pre-rendered as JavaScript would print them, for embedding in :func:`dumps` output."""
    return [msgspec.Raw(js_number(v).encode()) for v in values]


class Answer(Struct, frozen=True):
    """One complete HTTP answer. ``headers`` holds the route's own headers only (not §1.2's baseline)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def json(self) -> Any:
        """The body parsed (tests and logs)."""
        return msgspec.json.decode(self.body)


def json_answer(status: int, obj: Any, *extra: tuple[str, str]) -> Answer:
    return Answer(status, (("Content-Type", JSON_TYPE), *extra), dumps(obj))


def text_answer(status: int, text: str, *extra: tuple[str, str]) -> Answer:
    return Answer(status, (("Content-Type", TEXT_TYPE), *extra), text.encode())


class Refused(Exception):
    """A request refused before any run: ``answer`` is what to send. ``message`` is for logs."""

    def __init__(self, answer: Answer, message: str = "") -> None:
        super().__init__(message or answer.body.decode("utf-8", "replace"))
        self.answer = answer
        self.message = message


# --------------------------------------------------------------------------- §1.4 error bodies


def error_body(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    """The ``/v1`` envelope ``{"error":{"message","type"[,"code"]}}``."""
    inner: dict[str, Any] = {"message": message, "type": type_}
    if code is not None:
        inner["code"] = code
    return {"error": inner}


def invalid_request(message: str) -> Answer:
    """400 ``invalid_request_error`` (validation, bad JSON, unknown agent, …)."""
    return json_answer(400, error_body(message, "invalid_request_error"))


def unauthorized() -> Answer:
    return json_answer(401, error_body("Unauthorized", "unauthorized"))


PROXY_ATTRIBUTION_MESSAGE: Final = (
    "Proxy client attribution is required. Configure gateway.trustedProxies narrowly and make the proxy "
    "overwrite or safely rebuild forwarded client headers."
)


def proxy_attribution_required() -> Answer:
    return json_answer(403, error_body(PROXY_ATTRIBUTION_MESSAGE, "proxy_attribution_required"))


def forbidden(message: str) -> Answer:
    """403 ``forbidden`` in the ``/v1`` envelope (role ceilings, session creation, incognito keys)."""
    return json_answer(403, error_body(message, "forbidden"))


def missing_scope(scope: str, required: tuple[str, ...] | None = None) -> Answer:
    """403 with the gateway-style body (``ok:false``, ``details.code: MISSING_SCOPE``)."""
    details = {"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": list(required or (scope,))}
    return json_answer(
        403, {"ok": False, "error": {"type": "forbidden", "message": f"missing scope: {scope}", "details": details}}
    )


def method_not_allowed(allow: str = "POST") -> Answer:
    return text_answer(405, "Method Not Allowed", ("Allow", allow))


def body_timeout() -> Answer:
    return json_answer(408, error_body("Request body timeout", "invalid_request_error"))


def payload_too_large() -> Answer:
    """413; the host adds ``Connection: close`` when it answers without reading the body (j09)."""
    return json_answer(413, error_body("Payload too large", "invalid_request_error"))


RATE_LIMITED_MESSAGE: Final = "Too many failed authentication attempts. Please try again later."


def rate_limited(retry_after_ms: int | None) -> Answer:
    """429 after too many wrong credentials; ``Retry-After`` in whole seconds, rounded up."""
    extra = (("Retry-After", str(math.ceil(retry_after_ms / 1000))),) if retry_after_ms and retry_after_ms > 0 else ()
    return json_answer(429, error_body(RATE_LIMITED_MESSAGE, "rate_limited"), *extra)


def not_found_text() -> Answer:
    """The pipeline's final plain-text 404 (also what a disabled ``/v1`` route gives)."""
    return text_answer(404, "Not Found")


def unavailable(message: str = "Gateway context is unavailable; retry shortly.") -> Answer:
    return json_answer(503, error_body(message, "unavailable"))


def internal_error() -> Answer:
    return json_answer(500, error_body("internal error", "api_error"))


#: status → constructor, for the glue's table-driven early refusals.
SHARED: Final = {
    401: unauthorized,
    408: body_timeout,
    413: payload_too_large,
}


# --------------------------------------------------------------------------- SSE

DONE: Final = b"data: [DONE]\n\n"


def data_frame(obj: Any) -> bytes:
    """``data: <compact json>\\n\\n`` (chat completion chunks and error frames)."""
    return b"data: " + dumps(obj) + b"\n\n"


def event_frame(event: dict[str, Any]) -> bytes:
    """``event: <type>\\ndata: <json>\\n\\n`` (Responses events; the JSON repeats ``type``)."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + dumps(event) + b"\n\n"


__all__ = [
    "DONE",
    "JSON_TYPE",
    "SECURITY_HEADERS",
    "SHARED",
    "SSE_HEADERS",
    "SSE_TYPE",
    "TEXT_TYPE",
    "Answer",
    "Refused",
    "body_timeout",
    "data_frame",
    "dumps",
    "error_body",
    "event_frame",
    "forbidden",
    "internal_error",
    "invalid_request",
    "js_floats",
    "js_number",
    "json_answer",
    "method_not_allowed",
    "missing_scope",
    "not_found_text",
    "payload_too_large",
    "proxy_attribution_required",
    "rate_limited",
    "text_answer",
    "unauthorized",
    "unavailable",
]
