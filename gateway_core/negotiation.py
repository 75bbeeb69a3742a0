"""HTTP content negotiation, pure: the ranges of an ``Accept``-style header with their q-values.

Shared by the Control UI (``Accept``, ``Accept-Encoding``) and the live session history
(``Accept: text/event-stream``), so both read q-values the same way.
"""

from __future__ import annotations


def media_ranges(header: str | None) -> list[tuple[str, float]]:
    """``"text/html;q=0.5, */*"`` → ``[("text/html", 0.5), ("*/*", 1.0)]``: names lower-cased,
    empty entries skipped, a missing q is 1 and an unreadable one 0 (RFC 9110 §12.4.2)."""
    out: list[tuple[str, float]] = []
    for part in (header or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        if not fields[0]:
            continue
        q = 1.0
        for f in fields[1:]:
            name, _, val = f.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        out.append((fields[0].lower(), q))
    return out


__all__ = ["media_ranges"]
