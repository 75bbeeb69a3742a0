"""A blocking WebSocket client over a raw socket, for probing a gateway the way an attacker would.

Unlike the trio-websocket client of ``gateway_proc``, this one sets any ``Host`` and ``Origin``
header, any extra header (``X-Forwarded-For``...), any source address (127.0.0.2...), and can send
hand-made frames (bad UTF-8, reserved opcodes). Every call is bounded by ``timeout`` and talks
only to the loopback address it is given. Works against our gateway and the published one alike.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

ADMIN = ["operator.read", "operator.write", "operator.admin"]


def connect_frame(
    token: str | None = "T",
    *,
    client_id: str = "cli",
    mode: str = "cli",
    scopes: list[str] | None = None,
    rid: str = "c1",
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": {"id": client_id, "version": "1", "platform": "linux", "mode": mode},
        "scopes": list(ADMIN if scopes is None else scopes),
    }
    if token is not None:
        params["auth"] = {"token": token}
    return {"type": "req", "id": rid, "method": "connect", "params": params}


def frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    """One client frame, built by hand (so it can be wrong on purpose)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def text_frame(obj: Any) -> bytes:
    return frame(1, (obj if isinstance(obj, str) else json.dumps(obj)).encode())


@dataclass
class Outcome:
    """What one session saw: the HTTP status, the frames, the close."""

    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    frames: list[dict[str, Any]] = field(default_factory=list)
    close: tuple[int, str] | None = None
    eof: bool = False

    def response(self, rid: str) -> dict[str, Any] | None:
        return next((f for f in self.frames if f.get("type") == "res" and f.get("id") == rid), None)

    @property
    def hello(self) -> dict[str, Any] | None:
        res = self.response("c1")
        return res["payload"] if res and res.get("ok") else None

    @property
    def connect_error(self) -> dict[str, Any] | None:
        res = self.response("c1")
        return res["error"] if res and not res.get("ok") else None


def session(
    port: int,
    *,
    host: str | None = None,
    origin: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    connect: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any] | str] | None = None,
    after: Iterable[bytes] = (),
    before_connect: Iterable[bytes] = (),
    until: Callable[[Outcome], bool] | None = None,
    timeout: float = 5.0,
    source: str | None = None,
) -> Outcome:
    """Open a WebSocket to 127.0.0.1:``port``, answer the challenge with ``connect`` (if given),
    send the ``after`` frames once hello-ok (or the refusal) arrives, and read until the server
    closes, ``until(outcome)`` holds, or ``timeout`` passes."""
    out = Outcome()
    extra = list(headers)
    if origin is not None:
        extra.append(("Origin", origin))
    ws = WSConnection(ConnectionType.CLIENT)
    deadline = time.monotonic() + timeout
    with socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
    ) as sock:
        sock.sendall(ws.send(Request(host=host or f"127.0.0.1:{port}", target="/", extra_headers=extra)))
        sent_after = False
        parts: list[str] = []
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(1 << 20)
            except TimeoutError:
                break
            except OSError:
                out.eof = True
                break
            ws.receive_data(data or None)
            for ev in ws.events():
                if isinstance(ev, AcceptConnection):
                    out.status = 101
                elif isinstance(ev, RejectConnection):
                    out.status = ev.status_code
                    out.headers = {k.decode().lower(): v.decode() for k, v in ev.headers}
                elif isinstance(ev, RejectData):
                    out.body += ev.data
                elif isinstance(ev, (TextMessage, BytesMessage)):
                    parts.append(ev.data if isinstance(ev.data, str) else bytes(ev.data).decode("utf-8", "replace"))
                    if not ev.message_finished:
                        continue
                    fr = json.loads("".join(parts))
                    parts.clear()
                    out.frames.append(fr)
                    if fr.get("event") == "connect.challenge":
                        for raw in before_connect:
                            sock.sendall(raw)
                        if connect is not None:
                            first = connect(fr) if callable(connect) else connect
                            sock.sendall(ws.send(Message(data=first if isinstance(first, str) else json.dumps(first))))
                    elif fr.get("type") == "res" and fr.get("id") == "c1" and not sent_after:
                        sent_after = True
                        for raw in after:
                            sock.sendall(raw)
                elif isinstance(ev, CloseConnection):
                    out.close = (int(ev.code), ev.reason or "")
                    try:
                        sock.sendall(ws.send(ev.response()))
                    except Exception:  # noqa: BLE001 - the peer may be gone already
                        pass
                    return out
                elif isinstance(ev, Ping):
                    sock.sendall(ws.send(ev.response()))
            if not data:
                out.eof = True
                break
            if until is not None and until(out):
                break
    return out


def device_connect(seed: bytes, scopes: list[str] | None = None) -> Callable[[dict[str, Any]], str]:
    """A ``connect`` (for :func:`session`) signed with the device key from ``seed``, answering the
    challenge it is given; built by the core's client side, as the real CLI builds it."""
    from gateway_core import ClientConnection, ClientInfo, ConnectAuth, ConnectParams, DeviceKey, SendText

    def build(challenge: dict[str, Any]) -> str:
        params = ConnectParams(
            min_protocol=4,
            max_protocol=4,
            client=ClientInfo(id="cli", version="1", platform="linux", mode="cli"),
            scopes=list(scopes if scopes is not None else ["operator.read"]),
            auth=ConnectAuth(token="T0123"),
        )
        conn = ClientConnection(params, connect_id="c1", now=0.0, device_key=DeviceKey.from_seed(seed))
        conn.receive_text(json.dumps(challenge), now=0.0, wall_ms=time.time_ns() // 1_000_000)
        (frame,) = [a for a in conn.actions() if isinstance(a, SendText)]
        return frame.text

    return build


def raw_http(port: int, request: bytes, *, timeout: float = 3.0) -> bytes:
    """Send ``request`` as is and return everything the server sends until it closes (bounded)."""
    got = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except (TimeoutError, OSError):
                break
            if not data:
                break
            got += data
    return got


def wait_admitting(port: int, token: str, timeout: float = 120.0) -> None:
    """Until a connect gets hello-ok (the published gateway says "starting" for a while)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            out = session(port, connect=connect_frame(token), until=lambda o: o.response("c1") is not None, timeout=5)
            if out.hello is not None:
                return
            last = out.connect_error or out.close
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"gateway on port {port} not admitting within {timeout}s: {last}")
