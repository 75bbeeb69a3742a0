"""The client's side of a gateway connection (what the CLI and probes speak), sans-IO.

Theory of operation
-------------------
A :class:`ClientConnection` waits for ``connect.challenge``; on it, it queues the ``connect``
request (signing a device proof over the challenge nonce when it has a :class:`DeviceKey`). The
hello-ok response moves it to OPEN; from then on ``request()`` queues requests, responses are
matched to them by id (a two-stage ``agent`` call first yields a non-final ``accepted`` response
when ``expect_final`` was asked), and broadcast events are checked for ``seq`` gaps, which are
reported as :class:`SequenceGap` events and never raised.

Deadlines: the connect must complete within ``connect_timeout_ms`` of creation (close 1008
``connect failed``), and after hello-ok anything from the server must arrive at least every
2 x ``tickIntervalMs`` (close 4000 ``tick timeout``), as the reference client does (§9.3).
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec
from msgspec import UNSET

from . import constants as C
from ._deadlines import Deadline, Deadlines
from .device import DeviceKey, proof_token
from .errors import LocalProtocolError
from .events import (
    Action,
    ChallengeReceived,
    CloseTransport,
    ConnectFailed,
    ConnectionTerminated,
    Event,
    EventReceived,
    HelloReceived,
    ProtocolViolation,
    ResponseReceived,
    SendText,
    SequenceGap,
    Terminate,
)
from .frames import ConnectParams, ErrorShape, EventFrame, RequestFrame, ResponseFrame, decode_frame, encode_bytes

#: A server may announce any tickIntervalMs; the watchdog never waits more than a day.
MAX_TICK_INTERVAL_MS = 24 * 3600 * 1000


class ClientState(enum.Enum):
    """Client connection states."""

    AWAITING_CHALLENGE = "awaiting-challenge"
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class ClientConnection:
    """One connection to a gateway, from the client's side (see the module docstring)."""

    def __init__(
        self,
        params: ConnectParams,
        *,
        connect_id: str,
        now: float,
        device_key: DeviceKey | None = None,
        connect_timeout_ms: int = C.DEFAULT_HANDSHAKE_TIMEOUT_MS,
        close_grace_ms: int = C.CLOSE_GRACE_MS,
    ) -> None:
        self.params = params
        self.connect_id = connect_id
        self.device_key = device_key
        self.state = ClientState.AWAITING_CHALLENGE
        self.hello: dict[str, Any] | None = None
        self.tick_interval_ms = C.TICK_INTERVAL_MS
        self.last_seq: int | None = None
        self._close_grace_ms = close_grace_ms
        self._actions: list[Action] = []
        self._events: list[Event] = []
        self._deadlines = Deadlines()
        self._pending: dict[str, bool] = {}  # request id → expect_final
        self._close_code: int | None = None
        self._close_reason = ""
        self._deadlines.arm(Deadline.HANDSHAKE, now + connect_timeout_ms / 1000)

    # ------------------------------------------------------------------ draining

    def actions(self) -> list[Action]:
        out, self._actions = self._actions, []
        return out

    def events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        return self._deadlines.next()

    @property
    def pending_request_ids(self) -> tuple[str, ...]:
        return tuple(self._pending)

    # ------------------------------------------------------------------ inputs

    def receive_text(self, text: str | bytes, *, now: float, wall_ms: int) -> None:
        """One message from the gateway."""
        if self.state in (ClientState.CLOSING, ClientState.CLOSED):
            return
        try:
            frame = decode_frame(text)
        except (msgspec.DecodeError, RecursionError) as exc:
            self._events.append(ProtocolViolation(f"unparsable frame from server: {exc}"))
            return
        if self.state is ClientState.OPEN:
            self._deadlines.arm(
                Deadline.TICK_WATCHDOG, now + C.CLIENT_TICK_TIMEOUT_FACTOR * self.tick_interval_ms / 1000
            )
        if isinstance(frame, EventFrame):
            self._on_event(frame, now, wall_ms)
        elif isinstance(frame, ResponseFrame):
            self._on_response(frame, now)
        else:
            self._events.append(ProtocolViolation("server sent a request frame"))

    def receive_closed(self, code: int | None, reason: str = "", *, now: float) -> None:
        """The transport closed (the server's close frame or a dropped socket)."""
        if self.state is ClientState.CLOSED:
            return
        by_peer = self.state is not ClientState.CLOSING
        if by_peer:
            self._close_code = C.CLOSE_ABNORMAL if code is None else code
            self._close_reason = reason
        self._finish(by_peer)

    def handle_timer(self, *, now: float, wall_ms: int = 0) -> None:
        """Fire due deadlines: connect timeout, tick watchdog, close grace."""
        for name, _at in self._deadlines.due(now):
            if name is Deadline.HANDSHAKE and self.state in (ClientState.AWAITING_CHALLENGE, ClientState.CONNECTING):
                self.close(C.CLOSE_POLICY_VIOLATION, "connect failed", now=now)
            elif name is Deadline.TICK_WATCHDOG and self.state is ClientState.OPEN:
                self.close(C.CLOSE_TICK_TIMEOUT, "tick timeout", now=now)
            elif name is Deadline.CLOSE_GRACE and self.state is ClientState.CLOSING:
                self._actions.append(Terminate())
                self._finish(by_peer=False)

    # ------------------------------------------------------------------ decisions

    def request(self, method: str, params: Any = UNSET, *, request_id: str, expect_final: bool = False) -> None:
        """Queue a request. With ``expect_final`` a two-stage ``accepted`` ack is not final."""
        if self.state is not ClientState.OPEN:
            raise LocalProtocolError(f"request() in state {self.state.value}")
        if request_id in self._pending:
            raise LocalProtocolError(f"request id {request_id!r} is already pending")
        self._pending[request_id] = expect_final
        self._actions.append(SendText(encode_bytes(RequestFrame(id=request_id, method=method, params=params))))

    def close(self, code: int = C.CLOSE_NORMAL, reason: str = "", *, now: float) -> None:
        """Start closing from our side."""
        if self.state in (ClientState.CLOSING, ClientState.CLOSED):
            return
        self._close_code, self._close_reason = code, reason
        self._actions.append(CloseTransport(code, reason))
        self.state = ClientState.CLOSING
        self._deadlines.clear()
        self._deadlines.arm(Deadline.CLOSE_GRACE, now + self._close_grace_ms / 1000)

    # ------------------------------------------------------------------ internals

    def _finish(self, by_peer: bool) -> None:
        self.state = ClientState.CLOSED
        self._deadlines.clear()
        pending = tuple(self._pending)
        self._pending.clear()
        self._events.append(
            ConnectionTerminated(
                code=self._close_code if self._close_code is not None else C.CLOSE_ABNORMAL,
                reason=self._close_reason,
                pending_request_ids=pending,
                by_peer=by_peer,
            )
        )

    def _on_event(self, frame: EventFrame, now: float, wall_ms: int) -> None:
        payload = frame.payload if frame.payload is not UNSET else None
        if self.state is ClientState.AWAITING_CHALLENGE:
            if frame.event != "connect.challenge":
                return
            nonce = payload.get("nonce") if isinstance(payload, dict) else None
            ts = payload.get("ts") if isinstance(payload, dict) else None
            if not isinstance(nonce, str) or not nonce or not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
                self._events.append(ProtocolViolation("connect.challenge without a usable nonce/ts"))
                self.close(C.CLOSE_POLICY_VIOLATION, "connect failed", now=now)
                return
            self._events.append(ChallengeReceived(nonce, ts))
            self._send_connect(nonce, ts)
            return
        seq = frame.seq if frame.seq is not UNSET else None
        if seq is not None:
            if self.last_seq is not None and seq != self.last_seq + 1:
                self._events.append(SequenceGap(expected=self.last_seq + 1, received=seq))
            if self.last_seq is None or seq > self.last_seq:
                self.last_seq = seq
        sv = frame.state_version
        self._events.append(
            EventReceived(
                frame.event,
                payload,
                seq,
                {"presence": sv.presence, "health": sv.health} if sv is not UNSET else None,
            )
        )

    def _send_connect(self, nonce: str, ts: int) -> None:
        params = self.params
        if self.device_key is not None:
            auth = params.auth if params.auth is not UNSET else None
            proof = self.device_key.proof(
                nonce=nonce,
                signed_at=ts,
                client_id=params.client.id,
                client_mode=params.client.mode,
                role=params.role if params.role is not UNSET else "operator",
                scopes=list(params.scopes) if params.scopes is not UNSET else [],
                token=proof_token(auth),
                platform=params.client.platform,
                device_family=params.client.device_family if params.client.device_family is not UNSET else None,
            )
            params = msgspec.structs.replace(params, device=proof)
        self.state = ClientState.CONNECTING
        self._actions.append(SendText(encode_bytes(RequestFrame(id=self.connect_id, method="connect", params=params))))

    def _on_response(self, frame: ResponseFrame, now: float) -> None:
        err: ErrorShape | None = frame.error if frame.error is not UNSET else None
        payload = frame.payload if frame.payload is not UNSET else None
        if self.state is ClientState.CONNECTING and frame.id == self.connect_id:
            if frame.ok and isinstance(payload, dict) and payload.get("type") == "hello-ok":
                self.hello = payload
                policy = payload.get("policy")
                interval = policy.get("tickIntervalMs") if isinstance(policy, dict) else None
                if isinstance(interval, int) and not isinstance(interval, bool):
                    self.tick_interval_ms = min(max(1, interval), MAX_TICK_INTERVAL_MS)
                self.state = ClientState.OPEN
                self._deadlines.cancel(Deadline.HANDSHAKE)
                self._deadlines.arm(
                    Deadline.TICK_WATCHDOG, now + C.CLIENT_TICK_TIMEOUT_FACTOR * self.tick_interval_ms / 1000
                )
                self._events.append(HelloReceived(payload))
            elif err is not None:
                self._events.append(ConnectFailed(err))
            else:
                self._events.append(ProtocolViolation("connect answered without hello-ok or error"))
            return
        if frame.id not in self._pending:
            self._events.append(ProtocolViolation(f"response for unknown request id {frame.id!r}"))
            return
        expect_final = self._pending[frame.id]
        final = True
        if expect_final and frame.ok and isinstance(payload, dict) and payload.get("status") == "accepted":
            final = False
        if final:
            del self._pending[frame.id]
        self._events.append(ResponseReceived(frame.id, frame.ok, payload, err, final))


__all__ = ["ClientConnection", "ClientState"]
