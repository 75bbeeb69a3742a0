"""The only places the shell reads clocks and draws randomness (the core takes them as inputs)."""

from __future__ import annotations

import random
import secrets
import time
import uuid

import trio

#: An effect's answer "not now": it needs waiting (``Effects.now``; the job's task awaits it).
LATER = object()


def now() -> float:
    """Monotonic seconds on Trio's clock (the core's ``now``)."""
    return trio.current_time()


def monotonic() -> float:
    """Monotonic seconds for code that runs before the event loop (``gateway run --force``)."""
    return time.monotonic()


def sleep_blocking(seconds: float) -> None:
    """A blocking pause for code that runs before the event loop; never call it from async code."""
    time.sleep(seconds)


def wall_ms() -> int:
    """Epoch milliseconds (the core's ``wall_ms``)."""
    return time.time_ns() // 1_000_000


def new_uuid() -> str:
    """A random UUID v4 string (challenge nonces, connection ids, boot id)."""
    return str(uuid.uuid4())


def new_token(nbytes: int = 32) -> str:
    """A URL-safe secret from the CSPRNG (device tokens, runtime gateway tokens)."""
    return secrets.token_urlsafe(nbytes)


def new_seed() -> bytes:
    """32 random bytes for an Ed25519 identity."""
    return secrets.token_bytes(32)


def new_code(alphabet: str, length: int) -> str:
    """``length`` characters of ``alphabet`` drawn from the CSPRNG (pairing codes)."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def jitter() -> float:
    """A uniform float in [0, 1) for retry back-off jitter (not a secret)."""
    return random.random()
