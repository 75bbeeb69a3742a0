"""A one-shot RPC client for the CLI: connect, call one method, close (trio-websocket + the core's
ClientConnection, so the handshake rules live in one place)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from msgspec import UNSET
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from gateway_core import ClientConnection, ConnectAuth, ConnectParams, SendText
from gateway_core.events import ConnectFailed, ConnectionTerminated, EventReceived, HelloReceived, ResponseReceived
from gateway_core.frames import ClientInfo

from . import _runtime


class RpcError(Exception):
    """The call failed: ``kind`` is transport|connect|request; ``code`` the gateway's error code."""

    def __init__(self, kind: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code


async def call(
    url: str,
    method: str | None,
    params: Any = None,
    *,
    expect_final: bool = False,
    token: str | None = None,
    password: str | None = None,
    scopes: list[str] | None = None,
    timeout: float = 30.0,
    version: str = "0.1.0",
) -> Any:
    """Call ``method`` on the gateway at ``url`` and return the final payload (raises RpcError).

    With ``method=None`` only the handshake runs and the hello-ok payload is returned.
    """
    calls = [] if method is None else [(method, params)]
    hello, results = await exchange(
        url,
        calls,
        token=token,
        password=password,
        scopes=scopes,
        timeout=timeout,
        version=version,
        expect_final=expect_final,
    )
    if method is None:
        return hello
    ok, payload, err = results[0]
    if not ok:
        raise RpcError("request", err["message"] if err else "request failed", err["code"] if err else None)
    return payload


def _why(exc: BaseException, url: str) -> str:
    """A short cause: ``connect ECONNREFUSED 127.0.0.1:18789`` style when the chain shows one."""
    seen: BaseException | None = exc
    while seen is not None:
        if (
            isinstance(seen, ConnectionRefusedError)
            or "Connection refused" in str(seen)
            or "all attempts to connect" in str(seen)
        ):
            return f"connect ECONNREFUSED {url.split('://', 1)[-1].rstrip('/')}"
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


async def exchange(
    url: str,
    calls: list[tuple[str, Any]],
    *,
    token: str | None = None,
    password: str | None = None,
    scopes: list[str] | None = None,
    timeout: float = 30.0,
    version: str = "0.1.0",
    expect_final: bool = False,
    on_event: Callable[[str, Any], None] | None = None,
    on_response: Callable[[str, bool, Any], None] | None = None,
) -> tuple[dict[str, Any], list[tuple[bool, Any, Any]]]:
    """Handshake, then send every ``(method, params)`` at once; returns the hello and, per call,
    ``(ok, payload, error)`` with ``error`` as ``{"code","message","details"}`` (raises RpcError for
    transport and connect failures). ``on_event(name, payload)`` sees every event meanwhile, and
    ``on_response(request_id, ok, payload)`` every non-final answer (a two-stage ``accepted``)."""
    results: dict[str, tuple[bool, Any, Any]] = {}
    hello: dict[str, Any] = {}
    auth = ConnectAuth(token=token or UNSET, password=password or UNSET) if (token or password) else UNSET
    connect = ConnectParams(
        min_protocol=4,
        max_protocol=4,
        client=ClientInfo(id="cli", version=version, platform="linux", mode="cli"),
        role="operator",
        scopes=scopes or ["operator.read"],
        auth=auth,
    )
    core = ClientConnection(connect, connect_id="connect", now=_runtime.now())
    try:
        with trio.fail_after(timeout):
            async with open_websocket_url(url) as ws:
                while True:
                    for action in core.actions():
                        if isinstance(action, SendText):
                            await ws.send_message(action.text)
                    for event in core.events():
                        if isinstance(event, HelloReceived):
                            hello = event.hello
                            for i, (method, params) in enumerate(calls):
                                core.request(
                                    method,
                                    params if params is not None else {},
                                    request_id=str(i),
                                    expect_final=expect_final,
                                )
                        elif isinstance(event, ConnectFailed):
                            raise RpcError("connect", event.error.message, event.error.code)
                        elif isinstance(event, EventReceived) and on_event is not None:
                            on_event(event.event, event.payload)
                        elif isinstance(event, ResponseReceived) and not event.final and on_response is not None:
                            on_response(event.request_id, event.ok, event.payload)
                        elif isinstance(event, ResponseReceived) and event.final:
                            err = event.error
                            results[event.request_id] = (
                                event.ok,
                                event.payload,
                                None
                                if err is None
                                else {
                                    "code": err.code,
                                    "message": err.message,
                                    "details": err.details if err.details is not UNSET else None,
                                },
                            )
                        elif isinstance(event, ConnectionTerminated):
                            raise RpcError("transport", f"connection closed ({event.code} {event.reason})")
                    if hello and len(results) == len(calls):
                        return hello, [results[str(i)] for i in range(len(calls))]
                    for action in core.actions():
                        if isinstance(action, SendText):
                            await ws.send_message(action.text)
                    try:
                        message = await ws.get_message()
                    except ConnectionClosed as exc:
                        core.receive_closed(exc.reason.code, exc.reason.reason or "", now=_runtime.now())
                        continue
                    core.receive_text(message, now=_runtime.now(), wall_ms=_runtime.wall_ms())
    except trio.TooSlowError:
        raise RpcError("transport", f"no answer from {url} within {timeout:.0f}s") from None
    except (HandshakeError, OSError) as exc:
        raise RpcError("transport", f"Gateway not reachable at {url} ({_why(exc, url)})") from None


def call_sync(url: str, method: str | None, params: Any = None, **kw: Any) -> Any:
    """:func:`call` from synchronous code."""
    return trio.run(lambda: call(url, method, params, **kw))


__all__ = ["RpcError", "call", "call_sync", "exchange"]
