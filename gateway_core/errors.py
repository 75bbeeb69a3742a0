"""Errors, split by blame, each carrying its wire form (protocol.md §11, §12).

Contract (as in h11): the core raises only :class:`LocalProtocolError` (our own application used
the core wrongly). Everything the *peer* does wrong becomes output (an error response and/or a
close action) instead of an exception. Any other exception escaping the core is a bug.
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import UNSET

from .frames import ErrorShape

# Top-level error codes (protocol.md §11).
INVALID_REQUEST: Final = "INVALID_REQUEST"
FORBIDDEN: Final = "FORBIDDEN"
UNAVAILABLE: Final = "UNAVAILABLE"
NOT_PAIRED: Final = "NOT_PAIRED"
APPROVAL_NOT_FOUND: Final = "APPROVAL_NOT_FOUND"

ERROR_CODES: Final = frozenset(
    {INVALID_REQUEST, FORBIDDEN, UNAVAILABLE, NOT_PAIRED, APPROVAL_NOT_FOUND, "NOT_LINKED", "AGENT_TIMEOUT"}
)


def error(
    code: str,
    message: str,
    details: Any = UNSET,
    *,
    retryable: bool | None = None,
    retry_after_ms: int | None = None,
) -> ErrorShape:
    """Build an :class:`ErrorShape`; ``None`` keyword values stay off the wire."""
    return ErrorShape(
        code=code,
        message=message,
        details=details,
        retryable=UNSET if retryable is None else retryable,
        retry_after_ms=UNSET if retry_after_ms is None else retry_after_ms,
    )


def invalid_request(message: str, details: Any = UNSET) -> ErrorShape:
    """``INVALID_REQUEST`` with ``message`` (the most common failure)."""
    return error(INVALID_REQUEST, message, details)


def unavailable(message: str, details: Any = UNSET, **kw: Any) -> ErrorShape:
    """``UNAVAILABLE`` with ``message``; e.g. for methods this gateway does not implement."""
    return error(UNAVAILABLE, message, details, **kw)


def missing_scope(scope: str) -> ErrorShape:
    """``FORBIDDEN missing scope: <scope>`` with the MISSING_SCOPE details (§7.3 step 8)."""
    return error(
        FORBIDDEN,
        f"missing scope: {scope}",
        {"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]},
    )


class ProtocolError(Exception):
    """Base of the core's exceptions."""


class LocalProtocolError(ProtocolError):
    """Our own application called the core wrongly (a bug on this side, never the peer's)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol. Carries the wire answer: an optional error and a close.

    Inside the core it is raised and caught at the ``receive_*`` boundary, where it turns into
    queued actions (the error response, then the close); the application never sees it raised.
    The close reason defaults to the error message (truncated on the wire to 120 bytes).
    """

    def __init__(self, error: ErrorShape | None, close_code: int, close_reason: str | None = None) -> None:
        reason = close_reason if close_reason is not None else (error.message if error is not None else "")
        super().__init__(reason or str(close_code))
        self.error = error
        self.close_code = close_code
        self.close_reason = reason


__all__ = [
    "APPROVAL_NOT_FOUND",
    "ERROR_CODES",
    "FORBIDDEN",
    "INVALID_REQUEST",
    "NOT_PAIRED",
    "UNAVAILABLE",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "error",
    "invalid_request",
    "missing_scope",
    "unavailable",
]
