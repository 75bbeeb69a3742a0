"""The gateway's side of one WebSocket connection, as a sans-IO state machine.

Theory of operation
-------------------
A :class:`ServerConnection` is created when the socket opens. It immediately queues the
``connect.challenge`` event and arms the handshake deadline. Inputs then come only from its single
owner (the shell's per-connection task):

* ``receive_text`` / ``receive_bytes``: one complete WebSocket message;
* ``receive_pong`` / ``receive_closed``: transport facts;
* ``handle_timer(now, wall_ms)``: whenever ``next_deadline()`` has passed;
* application decisions: ``accept``, ``respond``, ``respond_error``, ``publish`` (``publish_encoded``
  for a fan-out: the frame is handed back rather than queued), ``close``,
  ``begin_shutdown``.

Outputs are drained with ``actions()`` (for the transport) and ``events()`` (for the application).

States (``ConnState``)::

    AWAITING_CONNECT --connect ok--> AUTHENTICATING --accept()--> OPEN
          |                               |                        |
          +----------- any refusal, timeout, shutdown, close() ---+--> CLOSING --> CLOSED

Rule 1: the first frame is judged by protocol.md §3.2 rows 1-6 here, then rows 7-14 (admission,
protocol range, role, origin, device proof, shared secret, pairing) by
:class:`~gateway_core.handshake.Handshake`. A refusal queues the error response *before* the
close, as the published gateway does.
Rule 2: while AUTHENTICATING (the app has not accepted yet, or a failed-auth answer is being held
back by the loopback penalty) further frames are queued, at most 15; the 16th closes 1008.
Rule 3: after ``accept`` the queued frames are replayed in order, as if they had just arrived.
Rule 4: in OPEN every request is validated and authorized (§9.2, §7.3) by
:func:`~gateway_core.request_gate.judge`; only authorized, valid requests reach the application
as :class:`RequestReceived`.
Rule 5: once a close is queued the connection ignores all input; CLOSED is final.

Contract: nothing the peer sends makes these methods raise. Misuse by the application (responding
to an unknown id, accepting twice) raises :class:`LocalProtocolError`.
"""

from __future__ import annotations

import enum
import functools
from collections import Counter
from typing import Any, Final

import msgspec
from msgspec import UNSET, Struct

from . import broadcast, request_gate
from . import constants as C
from . import scopes as S
from ._deadlines import Deadline, Deadlines
from .errors import (
    LocalProtocolError,
    RemoteProtocolError,
    invalid_request,
    unavailable,
)
from .events import (
    Action,
    CloseTransport,
    ConnectionTerminated,
    Event,
    FrameIgnored,
    HandshakeAuthenticated,
    HandshakeFailed,
    PairingRequested,
    PongReceived,
    Principal,
    RequestReceived,
    SendPing,
    SendText,
    Terminate,
)
from .frames import (
    Attachments,
    ChallengePayload,
    ConnectParams,
    ErrorShape,
    EventFrame,
    Features,
    HelloAuth,
    HelloOk,
    HelloPolicy,
    JsonTooDeep,
    RequestFrame,
    ResponseFrame,
    ServerInfo,
    ShutdownPayload,
    Snapshot,
    StateVersion,
    TickPayload,
    decode_json_lenient,
    encode_bytes,
    has_lone_surrogate,
    may_have_lone_surrogate,
)
from .handshake import Handshake, HeldRefusal
from .methods import EVENTS, advertised_methods
from .services import GatewayServices
from .validation import SchemaError, convert

#: The connect answer when the gateway cannot save what admitting the client needs (a full or
#: read-only state dir): the cause is in the gateway's log, never on the wire.
STORAGE_UNAVAILABLE: Final = unavailable(
    "gateway storage unavailable; retry later", {"reason": "storage-unavailable"}, retryable=True, retry_after_ms=5000
)



class ConnState(enum.Enum):
    """Connection states (see the module docstring)."""

    AWAITING_CONNECT = "awaiting-connect"
    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class PublishResult(enum.Enum):
    """What :meth:`ServerConnection.publish` did with one broadcast."""

    SENT = "sent"
    FILTERED = "filtered"  # not eligible (scope, role, state): no seq consumed
    DROPPED = "dropped"  # eligible but the client is slow and the event is droppable: seq gap
    CLOSED = "closed"  # eligible, not droppable, client slow: closed 1008 slow consumer


