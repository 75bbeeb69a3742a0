"""Provider failures: one exception type whose ``kind`` says whose fault it is and what to do next.

The kinds use the published gateway's failover reasons (``reason=rate_limit``, ``server_error``,
``auth``, ``format``, ``timeout`` in its console, http-openai-observed.md §1.7), plus the ones it
leaves implicit. :data:`KINDS` is the table: retryable on the same model or not, and whether the
next fallback model may be tried. HTTP answers are parsed by :func:`error_from_http` (OpenAI's
``{"error":{"message","type","code"}}``, Anthropic's ``{"type":"error","error":{…}}``, FastAPI's
``{"detail":…}``, plain text), with ``Retry-After`` in seconds or as an HTTP date (``now`` passed in).
"""

from __future__ import annotations

import json
from typing import Any, Final, NamedTuple

AUTH: Final = "auth"
BILLING: Final = "billing"
RATE_LIMIT: Final = "rate_limit"
SERVER: Final = "server_error"
FORMAT: Final = "format"
NOT_FOUND: Final = "not_found"
TIMEOUT: Final = "timeout"
NETWORK: Final = "network"
PROTOCOL: Final = "protocol"
COOLDOWN: Final = "cooldown"
CANCELLED: Final = "cancelled"
CONFIG: Final = "config"


class KindRule(NamedTuple):
    """What a kind of failure allows: retry the same model, or move on to the next fallback."""

    retryable: bool
    failover: bool
    blame: str


#: kind → rule. ``blame`` is ``provider`` (their side or the network), ``request`` (what we sent),
#: ``credential``, ``caller`` (the run was cancelled) or ``config``.
KINDS: Final[dict[str, KindRule]] = {
    RATE_LIMIT: KindRule(True, True, "provider"),
    SERVER: KindRule(True, True, "provider"),
    TIMEOUT: KindRule(True, True, "provider"),
    NETWORK: KindRule(True, True, "provider"),
    PROTOCOL: KindRule(True, True, "provider"),
    AUTH: KindRule(False, True, "credential"),
    BILLING: KindRule(False, True, "credential"),
    COOLDOWN: KindRule(False, True, "credential"),
    NOT_FOUND: KindRule(False, True, "request"),
    FORMAT: KindRule(False, True, "request"),
    CONFIG: KindRule(False, True, "config"),
    CANCELLED: KindRule(False, False, "caller"),
}

# The published gateway's texts (gateway console and HTTP answers, http-openai-observed.md §1.7, §3.6).
AUTH_SUMMARY: Final = (
    "Authentication failed (provider returned HTTP {status}). Your provider token may have expired — "
    "try the request again in a moment. If the failure persists, re-authenticate this provider."
)
FORMAT_SUMMARY: Final = "LLM request failed: provider rejected the request schema or tool payload."
SERVER_SUMMARY: Final = (
    "⚠️ {ref} request failed (provider internal error, HTTP {status}). This is usually temporary — try again shortly."
)
IDLE_TIMEOUT_MESSAGE: Final = "LLM idle timeout ({seconds}s): no response from model"
COOLDOWN_MESSAGE: Final = (
    'Inline API key for provider "{provider}" is temporarily disabled after a provider auth/billing failure. '
    "Retry after about {wait}, or switch to a different auth profile/API key."
)
RETRIES_EXHAUSTED_MESSAGE: Final = (
    "Request failed after repeated internal retries. Please try again, or use /new to start a fresh session."
)

#: Longest upstream error text kept (bodies can be HTML pages).
MAX_MESSAGE_CHARS: Final = 1000


class ProviderError(Exception):
    """A model call failed.

    ``message`` is the upstream's own text (``scripted invalid api key``) or ours for local
    failures; ``status`` the HTTP status when there was one; ``retry_after_s`` the parsed
    ``Retry-After``. :attr:`wire_message` is ``"<status> <message>"``, the form the published
    gateway puts in its HTTP error answers; :attr:`summary` its friendlier console text.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        error_type: str | None = None,
        code: str | None = None,
        provider: str | None = None,
        model: str | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown provider error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s
        self.error_type = error_type
        self.code = code
        self.provider = provider
        self.model = model

    @property
    def retryable(self) -> bool:
        """Whether the same model may be called again (after a delay)."""
        return KINDS[self.kind].retryable

    @property
    def failover(self) -> bool:
        """Whether the next fallback model may be tried."""
        return KINDS[self.kind].failover

    @property
    def wire_message(self) -> str:
        """``"<status> <message>"`` (``"429 scripted rate limit: slow down; …"``), or the message alone."""
        return f"{self.status} {self.message}" if self.status is not None else self.message

    @property
    def summary(self) -> str:
        """The published gateway's text for this failure, where it was observed; else :attr:`wire_message`."""
        ref = f"{self.provider}/{self.model}" if self.provider and self.model else (self.model or "model")
        if self.kind in (AUTH, BILLING) and self.status is not None:
            return AUTH_SUMMARY.format(status=self.status)
        if self.kind == FORMAT and self.status is not None:
            return FORMAT_SUMMARY
        if self.kind == SERVER and self.status is not None:
            return SERVER_SUMMARY.format(ref=ref, status=self.status)
        if self.kind == RATE_LIMIT:
            return f"⚠️ {self.message}"
        return self.wire_message

    def with_model(self, provider: str, model: str) -> ProviderError:
        """The same error, naming the model it came from (adapters fill this in)."""
        self.provider, self.model = provider, model
        return self

    def __repr__(self) -> str:
        return f"ProviderError({self.kind!r}, {self.wire_message!r})"


