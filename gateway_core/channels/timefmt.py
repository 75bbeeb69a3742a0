"""ISO-8601 UTC timestamps from and to epoch milliseconds, without a clock or ``datetime``.

The published pairing store and A2A tasks carry times as JavaScript's ``toISOString()`` writes
them (``2026-12-01T11:24:02.035Z``). The core gets time as ``wall_ms`` and must not import
``datetime`` (tests/test_purity.py), so the calendar arithmetic is done here (days from the civil
date and back, proleptic Gregorian).
"""

from __future__ import annotations

import re

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$"
)


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def iso_from_ms(ms: int) -> str:
    """``1796124489841`` → ``"2026-12-01T11:28:09.841Z"``."""
    days, rem = divmod(int(ms), 86_400_000)
    y, m, d = _civil_from_days(days)
    hh, rem = divmod(rem, 3_600_000)
    mm, rem = divmod(rem, 60_000)
    ss, milli = divmod(rem, 1000)
    return f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{milli:03d}Z"


def ms_from_iso(text: str) -> int | None:
    """The epoch ms of an ISO-8601 timestamp with a zone (``Z`` or ``±hh:mm``); ``None`` if malformed."""
    match = _ISO.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    y, mo, d, hh, mi, ss = (int(match.group(i)) for i in range(1, 7))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mi < 60 and ss < 61):
        return None
    frac = (match.group(7) or "0").ljust(3, "0")[:3]
    zone = match.group(8)
    offset_min = 0
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset_min = sign * (int(digits[:2]) * 60 + int(digits[2:]))
    days = _days_from_civil(y, mo, d)
    return ((days * 24 + hh) * 60 + mi - offset_min) * 60_000 + ss * 1000 + int(frac)


__all__ = ["iso_from_ms", "ms_from_iso"]