class PeerInfo(Struct, frozen=True, kw_only=True):
    """Transport facts about the peer, from the HTTP upgrade request."""

    client_ip: str = "127.0.0.1"
    is_loopback: bool = True
    #: Forwarding headers (X-Forwarded-*, X-Real-IP, Tailscale) were present.
    forwarded: bool = False
    origin: str | None = None
    host: str | None = None

    @property
    def local(self) -> bool:
        """``direct_local`` locality: loopback peer without forwarding headers (§6.2)."""
        return self.is_loopback and not self.forwarded

    @property
    def browser_origin(self) -> str | None:
        """The ``Origin`` header when one was sent (an empty value counts as none): a browser client."""
        origin = (self.origin or "").strip()
        return origin or None


class ServerPolicy(Struct, frozen=True, kw_only=True):
    """Per-gateway settings every connection shares. Times are milliseconds."""

    server_version: str = "0.1.0"
    build_id: str | None = None
    boot_id: str | None = None
    handshake_timeout_ms: int = C.DEFAULT_HANDSHAKE_TIMEOUT_MS
    tick_interval_ms: int = C.TICK_INTERVAL_MS
    #: Tick from the connection's own timer; a shell with a central ticker turns this off.
    auto_tick: bool = True
    #: Server pings every interval; ``None`` disables keepalive.
    keepalive_interval_ms: int | None = C.KEEPALIVE_INTERVAL_MS
    close_grace_ms: int = C.CLOSE_GRACE_MS
    max_preauth_payload_bytes: int = C.MAX_PREAUTH_PAYLOAD_BYTES
    max_payload_bytes: int = C.MAX_PAYLOAD_BYTES
    max_buffered_bytes: int = C.MAX_BUFFERED_BYTES
    max_pending_handshake_frames: int = C.MAX_PENDING_HANDSHAKE_FRAMES
    #: Method names this gateway implements (advertised in hello-ok); ``None`` = the whole catalogue.
    implemented_methods: frozenset[str] | None = None
    #: Extra method names (e.g. plugins) accepted besides the catalogue; they need admin.
    extra_methods: frozenset[str] = frozenset()
    capabilities: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    #: ``gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback``.
    host_header_origin_fallback: bool = False
    #: The port the gateway serves on (a loopback browser origin must name it); ``None`` = any.
    port: int | None = None
    #: Requests of one connection in flight at once; the next is answered "server is busy" (§7.3).
    max_inflight_requests: int = C.MAX_INFLIGHT_REQUESTS
    auto_approve_local_pairing: bool = True
    attachments_max_bytes: int = C.ATTACHMENT_MAX_BYTES

    def advertised(self) -> list[str]:
        """``features.methods`` for this policy (computed once per distinct method set)."""
        return list(_advertised(self.implemented_methods, self.extra_methods))


@functools.lru_cache(maxsize=16)
def _advertised(implemented: frozenset[str] | None, extra: frozenset[str]) -> tuple[str, ...]:
    return tuple(advertised_methods(implemented) + sorted(extra))


def truncate_reason(reason: str, limit: int = C.MAX_CLOSE_REASON_BYTES) -> str:
    """Cut a close reason to ``limit`` UTF-8 bytes without splitting a character (§1)."""
    raw = reason.encode()
    if len(raw) <= limit:
        return reason
    return raw[:limit].decode("utf-8", "ignore")


def _utf8_len_over(text: str, limit: int) -> bool:
    """Whether ``text`` encodes to more than ``limit`` bytes (cheap bounds first)."""
    n = len(text)
    if n > limit:
        return True
    if n * 4 <= limit:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def _claims_worker(obj: Any) -> bool:
    """§3.2 row 3: params claiming the closed worker role."""
    if not isinstance(obj, dict):
        return False
    params = obj.get("params")
    if not isinstance(params, dict):
        return False
    if params.get("role") == "worker":
        return True
    client = params.get("client")
    return isinstance(client, dict) and (client.get("id") == "openclaw-worker" or client.get("mode") == "worker")