def kind_for_status(status: int) -> str:
    """The kind of an HTTP error status."""
    if status in (401, 403):
        return AUTH
    if status == 402:
        return BILLING
    if status == 404:
        return NOT_FOUND
    if status == 408:
        return TIMEOUT
    if status == 429:
        return RATE_LIMIT
    if status >= 500:
        return SERVER  # 529 (Anthropic "overloaded") included
    return FORMAT


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date (RFC 9110 §10.2.3).

    ``now_epoch`` (wall-clock seconds) is needed for the date form. Unparseable → ``None``;
    dates in the past → ``0``.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        # Lazy: the date form is rare, and email.utils pulls in socket, datetime and random.
        from email.utils import mktime_tz, parsedate_tz

        parts = parsedate_tz(value)
        if parts is None:
            return None
        return max(0.0, mktime_tz(parts) - now_epoch)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


def retry_after_from_headers(headers: dict[str, str], now_epoch: float) -> float | None:
    """``retry-after-ms`` (OpenAI's header, milliseconds) first, then ``Retry-After``; keys lower-case."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms)
        except ValueError:
            value = -1.0
        if value >= 0:
            return value / 1000.0
    return parse_retry_after(headers.get("retry-after"), now_epoch)


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def parse_error_body(body: bytes | str | Any) -> tuple[str | None, str | None, str | None]:
    """``(message, type, code)`` from an error body in any of the common shapes (or plain text)."""
    obj: Any = body
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            obj = json.loads(body)
        except ValueError:
            return (_clip(body) or None), None, None
    if not isinstance(obj, dict):
        return (_clip(json.dumps(obj)) if obj is not None else None), None, None
    err = obj.get("error")
    if isinstance(err, dict):
        message = err.get("message")
        etype = err.get("type")
        code = err.get("code")
        return (
            _clip(str(message)) if message is not None else None,
            str(etype) if etype is not None else None,
            str(code) if code is not None else None,
        )
    if isinstance(err, str):
        return _clip(err), None, None
    for key in ("message", "detail", "msg"):
        value = obj.get(key)
        if isinstance(value, str):
            return _clip(value), None, None
        if value is not None:
            return _clip(json.dumps(value)), None, None
    return _clip(json.dumps(obj)), None, None


def error_from_http(
    status: int,
    headers: dict[str, str],
    body: bytes | str,
    *,
    now_epoch: float,
    reason: str = "",
) -> ProviderError:
    """A :class:`ProviderError` for a non-2xx answer. ``headers`` keys must be lower-case."""
    message, etype, code = parse_error_body(body)
    kind = kind_for_status(status)
    if etype == "overloaded_error":
        kind = SERVER
    return ProviderError(
        kind,
        message or reason or f"HTTP {status}",
        status=status,
        retry_after_s=retry_after_from_headers(headers, now_epoch),
        error_type=etype,
        code=code,
    )


def error_from_stream(obj: dict[str, Any]) -> ProviderError:
    """An error object that arrived inside a 200 stream (``data: {"error":{…}}``, Anthropic ``error`` event)."""
    message, etype, code = parse_error_body(obj)
    kind = SERVER
    if etype in ("rate_limit_error", "rate_limit_exceeded") or code == "rate_limit_exceeded":
        kind = RATE_LIMIT
    elif etype in ("invalid_request_error", "bad_request"):
        kind = FORMAT
    elif etype in ("authentication_error", "permission_error"):
        kind = AUTH
    return ProviderError(kind, message or "provider stream error", error_type=etype, code=code)


def idle_timeout_error(seconds: float) -> ProviderError:
    """The published idle-timeout text: ``LLM idle timeout (20s): no response from model``."""
    shown = int(seconds) if float(seconds).is_integer() else seconds
    return ProviderError(TIMEOUT, IDLE_TIMEOUT_MESSAGE.format(seconds=shown))


def cooldown_error(provider: str, remaining_s: float) -> ProviderError:
    """The published message for a credential in cooldown after a 401/402 (no upstream call is made)."""
    minutes = max(1, round(remaining_s / 60.0))
    wait = "1 minute" if minutes == 1 else f"{minutes} minutes"
    return ProviderError(COOLDOWN, COOLDOWN_MESSAGE.format(provider=provider, wait=wait), provider=provider)
