"""A failed run as the OpenAI-compatible client sees it (http-openai-observed.md §3.6, §4.5, §9.5).

The run's failure kind (``TurnResult.error_detail["failoverReason"]``, the provider error kinds of
``gateway_core.providers.errors``) picks the row. ``<wire>`` is ``"<upstream status> <upstream
message>"``; the upstream's own ``code`` is **not** passed through (observed, unlike the docs).

=================  ========================  ==================  ==============================
kind               ``type``                  status              message
=================  ========================  ==================  ==============================
auth               authentication_error      upstream, else 401  ``<wire>``
billing            insufficient_quota        upstream, else 402  ``<wire>``
format             invalid_request_error     upstream, else 400  ``<wire>``
not_found          invalid_request_error     upstream, else 404  ``<wire>``
rate_limit         rate_limit_error          upstream, else 429  ``<wire>`` (no ``Retry-After``)
server_error       api_error                 upstream 4xx, else  ``upstream provider error``
                                             502
=================  ========================  ==================  ==============================

Anything else — idle timeouts that exhausted their retries (i02), a credential in cooldown (g06),
network and protocol failures, the run deadline — is unmapped: a non-streamed answer is 500
``internal error``; a stream's error frame carries the run's own error text (h01), or ``internal
error`` when it has none. A failed Responses request answers a *response object* with
``status:"failed"`` and ``error:{code:<type>, message}`` instead of the envelope.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from .wire import error_body

INTERNAL: Final = "internal error"


class Rule(NamedTuple):
    type: str
    fallback_status: int
    fixed_message: str | None = None  # None: the upstream's "<status> <message>"
    upstream_4xx_only: bool = False


#: failure kind → how it is answered.
RULES: Final[dict[str, Rule]] = {
    "auth": Rule("authentication_error", 401),
    "billing": Rule("insufficient_quota", 402),
    "format": Rule("invalid_request_error", 400),
    "not_found": Rule("invalid_request_error", 404),
    "rate_limit": Rule("rate_limit_error", 429),
    "server_error": Rule("api_error", 502, "upstream provider error", upstream_4xx_only=True),
}


class Failure(NamedTuple):
    """What to answer: ``status`` (non-streamed), ``type`` and ``message``; ``mapped`` as in §3.6."""

    status: int
    type: str
    message: str
    mapped: bool

    def envelope(self) -> dict[str, Any]:
        return error_body(self.message, self.type)


def _wire_message(detail: dict[str, Any], fallback: str | None) -> str:
    """``wireMessage`` when the runtime gives it whole, else ``"<httpStatus> <providerErrorMessagePreview>"``."""
    whole = detail.get("wireMessage")
    if isinstance(whole, str) and whole.strip():
        return whole.strip()
    status = detail.get("httpStatus")
    text = detail.get("providerErrorMessagePreview") or detail.get("providerErrorMessage")
    if isinstance(text, str) and text.strip():
        return f"{status} {text.strip()}" if isinstance(status, int) else text.strip()
    return (fallback or "request failed").strip() or "request failed"


def describe(result: Any) -> Failure:
    """The failure of a ``TurnResult`` whose status is not ``ok`` (``error``, ``timeout``; ``aborted`` too)."""
    detail: dict[str, Any] = getattr(result, "error_detail", None) or {}
    rule = RULES.get(str(detail.get("failoverReason") or "")) if getattr(result, "status", "") == "error" else None
    if rule is None:
        own = getattr(result, "error", None)
        text = own.strip() if isinstance(own, str) and own.strip() and result.status == "error" else INTERNAL
        return Failure(500, "api_error", text, False)
    upstream = detail.get("httpStatus")
    upstream = upstream if isinstance(upstream, int) and not isinstance(upstream, bool) else None
    if rule.upstream_4xx_only:
        status = upstream if upstream is not None and 400 <= upstream < 500 else rule.fallback_status
    else:
        status = upstream or rule.fallback_status
    message = rule.fixed_message or _wire_message(detail, getattr(result, "error", None))
    return Failure(status, rule.type, message, True)


def non_stream(result: Any) -> Failure:
    """The failure for a non-streamed answer: unmapped ones are 500 ``internal error``."""
    failure = describe(result)
    return failure if failure.mapped else Failure(500, "api_error", INTERNAL, False)


def stream_frame(result: Any) -> dict[str, Any]:
    """The ``{"error":{…}}`` frame a stream ends with (before ``[DONE]``)."""
    return describe(result).envelope()


def response_error(result: Any) -> tuple[int, dict[str, str]]:
    """Status and ``error:{code,message}`` of a failed Responses object (non-streamed and streamed)."""
    failure = non_stream(result)
    return failure.status, {"code": failure.type, "message": failure.message}


__all__ = ["INTERNAL", "RULES", "Failure", "Rule", "describe", "non_stream", "response_error", "stream_frame"]