class ServerConnection:
    """One client connection as the gateway sees it (see the module docstring)."""

    def __init__(
        self,
        *,
        policy: ServerPolicy,
        services: GatewayServices,
        now: float,
        wall_ms: int,
        nonce: str,
        conn_id: str,
        peer: PeerInfo | None = None,
    ) -> None:
        self.policy = policy
        self.services = services
        self.peer = peer or PeerInfo()
        self.nonce = nonce
        self.conn_id = conn_id
        self.state = ConnState.AWAITING_CONNECT
        self._now = now
        self.principal: Principal | None = None
        self._actions: list[Action] = []
        self._events: list[Event] = []
        self._deadlines = Deadlines()
        self._pending_frames: list[str] = []
        self._pending_requests: Counter[str] = Counter()
        self._inflight = 0
        self._connect_id: str | None = None
        self._held_refusal: RemoteProtocolError | None = None
        self._seq = 0
        self._kind: broadcast.RecipientKind | None = None  # looked up at the first broadcast
        self._unauthorized_streak = 0
        self._awaiting_pong = False
        self._close_code: int | None = None
        self._close_reason = ""
        self._send_event_direct(
            "connect.challenge",
            ChallengePayload(nonce=nonce, ts=wall_ms, capabilities=list(C.CHALLENGE_CAPABILITIES)),
        )
        self._deadlines.arm(Deadline.HANDSHAKE, now + policy.handshake_timeout_ms / 1000)

    # ------------------------------------------------------------------ draining

    def actions(self) -> list[Action]:
        """Take every queued transport action, in order."""
        out, self._actions = self._actions, []
        return out

    def events(self) -> list[Event]:
        """Take every queued application event, in order."""
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        """Earliest monotonic time at which ``handle_timer`` must be called, if any."""
        return self._deadlines.next()

    @property
    def max_frame_bytes(self) -> int:
        """The current inbound message limit (64 KiB before the handshake, 25 MiB after)."""
        if self.state is ConnState.OPEN:
            return self.policy.max_payload_bytes
        return self.policy.max_preauth_payload_bytes

    @property
    def seq(self) -> int:
        """The last broadcast sequence number assigned on this connection."""
        return self._seq

    @property
    def pending_request_ids(self) -> tuple[str, ...]:
        return tuple(self._pending_requests)

    @property
    def inflight(self) -> int:
        """Requests handed to the application and not finally answered yet."""
        return self._inflight

    # ------------------------------------------------------------------ transport inputs

    def receive_text(self, text: str, *, now: float, wall_ms: int) -> None:
        """One complete inbound text message."""
        self._now = max(self._now, now)
        if self.state in (ConnState.CLOSING, ConnState.CLOSED):
            return
        if _utf8_len_over(text, self.max_frame_bytes):
            self._close(C.CLOSE_MESSAGE_TOO_BIG, "", now)
            return
        self._receive(text, now, wall_ms)

    def receive_bytes(self, data: bytes, *, now: float, wall_ms: int) -> None:
        """One complete inbound binary message: decoded as UTF-8 and treated like text (§1).

        The size limit applies to the bytes received; invalid UTF-8 becomes U+FFFD, as the
        published gateway decodes it, which then fails as JSON (close 1000 before the handshake).
        """
        self._now = max(self._now, now)
        if self.state in (ConnState.CLOSING, ConnState.CLOSED):
            return
        if len(data) > self.max_frame_bytes:
            self._close(C.CLOSE_MESSAGE_TOO_BIG, "", now)
            return
        self._receive(data.decode("utf-8", "replace"), now, wall_ms)

    def _receive(self, text: str, now: float, wall_ms: int) -> None:
        if self.state is ConnState.AWAITING_CONNECT:
            self._first_frame(text, now, wall_ms)
        elif self.state is ConnState.AUTHENTICATING:
            if len(self._pending_frames) >= self.policy.max_pending_handshake_frames:
                self._close(C.CLOSE_POLICY_VIOLATION, "too many pending handshake frames", now)
                return
            self._pending_frames.append(text)
        else:
            self._request(text, now, wall_ms)

    def receive_message_too_big(self, *, now: float) -> None:
        """The transport stopped reading a message over :attr:`max_frame_bytes`."""
        if self.state not in (ConnState.CLOSING, ConnState.CLOSED):
            self._close(C.CLOSE_MESSAGE_TOO_BIG, "", now)

    def receive_pong(self, *, now: float) -> None:
        """A keepalive pong arrived."""
        self._now = max(self._now, now)
        self._awaiting_pong = False
        if self.state is ConnState.OPEN:
            self._events.append(PongReceived())

    def receive_closed(self, code: int | None, reason: str = "", *, now: float) -> None:
        """The transport is closed (peer close frame, our close completed, or the socket died)."""
        if self.state is ConnState.CLOSED:
            return
        by_peer = self.state is not ConnState.CLOSING
        if by_peer:
            self._close_code = C.CLOSE_ABNORMAL if code is None else code
            self._close_reason = reason
        self._finish(by_peer)

    def handle_timer(self, *, now: float, wall_ms: int) -> None:
        """Fire every deadline that is due at ``now``."""
        self._now = max(self._now, now)
        for name, at in self._deadlines.due(now):
            if name is Deadline.HANDSHAKE:
                if self.state in (ConnState.AWAITING_CONNECT, ConnState.AUTHENTICATING):
                    self._held_refusal = None
                    self._deadlines.cancel(Deadline.DELAYED_REJECT)
                    self._close(C.CLOSE_NORMAL, "", now)
            elif name is Deadline.DELAYED_REJECT:
                refusal, self._held_refusal = self._held_refusal, None
                if refusal is not None and self.state is ConnState.AUTHENTICATING:
                    self._refuse(refusal, now)
            elif name is Deadline.CLOSE_GRACE:
                if self.state is ConnState.CLOSING:
                    self._actions.append(Terminate())
                    self._finish(by_peer=False)
            elif name is Deadline.KEEPALIVE:
                if self.state is ConnState.OPEN:
                    if self._awaiting_pong:
                        self._actions.append(Terminate())
                        self._close_code, self._close_reason = C.CLOSE_ABNORMAL, "keepalive timeout"
                        self._finish(by_peer=False)
                        continue
                    self._awaiting_pong = True
                    self._actions.append(SendPing(b""))
                    assert self.policy.keepalive_interval_ms is not None
                    interval = self.policy.keepalive_interval_ms / 1000
                    # The pong gets a full interval from the ping, even when this call is late.
                    self._deadlines.arm(Deadline.KEEPALIVE, max(at, now) + interval)
            elif name is Deadline.TICK:
                if self.state is ConnState.OPEN:
                    self.publish("tick", TickPayload(ts=wall_ms))
                    interval = self.policy.tick_interval_ms / 1000
                    nxt = at + interval
                    while nxt <= now:  # a late call must not burst ticks
                        nxt += interval
                    self._deadlines.arm(Deadline.TICK, nxt)

    # ------------------------------------------------------------------ application decisions

    def accept(self, snapshot: Snapshot, *, now: float, wall_ms: int) -> None:
        """Admit the authenticated client: send hello-ok, then replay frames queued meanwhile."""
        self._now = max(self._now, now)
        if self.state is not ConnState.AUTHENTICATING or self.principal is None or self._held_refusal:
            if self.state in (ConnState.CLOSING, ConnState.CLOSED):
                return
            raise LocalProtocolError(f"accept() in state {self.state.value}")
        assert self._connect_id is not None
        p = self.principal
        read = p.role == "operator" and S.satisfies(p.scopes, S.READ)
        admin = S.ADMIN in p.scopes
        snap = msgspec.structs.replace(
            snapshot,
            presence=snapshot.presence if read and p.role == "operator" else [],
            config_path=snapshot.config_path if admin else UNSET,
            state_dir=snapshot.state_dir if admin else UNSET,
            auth_mode=snapshot.auth_mode if admin else UNSET,
        )
        hello = HelloOk(
            protocol=C.PROTOCOL_VERSION,
            server=ServerInfo(
                version=self.policy.server_version,
                conn_id=self.conn_id,
                build_id=self.policy.build_id or UNSET,
                boot_id=self.policy.boot_id or UNSET,
            ),
            features=Features(
                methods=self.policy.advertised(),
                events=list(EVENTS),
                capabilities=list(self.policy.capabilities),
            ),
            snapshot=snap,
            auth=HelloAuth(
                role=p.role,
                scopes=list(p.scope_list),
                method=p.auth_method,
                device_token=p.device_token if p.device_token is not None else UNSET,
                issued_at_ms=p.device_token_issued_at_ms if p.device_token_issued_at_ms is not None else UNSET,
            ),
            policy=HelloPolicy(
                max_payload=self.policy.max_payload_bytes,
                max_buffered_bytes=self.policy.max_buffered_bytes,
                tick_interval_ms=self.policy.tick_interval_ms,
                attachments=Attachments(
                    max_bytes=self.policy.attachments_max_bytes,
                    max_image_bytes=min(self.policy.attachments_max_bytes, C.ATTACHMENT_MAX_IMAGE_BYTES),
                ),
            ),
        )
        self._send(ResponseFrame(id=self._connect_id, ok=True, payload=hello))
        self.state = ConnState.OPEN
        self._deadlines.cancel(Deadline.HANDSHAKE)
        if self.policy.auto_tick:
            self._deadlines.arm(Deadline.TICK, now + self.policy.tick_interval_ms / 1000)
        if self.policy.keepalive_interval_ms:
            self._deadlines.arm(Deadline.KEEPALIVE, now + self.policy.keepalive_interval_ms / 1000)
        queued, self._pending_frames = self._pending_frames, []
        for text in queued:
            if self.state is not ConnState.OPEN:
                break
            self._request(text, now, wall_ms)

    def respond(self, request_id: str, payload: Any = None, *, final: bool = True) -> bool:
        """Answer ``request_id`` with ``ok:true``. ``final=False`` sends a two-stage ack (§13.2).

        Returns False when the connection is already closing (the answer is dropped).
        """
        return self._answer(request_id, True, payload, UNSET, final)

    def respond_error(self, request_id: str, err: ErrorShape, *, payload: Any = UNSET, final: bool = True) -> bool:
        """Answer ``request_id`` with ``ok:false`` (a failed agent final also carries ``payload``)."""
        return self._answer(request_id, False, payload, err, final)

    def publish(
        self,
        event: str,
        payload: Any = UNSET,
        *,
        state_version: StateVersion | None = None,
        drop_if_slow: bool = False,
        congested: bool = False,
        now: float | None = None,
    ) -> PublishResult:
        """Deliver one broadcast: gate by scope, assign ``seq``, honour back-pressure (§10.1-§10.3).

        ``congested`` is the shell's verdict that this client's send buffer is over
        ``maxBufferedBytes``: droppable events are then dropped (leaving a ``seq`` gap), anything
        else closes the connection with 1008 ``slow consumer``. ``now`` (when given) starts that
        close's grace period at the right time.
        """
        result = self._gate(event, drop_if_slow, congested, now)
        if result is not None:
            return result
        p = self.principal
        assert p is not None
        self._send(
            EventFrame(
                event=event,
                payload=payload,
                seq=self._seq,
                state_version=state_version if state_version is not None else UNSET,
                recipient_profile_id=p.profile_id or UNSET,
            )
        )
        return PublishResult.SENT

    def publish_encoded(self, ev: broadcast.EncodedEvent, *, congested: bool = False, now: float | None = None) -> bytes | PublishResult:
        """:meth:`publish` for a broadcast encoded once for all its recipients (a fan-out).

        Same gating, ``seq`` and back-pressure. When nothing is queued in :meth:`actions`, the
        frame (JSON, UTF-8) is returned for the caller to send now instead of being queued (as
        h11's ``send`` returns bytes): a fan-out then allocates no action per recipient. Otherwise
        it is queued behind the earlier actions (``SENT``), or the result says why there is none.
        """
        result = self._gate(ev.event, ev.drop_if_slow, congested, now)
        if result is not None:
            return result
        data = ev.frame(self._seq, self._kind.profile_id)  # type: ignore[union-attr]  # set by _gate
        if self._actions:
            self._actions.append(SendText(data))
            return PublishResult.SENT
        return data

    def _gate(self, event: str, drop_if_slow: bool, congested: bool, now: float | None) -> PublishResult | None:
        """One broadcast's fate on this connection; ``None`` means send it (its ``seq`` is taken)."""
        if now is not None and now > self._now:
            self._now = now
        if self.state is not ConnState.OPEN:
            return PublishResult.FILTERED
        kind = self._kind
        if kind is None:  # the scopes are fixed once admitted: the kind is looked up once
            p = self.principal
            if p is None:
                return PublishResult.FILTERED
            kind = self._kind = broadcast.recipient_kind(p.role, p.scopes, p.profile_id)
        eligible = kind.eligible.get(event)
        if eligible is None:
            eligible = kind.decide(event)
        if not eligible:
            return PublishResult.FILTERED
        self._seq += 1
        if congested:
            if drop_if_slow:
                return PublishResult.DROPPED
            self._close(C.CLOSE_POLICY_VIOLATION, "slow consumer", None)
            return PublishResult.CLOSED
        return None

    def send_event(self, event: str, payload: Any = UNSET) -> None:
        """A targeted event without ``seq`` (e.g. ``models.snapshot``); only when OPEN."""
        if self.state is ConnState.OPEN:
            self._send_event_direct(event, payload)

    def begin_shutdown(self, *, now: float, wall_ms: int, restart_expected_ms: int | None = None) -> None:
        """Graceful stop/restart: ``shutdown`` event then close 1012 ``service restart`` (§10.7)."""
        if self.state is ConnState.OPEN:
            reason = "gateway stopping" if restart_expected_ms is None else "gateway restarting"
            self.publish(
                "shutdown",
                ShutdownPayload(
                    reason=reason,
                    restart_expected_ms=UNSET if restart_expected_ms is None else restart_expected_ms,
                ),
            )
        self.close(C.CLOSE_SERVICE_RESTART, "service restart", now=now)

    def refuse_storage(self, *, now: float) -> None:
        """The application could not persist what the handshake decided (disk full, read-only):
        answer the connect ``UNAVAILABLE`` (retryable) and close 1013; nothing of it counts."""
        if self.state is ConnState.AUTHENTICATING:
            self._now = max(self._now, now)
            self._refuse(RemoteProtocolError(STORAGE_UNAVAILABLE, C.CLOSE_TRY_AGAIN_LATER, "gateway storage unavailable"), now)

    def send_buffer_overflow(self, *, now: float) -> None:
        """The shell's queue for this client passed ``maxBufferedBytes`` with frames that may not be
        dropped (answers, non-droppable events): close 1008 ``slow consumer`` at once (§1)."""
        if self.state not in (ConnState.CLOSING, ConnState.CLOSED):
            self._held_refusal = None
            self._close(C.CLOSE_POLICY_VIOLATION, "slow consumer", now)

    def close(self, code: int, reason: str = "", *, now: float) -> None:
        """Application-initiated close (e.g. 4001 ``gateway auth changed``)."""
        if self.state not in (ConnState.CLOSING, ConnState.CLOSED):
            self._held_refusal = None
            self._close(code, reason, now)

    # ------------------------------------------------------------------ internals: output

    def _send(self, frame: Any) -> None:
        self._actions.append(SendText(encode_bytes(frame)))

    def _send_event_direct(self, event: str, payload: Any) -> None:
        self._send(EventFrame(event=event, payload=payload))

    def _close(self, code: int, reason: str, now: float | None) -> None:
        self._close_code, self._close_reason = code, truncate_reason(reason)
        self._actions.append(CloseTransport(code, self._close_reason))
        self.state = ConnState.CLOSING
        self._pending_frames = []
        for name in (Deadline.HANDSHAKE, Deadline.DELAYED_REJECT, Deadline.KEEPALIVE, Deadline.TICK):
            self._deadlines.cancel(name)
        at = self._now if now is None else now
        self._deadlines.arm(Deadline.CLOSE_GRACE, at + self.policy.close_grace_ms / 1000)

    def _finish(self, by_peer: bool) -> None:
        self.state = ConnState.CLOSED
        self._deadlines.clear()
        self._pending_frames = []
        pending = tuple(self._pending_requests)
        self._pending_requests.clear()
        self._inflight = 0
        self._events.append(
            ConnectionTerminated(
                code=self._close_code if self._close_code is not None else C.CLOSE_ABNORMAL,
                reason=self._close_reason,
                pending_request_ids=pending,
                by_peer=by_peer,
            )
        )

    def _answer(self, request_id: str, ok: bool, payload: Any, err: Any, final: bool) -> bool:
        if self.state in (ConnState.CLOSING, ConnState.CLOSED):
            return False
        if self._pending_requests[request_id] <= 0:
            self._pending_requests.pop(request_id, None)
            raise LocalProtocolError(f"no pending request with id {request_id!r}")
        if final:
            self._pending_requests[request_id] -= 1
            self._inflight -= 1
            if self._pending_requests[request_id] <= 0:
                del self._pending_requests[request_id]
        self._send(ResponseFrame(id=request_id, ok=ok, payload=payload, error=err))
        return True

    def _refuse(self, refusal: RemoteProtocolError, now: float) -> None:
        if refusal.error is not None and self._connect_id is not None:
            self._send(ResponseFrame(id=self._connect_id, ok=False, error=refusal.error))
        self._events.append(HandshakeFailed(refusal.error, refusal.close_code, truncate_reason(refusal.close_reason)))
        self._close(refusal.close_code, refusal.close_reason, now)

    # ------------------------------------------------------------------ internals: handshake

    def _first_frame(self, text: str, now: float, wall_ms: int) -> None:
        try:
            obj = decode_json_lenient(text)
        except JsonTooDeep:
            self._close(C.CLOSE_POLICY_VIOLATION, "invalid request frame", now)  # row 4 (stricter: see _slow_frame)
            return
        except msgspec.DecodeError:
            self._close(C.CLOSE_NORMAL, "", now)  # row 2: 1000 with an empty reason
            return
        if may_have_lone_surrogate(text) and has_lone_surrogate(obj):
            self._close(C.CLOSE_POLICY_VIOLATION, "invalid request frame", now)  # row 4 (stricter)
            return
        if _claims_worker(obj):
            self._close(C.CLOSE_POLICY_VIOLATION, "invalid-handshake", now)  # row 3
            return
        try:
            frame = convert(obj, RequestFrame)
        except SchemaError:
            self._close(C.CLOSE_POLICY_VIOLATION, "invalid request frame", now)  # row 4
            return
        self._connect_id = frame.id
        self.state = ConnState.AUTHENTICATING
        try:
            if frame.method != "connect":  # row 5
                raise RemoteProtocolError(
                    invalid_request("invalid handshake: first request must be connect"), C.CLOSE_POLICY_VIOLATION
                )
            try:
                params = convert(None if frame.params is UNSET else frame.params, ConnectParams)
            except SchemaError as exc:  # row 6
                raise RemoteProtocolError(
                    invalid_request(f"invalid connect params: {exc.text}"), C.CLOSE_POLICY_VIOLATION
                ) from None
            self._handshake(params, now, wall_ms)
        except _Held:
            return
        except RemoteProtocolError as refusal:
            self._refuse(refusal, now)

    def _handshake(self, p: ConnectParams, now: float, wall_ms: int) -> None:
        """§3.2 rows 7-14 decided by :class:`~gateway_core.handshake.Handshake`; on success emits
        HandshakeAuthenticated (with what the application must keep), else raises the refusal."""
        attempt = Handshake(peer=self.peer, policy=self.policy, services=self.services, nonce=self.nonce,
                            conn_id=self.conn_id)
        try:
            self.principal = attempt.decide(p, wall_ms)
        except HeldRefusal as held:  # a wrong secret from loopback: answered after the penalty
            self._held_refusal = held.refusal
            self._deadlines.arm(Deadline.DELAYED_REJECT, now + held.delay_ms / 1000)
            raise _Held() from None
        finally:
            if attempt.pairing_requested is not None:
                self._events.append(PairingRequested(attempt.pairing_requested))
        self._events.append(HandshakeAuthenticated(self._connect_id or "", self.principal, tuple(attempt.decisions)))

    # ------------------------------------------------------------------ internals: requests

    def _request(self, text: str, now: float, wall_ms: int) -> None:
        """One post-handshake frame: judged by :func:`gateway_core.request_gate.judge`, acted on here."""
        p = self.principal
        assert p is not None
        verdict = request_gate.judge(
            text, p, inflight=self._inflight, policy=self.policy, services=self.services, wall_ms=wall_ms
        )
        if isinstance(verdict, request_gate.Admitted):
            self._unauthorized_streak = 0
            self._pending_requests[verdict.id] += 1
            self._inflight += 1
            self._events.append(RequestReceived(verdict.id, verdict.method, verdict.params, p))
        elif isinstance(verdict, request_gate.Answered):
            if verdict.streak == "bump":
                self._unauthorized_streak += 1
                if self._unauthorized_streak > C.MAX_UNAUTHORIZED_ROLE_RESPONSES:
                    self._close(C.CLOSE_POLICY_VIOLATION, "repeated unauthorized calls", now)
                    return
            elif verdict.streak == "reset":
                self._unauthorized_streak = 0
            self._send(ResponseFrame(id=verdict.id, ok=False, error=verdict.error))
        else:
            self._events.append(FrameIgnored(verdict.reason))


class _Held(RemoteProtocolError):
    """Internal: the refusal is held back by the loopback penalty (answered from a deadline)."""

    def __init__(self) -> None:
        super().__init__(None, 0, "")


__all__ = [
    "ConnState",
    "PeerInfo",
    "PublishResult",
    "ServerConnection",
    "ServerPolicy",
    "truncate_reason",
]
