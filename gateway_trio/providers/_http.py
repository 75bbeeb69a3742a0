"""What every network adapter shares on top of :mod:`.client`: one pooled client per adapter,
error mapping, bounded reads, JSON bodies and the SSE event iterator.

No proxy variables from the environment are applied to model calls (Node's fetch, which the
published gateway uses, ignores them too), and redirects are not followed.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import msgspec
import trio

from gateway_core.providers.errors import (
    CONFIG,
    NETWORK,
    PROTOCOL,
    ProviderError,
    error_from_http,
    idle_timeout_error,
)
from gateway_core.providers.sse import SSEDecoder, SSEEvent
from gateway_core.providers.types import StreamEvent

from .._runtime import wall_ms
from . import client as http
from .client import MAX_CONNECT_S, USER_AGENT, HTTPClient, Response

__all__ = ["MAX_CONNECT_S", "USER_AGENT"]  # re-exported: the limits live with the client

#: Most bytes read from an error answer (the rest is dropped; bodies can be HTML pages).
MAX_ERROR_BODY: Final = 64 * 1024
#: Most bytes read from a non-streamed JSON answer.
MAX_JSON_BODY: Final = 32 * 1024 * 1024
#: How long the tail after ``[DONE]`` may take to arrive (read so the connection can be reused).
DRAIN_S: Final = 1.0

_encoder = msgspec.json.Encoder()
_decode = msgspec.json.decode


def new_client() -> HTTPClient:
    """One pooled client (keep-alive) for one provider configuration."""
    return HTTPClient(max_connections=256, max_idle=32, idle_expiry_s=60.0, user_agent=USER_AGENT)


#: client failure → (kind, message template); ``{url}`` and ``{exc}`` are filled in.
_FAILURES: Final[dict[type[http.HTTPError], tuple[str, str]]] = {
    http.ConnectTimeout: (NETWORK, "connect timeout reaching {url}"),
    http.ConnectFailed: (NETWORK, "cannot connect to {url}: {exc}"),
    http.Dropped: (NETWORK, "connection to the model provider dropped: {exc}"),
    http.InvalidURL: (CONFIG, "bad provider baseUrl {url!r}: {exc}"),
    http.InvalidRequest: (CONFIG, "bad request to {url}: {exc}"),
    http.NetworkFailure: (NETWORK, "network error talking to {url}: {exc}"),
    http.DecodingFailed: (PROTOCOL, "unreadable answer from {url}: {exc}"),
}


def map_exception(exc: BaseException, idle_s: float, url: str) -> ProviderError:
    """A client (or SSE, JSON) failure as a :class:`ProviderError`."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, http.IdleTimeout):
        return idle_timeout_error(idle_s)
    rule = _FAILURES.get(type(exc))
    if rule is not None:
        kind, template = rule
        return ProviderError(kind, template.format(url=url, exc=exc))
    if isinstance(exc, ValueError):  # SSEError, msgspec and json decode errors
        return ProviderError(PROTOCOL, f"unreadable answer from {url}: {exc}")
    return ProviderError(NETWORK, f"{type(exc).__name__}: {exc}")


def encode_json(body: Any) -> bytes:
    """A request body: compact JSON, UTF-8 (non-ASCII kept), key order kept."""
    try:
        return _encoder.encode(body)
    except (TypeError, UnicodeEncodeError):  # lone surrogates, odd types: the stdlib's escaped form
        return json.dumps(body, default=str).encode()


def decode_json(data: bytes | str) -> Any:
    """A JSON document (msgspec; the stdlib's leniency, ``NaN`` and the like, as the fallback)."""
    try:
        return _decode(data)
    except msgspec.DecodeError:
        return json.loads(data)


async def read_bounded(response: Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body (the rest is left unread)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.receive()
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit]


async def raise_for_status(response: Response) -> None:
    """Raise the parsed :class:`ProviderError` for a non-2xx answer."""
    if 200 <= response.status < 300:
        return
    body = await read_bounded(response, MAX_ERROR_BODY)
    raise error_from_http(response.status, response.headers, body, now_epoch=wall_ms() / 1000.0,
                          reason=response.reason)


def is_json(response: Response) -> bool:
    """Whether the answer is a whole JSON document rather than an event stream."""
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower() == "application/json"


async def read_json(response: Response) -> Any:
    """A non-streamed JSON answer, bounded."""
    body = await read_bounded(response, MAX_JSON_BODY)
    try:
        return decode_json(body)
    except ValueError as exc:
        raise ProviderError(PROTOCOL, f"the model provider sent invalid JSON: {exc}") from exc


