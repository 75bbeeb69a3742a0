"""The agent runtime's effects, carried out on Trio: model streams, the session store, run lanes.

``gateway_core.agents`` decides every step of a turn; this module performs what it asks: it opens
model streams through the provider hub (retries, fallbacks and cooldowns in
``gateway_trio.providers.failover``), reads and writes the SQLite session store in a worker thread,
parks runs waiting for their lane, and keeps each job's open streams so that they are closed the
moment the job ends, is aborted or is cancelled (the upstream sees its socket close at once).

With ``raw_stream`` set, every model stream event is appended to a JSONL file (``--raw-stream``).
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from gateway_core.agents.effects import (
    AwaitLane,
    ModelClose,
    ModelFailed,
    ModelNext,
    ModelOpen,
    StoreCall,
    Streamed,
)
from gateway_core.agents.store import SessionStore
from gateway_core.app import EffectFailed
from gateway_core.providers.errors import ProviderError
from gateway_core.providers.types import encode_event

from . import _runtime
from .runtime import session_store_path
from .secrets import SecretError, resolve_secret

if TYPE_CHECKING:
    from .store.cached import CachedSessionStore

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def resolve_provider_keys(config: dict[str, Any] | None) -> dict[str, str | None]:
    """``models.providers.<id>.apiKey`` resolved: plain strings, ``${VAR}``, or SecretRefs."""
    out: dict[str, str | None] = {}
    providers = (((config or {}).get("models") or {}).get("providers") or {})
    for pid, pcfg in providers.items() if isinstance(providers, dict) else ():
        raw = pcfg.get("apiKey") if isinstance(pcfg, dict) else None
        if isinstance(raw, str):
            m = _ENV_REF.match(raw.strip())
            out[pid] = os.environ.get(m.group(1)) if m else raw
        elif isinstance(raw, dict):
            try:
                out[pid] = resolve_secret(raw, config or {})
            except SecretError:
                out[pid] = None
        else:
            out[pid] = None
    return out


def raw_stream_path(state_dir: Path) -> Path | None:
    """``--raw-stream`` (``OPENCLAW_RAW_STREAM=1``): where model stream events are appended as JSONL."""
    if os.environ.get("OPENCLAW_RAW_STREAM") not in ("1", "true", "yes"):
        return None
    custom = os.environ.get("OPENCLAW_RAW_STREAM_PATH")
    return Path(custom) if custom else state_dir / "logs" / "raw-stream.jsonl"


#: Upstream events pulled in a row at most before the run yields to the other tasks (a fast
#: upstream's events often arrive many to a socket read, which awaits nothing).
YIELD_EVERY = 32


#: Events one :class:`ModelNext` answer carries at most (the one awaited plus those in hand).
MAX_IN_HAND = 64


#: Upstream events a :class:`_Pump` may have read ahead of the run (the run passes the
#: back-pressure gate before it takes each one, so this bounds how far the upstream gets ahead).
PUMP_AHEAD = 16


class _Pump:
    """The rest of a stream read in a task of its own, once the run has had to stop waiting for an
    event (its held text came due): a cancelled read of an async generator (an SSE reader) ends the
    generator and loses the event it was reading, so the read is never cancelled for a deadline.

    One task per stream (not per event, ~40 µs per event less than a task per read) hands the
    events over a channel of ``PUMP_AHEAD``; the run still passes the back-pressure gate before it
    takes each one. It is a system task with the caller's context
    variables: the reads belong to the stream, not to the job waiting for them; it never raises
    (errors are handed to the reader)."""

    def __init__(self, stream: Any) -> None:
        self.done = trio.Event()
        self._scope = trio.CancelScope()
        self._send, self.receive = trio.open_memory_channel[tuple[Any, BaseException | None]](PUMP_AHEAD)
        trio.lowlevel.spawn_system_task(self._run, stream, context=contextvars.copy_context())

    async def _run(self, stream: Any) -> None:
        try:
            with self._scope:
                while True:
                    try:
                        value = await stream.__anext__()
                    except Exception as exc:  # noqa: BLE001 - StopAsyncIteration, ProviderError…: for the reader
                        await self._send.send((None, exc))
                        return
                    await self._send.send((value, None))
        finally:
            self._send.close()
            self.done.set()

    @staticmethod
    def result(item: tuple[Any, BaseException | None]) -> Any:
        """The event read, or the read's exception raised."""
        value, error = item
        if error is not None:
            raise error
        return value

    async def cancel(self) -> None:
        """Stop reading and wait until it has (before the stream is closed)."""
        self._scope.cancel()
        with trio.CancelScope(shield=True):
            await self.done.wait()


