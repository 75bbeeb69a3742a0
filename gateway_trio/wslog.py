"""The WebSocket traffic log: which frames ``gateway run`` logs, and how (runtime-cli.md §9.3).

Three styles (``--ws-log``; ``--compact`` is ``compact``):

* ``auto`` (the default): optimized. Only answers that failed or took ≥ 50 ms, and parse errors::

      ⇄ res ✓ config.get 654ms conn=c4de25ac…17ee id=5:6879b6d0-9…e238

  With ``--verbose`` it logs as ``compact`` does.
* ``compact``: every request/response pair on one line with its duration (the request itself is
  not logged: its answer carries it), and each event sent; ``conn=`` only when the connection
  differs from the previous line's::

      ⇄ res ✓ health 0ms conn=c4de25ac…17ee id=r1
      ⇄ res ✓ status 1ms id=r2
      → event presence

* ``full``: every frame, one line each, each with ``conn=`` (and ``id=`` for requests/responses)::

      ← req health conn=c4de25ac…17ee id=r1
      → res ✓ health 0ms conn=c4de25ac…17ee id=r1
      → event presence conn=c4de25ac…17ee

The published gateway applies ``compact``/``full`` only together with ``--verbose``; here naming a
style is enough (it is what the flag says), and ``--verbose`` alone keeps the published pairing.
No clock here: durations are passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Answers slower than this are logged even in the optimized style (§9.3).
SLOW_RESPONSE_MS = 50
STYLES = ("auto", "compact", "full")


def short_conn(conn_id: str) -> str:
    return f"{conn_id[:8]}…{conn_id[-4:]}" if len(conn_id) > 13 else conn_id


def short_id(request_id: str) -> str:
    return f"{request_id[:12]}…{request_id[-4:]}" if len(request_id) > 20 else request_id


class WsLog:
    """Decides and formats the traffic lines; ``emit(level, line)`` writes one (subsystem gateway/ws)."""

    def __init__(self, style: str, *, verbose: bool, emit: Callable[[str, str], None]) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown ws-log style {style!r}")
        #: The effective style: "optimized", "compact" or "full".
        self.mode = "full" if style == "full" else "compact" if style == "compact" or verbose else "optimized"
        self.emit = emit
        self._last_conn: str | None = None

    def _conn(self, conn_id: str) -> str:
        """`` conn=…`` always in full; in compact only when it changes; in optimized always."""
        if self.mode == "compact":
            if conn_id == self._last_conn:
                return ""
            self._last_conn = conn_id
        return f" conn={short_conn(conn_id)}"

    def request(self, conn_id: str, request_id: str, method: str) -> None:
        """An incoming request (logged as its own line in ``full`` only)."""
        if self.mode == "full":
            self.emit("info", f"← req {method}{self._conn(conn_id)} id={short_id(request_id)}")

    def response(self, conn_id: str, request_id: str, method: str, ms: int, error: Any = None) -> None:
        """The final answer to a request after ``ms`` milliseconds; ``error`` has ``code``/``message``."""
        if self.mode == "optimized" and error is None and ms < SLOW_RESPONSE_MS:
            return
        arrow = "→" if self.mode == "full" else "⇄"
        if error is None:
            line = f"{arrow} res ✓ {method} {ms}ms"
        else:
            line = f"{arrow} res ✗ {method} {ms}ms errorCode={error.code} errorMessage={error.message}"
        self.emit("info", f"{line}{self._conn(conn_id)} id={short_id(request_id)}")

    def event(self, conn_id: str, name: str) -> None:
        """An event sent to a connection (``compact`` and ``full``)."""
        if self.mode != "optimized":
            self.emit("info", f"→ event {name}{self._conn(conn_id)}")

    def parse_error(self, conn_id: str, reason: str) -> None:
        """A frame that could not be parsed: a warning in every style."""
        self.emit("warn", f"✗ parse-error error={reason} conn={short_conn(conn_id)}")


__all__ = ["SLOW_RESPONSE_MS", "STYLES", "WsLog", "short_conn", "short_id"]