class SSEEvents:
    """Async iterator of :data:`StreamEvent` s over one SSE response.

    ``parse(data_obj)`` turns one decoded ``data:`` object into events (raising
    :class:`ProviderError` for in-stream errors); ``finish()`` gives the closing events (raising
    when the stream was cut short). ``is_last(data_obj)`` marks the final event (Anthropic's
    ``message_stop``); ``[DONE]`` always ends the stream. Every read is bounded by the idle
    timeout (the client's), and failures come out as labelled :class:`ProviderError` s.
    """

    def __init__(
        self,
        response: Response,
        *,
        parse: Callable[[Any], list[StreamEvent]],
        finish: Callable[[], list[StreamEvent]],
        is_last: Callable[[Any], bool],
        idle_s: float,
        url: str,
        label: Callable[[ProviderError], ProviderError],
    ) -> None:
        self._response = response
        self._decoder = SSEDecoder()
        self._sse: deque[SSEEvent] = deque()
        self._parse, self._finish, self._is_last = parse, finish, is_last
        self._idle_s, self._url, self._label = idle_s, url, label
        self._pending: deque[StreamEvent] = deque()
        self._ended = False
        self._last_seen = False  # ``is_last`` matched in :meth:`ready`: the read path drains and ends
        self._failure: Exception | None = None  # met in :meth:`ready`, raised by the next read

    def __aiter__(self) -> SSEEvents:
        return self

    def ready(self, limit: int) -> list[StreamEvent]:
        """Up to ``limit`` events decoded from bytes already received: no I/O, never raises (a
        failure met is raised by the next ``__anext__``, after the events before it). The end
        (``[DONE]``, the last event) is taken too when the rest of the body is here already (the
        connection then goes back to the pool, and :attr:`exhausted` says so); else it is left to
        the next read, which drains the tail first."""
        out: list[StreamEvent] = []
        pending, sse = self._pending, self._sse
        while len(out) < limit:
            if pending:
                out.append(pending.popleft())
                continue
            if self._ended or self._failure is not None:
                break
            if self._last_seen or (sse and sse[0].data.strip() == "[DONE]"):
                if not self._drained_now():
                    break
                if not self._last_seen:
                    sse.popleft()
                try:
                    self._end()
                except Exception as exc:  # noqa: BLE001 - cut short: raised by the next read
                    self._failure = exc
                continue
            if not sse:
                break
            data = sse[0].data.strip()
            sse.popleft()
            if not data:
                continue
            try:
                obj = decode_json(data)
                pending.extend(self._parse(obj))
                self._last_seen = bool(self._is_last(obj))
            except Exception as exc:  # noqa: BLE001 - raised by the next read, labelled there
                self._failure = exc
        return out

    def _drained_now(self) -> bool:
        """Read the rest of the body if it is all here already (no I/O): whether it was."""
        take = getattr(self._response, "receive_nowait", None)
        if take is None:
            return False
        try:
            for _ in range(64):  # a tail is a few bytes; a long one is left to the read path
                piece = take()
                if piece is None:
                    return False
                if not piece:
                    return True
        except Exception:  # noqa: BLE001 - the answer is complete; a messy tail does not matter
            return True
        return False

    @property
    def exhausted(self) -> bool:
        """Ended, and every event taken (the next read ends without I/O)."""
        return self._ended and not self._pending and self._failure is None

    @property
    def released(self) -> bool:
        """The whole body was read: the connection is back in the pool (closing is bookkeeping)."""
        return self._response.complete

    async def __anext__(self) -> StreamEvent:
        while not self._pending:
            if self._ended and self._failure is None:
                raise StopAsyncIteration
            try:
                if self._failure is not None:
                    failure, self._failure = self._failure, None
                    raise failure
                if self._last_seen:
                    await self._drain()
                    self._end()
                    continue
                await self._step()
            except ProviderError as err:
                self._ended = True
                raise self._label(err) from None
            except Exception as exc:  # client, SSE and JSON failures (trio.Cancelled is not an Exception)
                self._ended = True
                raise self._label(map_exception(exc, self._idle_s, self._url)) from exc
        return self._pending.popleft()

    async def _next_sse(self) -> SSEEvent | None:
        """The next server-sent event, or ``None`` at the end of the body."""
        while not self._sse:
            chunk = await self._response.receive()
            if not chunk:
                self._decoder.end()
                return None
            self._sse.extend(self._decoder.feed(chunk))
        return self._sse.popleft()

    async def _step(self) -> None:
        sse = await self._next_sse()
        if sse is None:
            self._end()
            return
        data = sse.data.strip()
        if data == "[DONE]":
            await self._drain()
            self._end()
            return
        if not data:
            return
        obj = decode_json(data)
        self._pending.extend(self._parse(obj))
        if self._is_last(obj):
            await self._drain()
            self._end()

    def _end(self) -> None:
        self._ended = True
        self._pending.extend(self._finish())

    async def _drain(self) -> None:
        """Read the (tiny) rest of the body so the connection goes back to the pool."""
        with trio.move_on_after(DRAIN_S):
            try:
                while await self._response.receive():
                    pass
            except Exception:  # noqa: BLE001 - the answer is complete; a messy tail does not matter
                return

    async def aclose(self) -> None:
        """Nothing to stop: the response is closed by its owner."""
        self._sse.clear()


class ListEvents:
    """Async iterator over events already in hand (non-streamed answers, the offline provider),
    with a checkpoint before each so that a cancel scope takes effect between events."""

    def __init__(self, events: list[StreamEvent]) -> None:
        self._events = deque(events)

    def __aiter__(self) -> ListEvents:
        return self

    async def __anext__(self) -> StreamEvent:
        await trio.lowlevel.checkpoint()
        if not self._events:
            raise StopAsyncIteration
        return self._events.popleft()

    def ready(self, limit: int) -> list[StreamEvent]:
        """Up to ``limit`` of the events (all in hand)."""
        events = self._events
        return [events.popleft() for _ in range(min(limit, len(events)))]

    @property
    def exhausted(self) -> bool:
        return not self._events

    @property
    def released(self) -> bool:
        """Nothing of a connection is held (the answer was read whole, or there was none)."""
        return True

    async def aclose(self) -> None:
        self._events.clear()
