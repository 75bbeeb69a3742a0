"""Parallel socket writes for a large broadcast fan-out.

A broadcast to many clients is, once its frames are built, one non-blocking ``write`` per socket,
and most of its time is the kernel's (a loopback TCP write delivers into the peer's buffer in
the writer's own context). ``os.write`` releases the GIL, so a second thread can write half of the
sockets while the event loop's thread writes the other half: the last client gets the event up
to ~2× sooner on a machine with a spare core. The loop waits for the thread before it goes on,
so nothing else touches those sockets meanwhile: the order and the outcome of each write are
exactly those of writing them one after another. What a socket did not take is handled by the
caller, as for any short write.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

#: Below this many writes, one thread writes them all (the hand-off costs more than it saves).
PARALLEL_MIN = 128


class Writable(Protocol):
    def try_write(self, data: bytes) -> int: ...


def _write_range(items: Sequence[tuple[Writable, bytes]], start: int, stop: int, out: list[int]) -> None:
    for i in range(start, stop):
        transport, data = items[i]
        try:
            out[i] = transport.try_write(data)
        except OSError:
            out[i] = 0  # the session's writer task sees the error and closes it


class FanWriter:
    """One helper thread, started on first use, that writes the second half of a large batch."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._job: tuple[Sequence[tuple[Writable, bytes]], int, int, list[int]] | None = None
        self._done = threading.Event()
        self._closed = False

    def write_all(self, items: Sequence[tuple[Writable, bytes]]) -> list[int]:
        """Bytes each socket took, in ``items`` order (0 when full or failed)."""
        n = len(items)
        out = [0] * n
        if n < PARALLEL_MIN or self._closed:
            _write_range(items, 0, n, out)
            return out
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="openclaw-fanout", daemon=True)
            self._thread.start()
        mid = n // 2
        self._done.clear()
        with self._cond:
            self._job = (items, mid, n, out)
            self._cond.notify()
        _write_range(items, 0, mid, out)
        self._done.wait()
        return out

    def _serve(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job, self._job = self._job, None
            assert job is not None
            try:
                _write_range(*job)
            finally:
                self._done.set()

    def close(self) -> None:
        """Stop the helper thread (it holds no socket of its own)."""
        with self._cond:
            self._closed = True
            self._cond.notify()


__all__ = ["PARALLEL_MIN", "FanWriter", "Writable"]