@dataclass
class _Open:
    """An open model stream (closed with its ``aclose``), the job owning it, its run, and the read
    in progress that a due flush left running (if any)."""

    stream: Any
    owner: int
    run_id: str | None
    pulled: int = 0
    yielded: int = 0  # ``pulled`` when the run last yielded to the other tasks
    pump: _Pump | None = None
    #: A failure the pump handed over while events in hand were being taken: raised by the next read.
    failed: BaseException | None = None


class _Due(Exception):
    """The run's held text came due before the next upstream event."""


def _store_failure(exc: BaseException) -> EffectFailed:
    """A session store failure as the turn sees it (the gateway keeps serving)."""
    from .store.sessions import StoreError

    if isinstance(exc, OSError | StoreError):
        return EffectFailed("storage", getattr(exc, "strerror", None) or str(exc), str(exc))
    return EffectFailed("storage", f"session store error: {type(exc).__name__}", str(exc))


class AgentHost:
    """Per gateway run: the provider hub, the store, open streams and lane waiters."""

    def __init__(self, state_dir: Path, *, raw_stream: Path | None = None) -> None:
        self.state_dir = state_dir
        self.raw_stream = raw_stream
        self.store: CachedSessionStore | None = None
        #: Set by the opener once the store's opening and recovery have ended (or failed).
        self.opened = trio.Event()
        #: Set when something needs the store (it was left for later, see :meth:`ready_store`).
        self.wanted = trio.Event()
        self._hub: Any = None
        self._streams: dict[int, _Open] = {}
        #: Awaited with the run id before each upstream event is pulled: returns once whoever
        #: streams that run to a client has room for more (``Watches.room``: back-pressure).
        self.gate: Callable[[str], Awaitable[None]] | None = None
        #: How much more text that route takes now (``Watches.room_chars``): while it has room the
        #: gate is not awaited at all (no cancel scope, no checkpoint per event), and the events
        #: in hand one answer carries stop at it (their text is what the route is fed).
        self.room_chars: Callable[[str], float] | None = None
        self._next_handle = 0
        self._lane_events: dict[str, trio.Event] = {}

    def store_exists(self) -> bool:
        """Whether the store's file exists (blocking: call it from a thread)."""
        return session_store_path(self.state_dir).exists()

    async def open(self) -> SessionStore:
        """Open (or create and migrate) the store, off the event loop."""
        from .store.cached import CachedSessionStore  # sqlite3 loads with the store
        from .store.sessions import SqliteSessionStore

        path = session_store_path(self.state_dir)
        sqlite = await trio.to_thread.run_sync(lambda: SqliteSessionStore(path, _runtime.new_uuid))
        self.store = CachedSessionStore(sqlite)
        return sqlite

    async def ready_store(self) -> CachedSessionStore | None:
        """The store, once open: a gateway that started without one opens it at the first need, and
        a caller before that waits for it (``None`` only if it could not be opened, or is closed)."""
        if not self.opened.is_set():
            self.wanted.set()
            await self.opened.wait()
        return self.store

    async def aclose(self) -> None:
        for handle in list(self._streams):
            await self._close(handle)
        if self._hub is not None:
            await self._hub.aclose()
            self._hub = None
        if self.store is not None:
            await self.store.aclose()
            self.store = None

    def hub(self) -> Any:
        if self._hub is None:
            from .providers.hub import ProviderHub  # the HTTP client loads on the first model call, not at start

            self._hub = ProviderHub()
        return self._hub

    async def embed(self, request: Any) -> Any:
        """``/v1/embeddings`` through the configured provider (the hub's pooled client)."""
        return await self.hub().embed(request)

    # ------------------------------------------------------------------ lanes

    def lane_granted(self, run_id: str) -> None:
        self._lane_events.setdefault(run_id, trio.Event()).set()

    async def _await_lane(self, run_id: str) -> None:
        event = self._lane_events.setdefault(run_id, trio.Event())
        try:
            await event.wait()
        finally:
            self._lane_events.pop(run_id, None)

    # ------------------------------------------------------------------ effects

    def handles(self, effect: Any) -> bool:
        return isinstance(effect, StoreCall | ModelOpen | ModelNext | ModelClose | AwaitLane)

    def now(self, effect: Any, owner: int) -> Any:
        """The effect's answer when it needs no waiting (a hot session's row or history, a run
        begun, a stream opened: nothing is sent before its first read), else ``LATER``. Raises as
        :meth:`perform` does. Saves a turn most of its effects' cancel scopes and awaits."""
        if isinstance(effect, StoreCall):
            store = self.store
            if store is None or not self.opened.is_set():
                return _runtime.LATER
            try:
                return store.call_now(effect.method, effect.args, effect.kwargs)
            except Exception as exc:  # noqa: BLE001 - mapped as perform maps it
                raise _store_failure(exc) from None
        if isinstance(effect, ModelOpen):
            return self._open_now(effect, owner)
        return _runtime.LATER

    async def perform(self, effect: Any, owner: int) -> Any:
        """Carry out one agent effect for job ``owner`` (its id, for closing its streams)."""
        if isinstance(effect, StoreCall):
            store = await self.ready_store()
            if store is None:
                raise EffectFailed("storage", "the session store is not open")
            try:
                return await store.call(effect.method, *effect.args, **effect.kwargs)
            except Exception as exc:  # noqa: BLE001 - sqlite3 errors: the turn reports them, the gateway keeps serving
                raise _store_failure(exc) from None
        if isinstance(effect, AwaitLane):
            await self._await_lane(effect.run_id)
            return None
        if isinstance(effect, ModelOpen):
            return self._open_now(effect, owner)
        if isinstance(effect, ModelNext):
            return await self._next(effect.handle, effect.flush_at)
        if isinstance(effect, ModelClose):
            await self._close(effect.handle)
            return None
        raise EffectFailed("unsupported", f"{type(effect).__name__} is not an agent effect")

    def _open_now(self, effect: ModelOpen, owner: int) -> int:
        from .providers.failover import open_failover

        stream = open_failover(self.hub(), list(effect.candidates), jitter=random.random)
        self._next_handle += 1
        self._streams[self._next_handle] = _Open(stream, owner, effect.run_id)
        return self._next_handle

    async def _next(self, handle: int, flush_at: float | None = None) -> Streamed:
        """The stream's next event; with ``flush_at`` (the run's held text is due then), an answer
        ``due=True`` at that time if no event has come, the read going on for the next call."""
        entry = self._streams.get(handle)
        if entry is None:
            return Streamed(None, "?/?")
        stream = entry.stream
        try:
            event = await self._pull(entry, flush_at)
        except _Due:
            return Streamed(None, stream.request.ref, due=True)
        except StopAsyncIteration:
            ref = stream.request.ref
            await self._close(handle)
            return Streamed(None, ref)
        except ProviderError as err:
            message = stream.attempts[-1].decision.message if stream.attempts else err.message
            await self._close(handle)
            raise ModelFailed(err, message) from None
        more, ended = self._in_hand(entry, event)
        ref = stream.request.ref
        if ended and (entry.pump is not None or not getattr(stream, "released", False)):
            await self._close(handle)  # else (its connection back in the pool) it is closed with its job, later
        if self.raw_stream is not None:
            for one in (event, *more):
                await self._record(ref, one)
        return Streamed(event, ref, more=more, ended=ended)

    def _in_hand(self, entry: _Open, first: Any) -> tuple[tuple[Any, ...], bool]:
        """The events after ``first`` (just read) that need no waiting (already decoded by the
        stream, or already handed over by its pump), and whether the stream ended after them. A
        failure among them is kept for the next read, so it is raised after the events before it.
        While a route streams the run, they stop where its room for text does (back-pressure
        holds per event, as when each was its own answer)."""
        pump = entry.pump
        ready = getattr(entry.stream, "ready", None) if pump is None else None
        if pump is None and ready is None:
            return (), False
        room = self.room_chars(entry.run_id) if self.room_chars is not None and entry.run_id is not None else math.inf
        room -= len(getattr(first, "text", None) or "")
        out: list[Any] = []
        ended = False
        while room > 0 and len(out) < MAX_IN_HAND - 1:
            if pump is not None:
                try:
                    value, error = pump.receive.receive_nowait()
                except trio.WouldBlock:
                    break
                except trio.EndOfChannel:
                    ended = True
                    break
                if error is not None:
                    if isinstance(error, StopAsyncIteration):
                        ended = True
                    else:
                        entry.failed = error
                    break
                got = [value]
            else:
                assert ready is not None
                got = ready(MAX_IN_HAND - 1 - len(out) if room == math.inf else 1)
                if not got:
                    ended = bool(getattr(entry.stream, "exhausted", False))
                    break
            out.extend(got)
            if room != math.inf:
                room -= sum(len(getattr(e, "text", None) or "") for e in got)
        entry.pulled += len(out)
        return tuple(out), ended

    async def _pull(self, entry: _Open, flush_at: float | None) -> Any:
        """Read the next upstream event (after the back-pressure gate), or raise :class:`_Due` at
        ``flush_at``. The read runs in the job's own task (no task switch) until a deadline first
        has to be waited for; from then on the stream is read by its :class:`_Pump`."""
        if entry.failed is not None:
            failed, entry.failed = entry.failed, None
            raise failed
        if flush_at is not None and flush_at <= trio.current_time():
            raise _Due
        entry.pulled += 1
        if entry.pulled - entry.yielded >= YIELD_EVERY:  # events in hand count too (``_in_hand``)
            entry.yielded = entry.pulled
            await trio.lowlevel.checkpoint()
        gate = self.gate
        room = self.room_chars
        if gate is not None and entry.run_id is not None and (room is None or room(entry.run_id) <= 0):
            with trio.move_on_at(flush_at if flush_at is not None else math.inf):
                await gate(entry.run_id)
            if flush_at is not None and flush_at <= trio.current_time():
                entry.pulled -= 1  # not taken yet: the next call passes the gate again
                raise _Due
        pump = entry.pump
        if pump is None:
            if flush_at is None:
                return await entry.stream.__anext__()
            ready = getattr(entry.stream, "ready", None)
            got = ready(1) if ready is not None else None
            if got:  # in hand already: no wait, so no deadline to watch
                return got[0]
            pump = entry.pump = _Pump(entry.stream)
        item: tuple[Any, BaseException | None] | None = None
        try:
            try:
                item = pump.receive.receive_nowait()
            except trio.WouldBlock:
                with trio.move_on_at(flush_at if flush_at is not None else math.inf):
                    item = await pump.receive.receive()
        except trio.EndOfChannel:  # the pump has ended (its last item was taken): nothing more
            raise StopAsyncIteration from None
        if item is None:
            entry.pulled -= 1
            raise _Due
        return pump.result(item)

    async def _record(self, ref: str, event: Any) -> None:
        line = json.dumps({"ts": _runtime.wall_ms(), "model": ref, "event": json.loads(encode_event(event))}) + "\n"
        path = self.raw_stream
        assert path is not None

        def append() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(line)

        try:
            await trio.to_thread.run_sync(append)
        except OSError:
            self.raw_stream = None  # a full disk stops the recording, never the run

    async def _close(self, handle: int) -> None:
        entry = self._streams.pop(handle, None)
        if entry is not None:
            if entry.pump is not None:
                await entry.pump.cancel()
            with trio.CancelScope(shield=True):
                await entry.stream.aclose()

    async def close_owned(self, owner: int) -> None:
        """Close every stream job ``owner`` left open (it finished, failed or was cancelled)."""
        for handle in [h for h, e in self._streams.items() if e.owner == owner]:
            await self._close(handle)


__all__ = ["AgentHost", "resolve_provider_keys"]
