"""The HTTP plumbing every network adapter shares: a pooled httpx client, timeouts, error mapping.

httpx is imported lazily (inside functions) so that importing the gateway does not pay for it;
it runs under Trio through anyio. ``trust_env=False``: proxy variables in the environment are not
applied to model calls (Node's fetch, which the published gateway uses, ignores them too).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from gateway_core.providers.errors import (
    CONFIG,
    NETWORK,
    PROTOCOL,
    ProviderError,
    error_from_http,
    idle_timeout_error,
)
from gateway_core.providers.types import StreamEvent

from .._runtime import wall_ms

if TYPE_CHECKING:
    import httpx

#: Most bytes read from an error answer (the rest is dropped; bodies can be HTML pages).
MAX_ERROR_BODY = 64 * 1024
#: Most bytes read from a non-streamed JSON answer.
MAX_JSON_BODY = 32 * 1024 * 1024
#: Longest a connect may take, whatever the idle timeout.
MAX_CONNECT_S = 30.0
#: How long the tail after ``[DONE]`` may take to arrive (read so the connection can be reused).
DRAIN_S = 1.0
USER_AGENT = "openclaw-gateway-py"


def new_client() -> httpx.AsyncClient:
    """One pooled client (keep-alive) for one provider configuration."""
    import httpx

    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=32, keepalive_expiry=60.0),
        trust_env=False,
        follow_redirects=False,
        headers={"user-agent": USER_AGENT},
    )


def timeout(idle_s: float) -> httpx.Timeout:
    """``idle_s`` as httpx's per-read (and write, pool) timeout: no bytes for that long fails."""
    import httpx

    idle = max(0.001, float(idle_s))
    return httpx.Timeout(idle, connect=min(idle, MAX_CONNECT_S))


def map_exception(exc: BaseException, idle_s: float, url: str) -> ProviderError:
    """An httpx (or SSE, JSON) failure as a :class:`ProviderError`."""
    import httpx
    import httpx_sse

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, httpx.ConnectTimeout):
        return ProviderError(NETWORK, f"connect timeout reaching {url}")
    if isinstance(exc, httpx.TimeoutException):
        return idle_timeout_error(idle_s)
    if isinstance(exc, httpx.ConnectError):
        return ProviderError(NETWORK, f"cannot connect to {url}: {exc}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProviderError(NETWORK, f"connection to the model provider dropped: {exc}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ProviderError(CONFIG, f"bad provider baseUrl {url!r}: {exc}")
    if isinstance(exc, httpx.NetworkError):
        return ProviderError(NETWORK, f"network error talking to {url}: {exc}")
    if isinstance(exc, httpx_sse.SSEError | httpx.DecodingError | httpx.ProtocolError | ValueError):
        return ProviderError(PROTOCOL, f"unreadable answer from {url}: {exc}")
    return ProviderError(NETWORK, f"{type(exc).__name__}: {exc}")


async def read_bounded(response: httpx.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body (the rest is left unread)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


async def raise_for_status(response: httpx.Response) -> None:
    """Raise the parsed :class:`ProviderError` for a non-2xx answer."""
    if 200 <= response.status_code < 300:
        return
    body = await read_bounded(response, MAX_ERROR_BODY)
    headers = {k.lower(): v for k, v in response.headers.items()}
    raise error_from_http(response.status_code, headers, body, now_epoch=wall_ms() / 1000.0,
                          reason=response.reason_phrase)


def is_json(response: httpx.Response) -> bool:
    """Whether the answer is a whole JSON document rather than an event stream."""
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower() == "application/json"


async def read_json(response: httpx.Response) -> Any:
    """A non-streamed JSON answer, bounded."""
    body = await read_bounded(response, MAX_JSON_BODY)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ProviderError(PROTOCOL, f"the model provider sent invalid JSON: {exc}") from exc


class SSEEvents:
    """Async iterator of :data:`StreamEvent` s over one SSE response.

    ``parse(data_obj)`` turns one decoded ``data:`` object into events (raising
    :class:`ProviderError` for in-stream errors); ``finish()`` gives the closing events (raising
    when the stream was cut short). ``is_last(data_obj)`` marks the final event (Anthropic's
    ``message_stop``); ``[DONE]`` always ends the stream. Every read is bounded by the idle
    timeout (httpx's read timeout), and failures come out as :class:`ProviderError`.
    """

    def __init__(
        self,
        response: httpx.Response,
        *,
        parse: Callable[[Any], list[StreamEvent]],
        finish: Callable[[], list[StreamEvent]],
        is_last: Callable[[Any], bool],
        idle_s: float,
        url: str,
        label: Callable[[ProviderError], ProviderError],
    ) -> None:
        import httpx_sse

        self._sse = httpx_sse.EventSource(response).aiter_sse()
        self._parse, self._finish, self._is_last = parse, finish, is_last
        self._idle_s, self._url, self._label = idle_s, url, label
        self._pending: deque[StreamEvent] = deque()
        self._ended = False

    def __aiter__(self) -> SSEEvents:
        return self

    async def __anext__(self) -> StreamEvent:
        while not self._pending:
            if self._ended:
                raise StopAsyncIteration
            try:
                await self._step()
            except ProviderError as err:
                self._ended = True
                raise self._label(err) from None
            except Exception as exc:  # httpx, SSE and JSON failures (trio.Cancelled is not an Exception)
                self._ended = True
                raise self._label(map_exception(exc, self._idle_s, self._url)) from exc
        return self._pending.popleft()

    async def _step(self) -> None:
        try:
            sse = await self._sse.__anext__()
        except StopAsyncIteration:
            self._end()
            return
        data = sse.data
        if data.strip() == "[DONE]":
            await self._drain()
            self._end()
            return
        if not data.strip():
            return
        obj = json.loads(data)
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
                async for _ in self._sse:
                    pass
            except Exception:  # noqa: BLE001 - the answer is complete; a messy tail does not matter
                return

    async def aclose(self) -> None:
        """Stop the SSE reader (the response itself is closed by its owner)."""
        try:
            await self._sse.aclose()
        except Exception:  # noqa: BLE001 - closing a reader that already failed
            pass


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

    async def aclose(self) -> None:
        self._events.clear()
