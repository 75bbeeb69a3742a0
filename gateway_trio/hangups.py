"""Client hang-ups noticed without a task per request.

A route that waits for an agent run must learn at once that its client went away (the run is
stopped and its upstream request closed). Reading the socket in a watcher task per request costs a
task spawn, a failed ``recv`` and a cancellation for every request. Instead one epoll set per Trio
run holds the sockets being watched, registered for ``EPOLLRDHUP`` only: the peer's FIN or a reset
wakes it, bytes of a pipelined next request do not (they stay in the kernel's buffer for the next
read). One system task waits on that epoll set's descriptor inside Trio's own loop and calls the
hang-up callback of each socket it reports; a watch costs two ``epoll_ctl`` calls and no task.

Linux only (``select.epoll``); elsewhere :func:`monitor` is ``None`` and callers keep a watcher task.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

import trio

_EVENTS: int = getattr(select, "EPOLLRDHUP", 0) | getattr(select, "EPOLLHUP", 0) | getattr(select, "EPOLLERR", 0)
_MONITOR: trio.lowlevel.RunVar[HangupMonitor | None] = trio.lowlevel.RunVar("gateway_hangup_monitor")


class HangupMonitor:
    """The sockets whose peer hanging up is being watched, and the task that reports it."""

    def __init__(self) -> None:
        self._ep = select.epoll()
        self._calls: dict[int, Callable[[], None]] = {}
        self._running = False

    def __len__(self) -> int:
        return len(self._calls)

    def watch(self, sock: Any, on_hangup: Callable[[], None]) -> int | None:
        """Call ``on_hangup()`` (once, from the monitor's task) when ``sock``'s peer closes or resets
        it; the handle for :meth:`unwatch`, or ``None`` when the socket cannot be watched here."""
        try:
            fd = sock.fileno()
        except (AttributeError, OSError):
            return None
        if fd < 0:
            return None
        try:
            self._ep.register(fd, _EVENTS)
        except (OSError, ValueError):  # ValueError: the run is ending and the set is closed
            return None
        self._calls[fd] = on_hangup
        if not self._running:
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name="gateway hang-up monitor")
        return fd

    def unwatch(self, fd: int) -> None:
        """Stop watching (idempotent; the socket may already be closed)."""
        if self._calls.pop(fd, None) is not None:
            try:
                self._ep.unregister(fd)
            except (OSError, ValueError):
                pass

    async def _run(self) -> None:
        try:
            while True:
                await trio.lowlevel.wait_readable(self._ep.fileno())
                for fd, _events in self._ep.poll(0):
                    call = self._calls.get(fd)
                    self.unwatch(fd)
                    if call is None:
                        continue
                    try:
                        call()
                    except Exception:  # noqa: BLE001 - one callback's bug must not stop the others being watched
                        pass
        finally:
            self._calls.clear()
            self._ep.close()


def monitor() -> HangupMonitor | None:
    """This Trio run's monitor (made on first use), or ``None`` where epoll is missing."""
    try:
        return _MONITOR.get()
    except LookupError:
        pass
    found = HangupMonitor() if hasattr(select, "epoll") and _EVENTS else None
    _MONITOR.set(found)
    return found


__all__ = ["HangupMonitor", "monitor"]
