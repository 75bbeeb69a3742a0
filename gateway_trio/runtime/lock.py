"""The state-dir lock file: one gateway per state dir, and how the CLI finds the running one.

``<state>/gateway.lock`` is held (``flock``) by the gateway for its whole life and says who holds it
and on which port (two lines: the pid, the port). ``gateway run`` takes it before it writes anything; CLI
commands read the port from it (:func:`running_port`) to reach the gateway of a profile.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from .paths import StartupError

LOCK_WAIT_S = 5.0


def acquire_state_lock(state_dir: Path) -> int:
    """Hold ``<state>/gateway.lock`` (one gateway per state dir); waits up to 5 s.

    ``gateway run`` takes it before it writes anything (runtime token, dev config), so a refused
    second start leaves the running gateway's state as it was. A holder removes the file when it
    exits; if the file we locked is no longer the one at the path, lock the new one instead.
    """
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / "gateway.lock"
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                try:
                    owner = os.pread(fd, 64, 0).decode().split("\n", 1)[0].strip() or "?"
                finally:
                    os.close(fd)
                raise StartupError(
                    f"Gateway failed to start: gateway already running (pid {owner}); "
                    f"lock timeout after {int(LOCK_WAIT_S * 1000)}ms",
                    1,
                ) from None
            os.close(fd)
            time.sleep(0.1)
            continue
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the previous holder unlinked it after we opened it: lock the file now there
    record_port(fd, None)
    return fd


def record_port(fd: int, port: int | None) -> None:
    """The lock file says who holds it and on which port (CLI commands find the running gateway)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n{port or ''}\n".encode(), 0)


def running_port(state_dir: Path) -> int | None:
    """The port of the gateway holding ``state_dir``'s lock, if one is running."""
    try:
        lines = (state_dir / "gateway.lock").read_text().split("\n")
    except OSError:
        return None
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else None


def release_state_lock(fd: int, state_dir: Path) -> None:
    """Release and remove the state-dir lock taken by :func:`acquire_state_lock`."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    (state_dir / "gateway.lock").unlink(missing_ok=True)


def lock_owner(state_dir: Path) -> tuple[str, int | None]:
    """Who holds the state-dir lock: ``("none"|"held"|"stale"|"unknown", owner pid)`` (a stale
    file is one nobody holds: its gateway died without removing it)."""
    path = state_dir / "gateway.lock"
    try:
        first = path.read_text(errors="replace").split("\n", 1)[0].strip()
    except OSError:
        return "none", None
    pid = int(first) if first.isdigit() else None
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return "unknown", pid
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return "held", pid
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return "stale", pid
    finally:
        os.close(fd)


__all__ = ["LOCK_WAIT_S", "acquire_state_lock", "lock_owner", "record_port", "release_state_lock", "running_port"]
