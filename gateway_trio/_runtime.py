"""The only places the shell reads clocks and draws randomness (the core takes them as inputs)."""

from __future__ import annotations

import os
import random
import secrets
import threading
import time

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


_POOL = bytearray()  # random bytes drawn ahead from the OS (one getrandom per 256 uuids)
_POOL_LOCK = threading.Lock()


def _drop_pool() -> None:
    _POOL.clear()  # a forked child must not hand out its parent's next ids


os.register_at_fork(after_in_child=_drop_pool)


def new_uuid() -> str:
    """A random UUID v4 string (challenge nonces, connection ids, boot id, run ids): 16 bytes of
    ``os.urandom``, as :func:`uuid.uuid4`, drawn 4 KiB at a time and formatted here (a quarter of
    the cost of ``str(uuid.uuid4())``, twice per chat request)."""
    with _POOL_LOCK:  # the store's writer thread draws ids too
        if len(_POOL) < 16:
            _POOL[:] = os.urandom(4096)
        b = _POOL[-16:]
        del _POOL[-16:]
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


async def one_pass() -> None:
    """Let every other task that is runnable now have its turn before this one goes on: two
    checkpoints, since Trio runs a batch of runnable tasks in random order."""
    await trio.lowlevel.checkpoint()
    await trio.lowlevel.checkpoint()


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
