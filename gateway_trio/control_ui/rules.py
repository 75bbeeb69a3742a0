"""The Control UI's small pure request rules: the base path, which paths it never claims, the
bootstrap JSON's paths, content negotiation (``Accept``, ``Accept-Encoding``) and the bearer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway_core.negotiation import media_ranges

BOOTSTRAP_NAME: Final = "control-ui-config.json"
NAMESPACE: Final = "/__openclaw__"
#: Paths the Control UI never claims when it is mounted at the root (§1.2 consequences).
RESERVED_ROOTS: Final = ("/api", "/v1", "/j", "/health", "/healthz", "/ready", "/readyz", "/startup", "/startupz")
WORKER_PREFIX: Final = "/__openclaw__/worker"


def normalize_base_path(value: Any) -> str:
    """``"openclaw/"`` → ``"/openclaw"``; empty, ``"/"`` or not a string → ``""``."""
    if not isinstance(value, str):
        return ""
    text = value.strip().strip("/")
    return f"/{text}" if text else ""


def accepts_html(accept: str | None) -> bool:
    """Whether ``Accept`` lets the app shell answer: absent or wildcard yes, ``text/html;q=0`` no.

    The most specific range that matches ``text/html`` decides (RFC 9110 §12.5.1), so an explicit
    rejection beats ``*/*``; an explicit ``application/xhtml+xml`` also accepts.
    """
    if accept is None or not accept.strip():
        return True
    best: tuple[int, float] | None = None
    for media, q in media_ranges(accept):
        if media == "application/xhtml+xml" and q > 0:
            return True
        rank = {"text/html": 3, "text/*": 2, "*/*": 1}.get(media)
        if rank is not None and (best is None or rank > best[0]):
            best = (rank, q)
    return best is not None and best[1] > 0


def accepts_gzip(value: str | None) -> bool:
    """Whether ``Accept-Encoding`` takes gzip (or its ``x-gzip`` alias) with a non-zero weight."""
    if not value:
        return False
    return any(media in ("gzip", "x-gzip") and q > 0 for media, q in media_ranges(value))


def reserved(path: str) -> bool:
    """Whether a root-mounted UI must leave ``path`` to the rest of the HTTP layer."""
    if path == WORKER_PREFIX or path.startswith(WORKER_PREFIX + "/"):
        return True
    return any(path == r or path.startswith(r + "/") for r in RESERVED_ROOTS)


def bootstrap_paths(base: str) -> tuple[str, ...]:
    """The bootstrap JSON and its aliases (the legacy ``/__openclaw/`` one, and without a base path
    the default-namespace one)."""
    paths = [f"{base}/{BOOTSTRAP_NAME}", f"{base}/__openclaw/{BOOTSTRAP_NAME}"]
    if not base:
        paths.append(f"{NAMESPACE}/{BOOTSTRAP_NAME}")
    return tuple(paths)


def bearer(headers: Mapping[str, str]) -> str | None:
    """The ``Authorization: Bearer`` credential, if any (lower-cased header names)."""
    value = headers.get("authorization", "")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None
