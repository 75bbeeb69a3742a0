"""Property tests of gateway_core with hypothesis (bounded: the whole file runs in seconds).

(a) Nothing a peer sends makes a ServerConnection raise, and every close reason fits 120 bytes.
(b) The same for a ClientConnection fed arbitrary server frames.
(c) Broadcast ``seq``: strictly increasing on the wire, with gaps exactly where an eligible event
    was DROPPED, checked against the PublishResult of every publish() call.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest
from gwcore_harness import WALL0, Pair, connect_params, snapshot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway_core import (
    Admission,
    ClientConnection,
    ClientState,
    CloseTransport,
    ConnectionTerminated,
    ConnState,
    DeviceKey,
    EventReceived,
    HandshakeAuthenticated,
    MemoryServices,
    PeerInfo,
    PublishResult,
    RequestReceived,
    ResponseReceived,
    SendPing,
    SendText,
    SequenceGap,
    ServerConnection,
    ServerPolicy,
    SharedSecret,
    Terminate,
)
from gateway_core.device import proof_token
from gateway_core.errors import unavailable
from gateway_core.frames import ClientId, ClientMode, ConnectAuth
from gateway_core.methods import CATALOGUE

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,  # keep the repository clean (no .hypothesis directory)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NONCE = "nonce-1"
KEY = DeviceKey.from_seed(bytes(range(32, 64)))
CLIENT_IDS = list(typing.get_args(ClientId))
CLIENT_MODES = list(typing.get_args(ClientMode))
SCOPES = [
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.questions",
    "operator.pairing",
    "operator.talk",
    "operator.talk.secrets",
    "operator.sessions.read",
    "operator.sessions.write",
]
METHODS = sorted(CATALOGUE)
WIRE_KEYS = [
    "type",
    "id",
    "method",
    "params",
    "event",
    "payload",
    "seq",
    "ok",
    "error",
    "client",
    "role",
    "scopes",
    "auth",
    "device",
    "minProtocol",
    "maxProtocol",
    "traceparent",
    "stateVersion",
    "status",
    "nonce",
    "ts",
]


def reason_fits(reason: str) -> bool:
    return len(reason.encode("utf-8")) <= 120


# JSON values: shallow and with bounded numbers, so the fuzzers look for protocol bugs rather than
# re-finding the pinned deep-nesting and huge-number cases below.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(WIRE_KEYS) | st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def dumps(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


json_texts = st.builds(dumps, json_values, st.booleans())

# Raw text includes JSON-escaped lone surrogates, which msgspec must refuse cleanly.
raw_texts = st.text(max_size=64) | st.sampled_from(['"\\ud800"', '{"id":"\\udfff"}', "{", "[]", "null", ""])


# --------------------------------------------------------------------------- strategies: connect frames


@st.composite
def connect_frames(draw: st.DrawFn) -> str:
    client: dict[str, Any] = {
        "id": draw(st.sampled_from([*CLIENT_IDS, "bogus"])),
        "version": draw(st.sampled_from(["1.0.0", ""])),
        "platform": draw(st.sampled_from(["linux", "macos", " Linux ", ""])),
        "mode": draw(st.sampled_from([*CLIENT_MODES, "bogus"])),
    }
    if draw(st.booleans()):
        client["deviceFamily"] = draw(st.sampled_from(["desktop", "phone", ""]))
    if draw(st.integers(0, 9)) == 0:
        client.pop(draw(st.sampled_from(sorted(client))))
    if draw(st.integers(0, 9)) == 0:
        client[draw(st.text(min_size=1, max_size=6))] = draw(json_scalars)
    params: dict[str, Any] = {
        "minProtocol": draw(st.integers(0, 6)),
        "maxProtocol": draw(st.integers(0, 6)),
        "client": client,
    }
    role = draw(st.sampled_from([None, "operator", "node", "worker", "admin", ""]))
    if role is not None:
        params["role"] = role
    scopes = draw(st.none() | st.lists(st.sampled_from([*SCOPES, "bogus", ""]), max_size=4))
    if scopes is not None:
        params["scopes"] = scopes
    auth = draw(
        st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "token": st.sampled_from(["T", "wrong", ""]),
                "password": st.sampled_from(["P", "wrong"]),
                "deviceToken": st.sampled_from(["devtok-1", "devtok-2", "nope"]),
            },
        )
    )
    if auth is not None:
        params["auth"] = auth
    device_kind = draw(st.sampled_from(["none", "valid", "valid", "stale", "garbage", "wrong-nonce"]))
    if device_kind != "none" and isinstance(client.get("id"), str) and isinstance(client.get("mode"), str):
        signed_at = WALL0 + draw(st.integers(-1_000, 1_000)) + (10**9 if device_kind == "stale" else 0)
        proof = KEY.proof(
            nonce=NONCE if device_kind != "wrong-nonce" else "other",
            signed_at=signed_at,
            client_id=client["id"],
            client_mode=client["mode"],
            role=role or "operator",
            scopes=[s for s in scopes or []],
            token=proof_token(ConnectAuth(**_auth_kwargs(auth))) if auth is not None else "",
            platform=client.get("platform"),
            device_family=client.get("deviceFamily"),
        )
        params["device"] = {
            "id": proof.id,
            "publicKey": proof.public_key,
            "signature": proof.signature if device_kind != "garbage" else draw(st.text(min_size=1, max_size=12)),
            "signedAt": proof.signed_at,
            "nonce": proof.nonce,
        }
    if draw(st.integers(0, 9)) == 0:
        params[draw(st.text(min_size=1, max_size=6))] = draw(json_values)
    frame: dict[str, Any] = {
        "type": "req",
        "id": draw(st.sampled_from(["c1", "connect", ""]) | st.text(max_size=6)),
        "method": draw(st.sampled_from(["connect", "connect", "connect", "health"])),
        "params": params,
    }
    return json.dumps(frame)


def _auth_kwargs(auth: dict[str, Any]) -> dict[str, Any]:
    names = {"token": "token", "password": "password", "deviceToken": "device_token"}
    return {names[k]: v for k, v in auth.items()}


# --------------------------------------------------------------------------- strategies: requests


@st.composite
def request_frames(draw: st.DrawFn) -> str:
    method = draw(st.sampled_from([*METHODS, "connect", "bogus.method"]) | st.text(max_size=10))
    frame: dict[str, Any] = {
        "type": draw(st.sampled_from(["req", "req", "req", "req", "res", "event", 5])),
        "id": draw(st.text(max_size=6) | st.integers(-5, 10**20) | st.none()),
        "method": method,
    }
    params = draw(
        st.none()
        | json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "message": st.sampled_from(["hi", "/new", "", 3]),
                "idempotencyKey": st.sampled_from(["k1", "k2", ""]),
                "sessionKey": st.sampled_from(["main", ""]),
                "limit": st.integers(-2, 6000),
                "enabled": st.booleans(),
                "text": st.sampled_from(["hello", " ", ""]),
                "runId": st.sampled_from(["k1", ""]),
            },
        )
    )
    if params is not None:
        frame["params"] = params
    if draw(st.integers(0, 5)) == 0:
        frame["traceparent"] = draw(st.text(max_size=140))
    if draw(st.integers(0, 7)) == 0:
        frame.pop(draw(st.sampled_from(sorted(frame))))
    if draw(st.integers(0, 7)) == 0:
        frame[draw(st.text(min_size=1, max_size=6))] = draw(json_scalars)
    return json.dumps(frame)


@st.composite
def good_connects(draw: st.DrawFn) -> str:
    """A connect that passes on a loopback peer for token, password and none modes alike."""
    client_id, mode = draw(
        st.sampled_from([("cli", "cli"), ("cli", "cli"), ("test", "test"), ("openclaw-macos", "ui")])
    )
    scopes = draw(st.lists(st.sampled_from(SCOPES), max_size=3, unique=True))
    if draw(st.booleans()):
        scopes = ["operator.admin", *[s for s in scopes if s != "operator.admin"]]
    params: dict[str, Any] = {
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": {"id": client_id, "version": "1.0.0", "platform": "linux", "mode": mode},
        "role": "operator",
        "scopes": scopes,
        "auth": {"token": "T", "password": "P"},
    }
    if draw(st.booleans()) or client_id != "cli":
        proof = KEY.proof(
            nonce=NONCE,
            signed_at=WALL0,
            client_id=client_id,
            client_mode=mode,
            scopes=scopes,
            token="T",
            platform="linux",
        )
        params["device"] = {
            "id": proof.id,
            "publicKey": proof.public_key,
            "signature": proof.signature,
            "signedAt": proof.signed_at,
            "nonce": proof.nonce,
        }
    return json.dumps(
        {"type": "req", "id": draw(st.sampled_from(["c1", "connect-1"])), "method": "connect", "params": params}
    )


@st.composite
def valid_requests(draw: st.DrawFn) -> str:
    """Well-formed request frames for real method names (they reach authorization and params checks)."""
    frame: dict[str, Any] = {
        "type": "req",
        "id": draw(st.sampled_from(["r1", "r2", "r3"]) | st.text(min_size=1, max_size=6)),
        "method": draw(st.sampled_from(METHODS)),
    }
    params = draw(
        st.none()
        | st.just({})
        | st.fixed_dictionaries(
            {},
            optional={
                "message": st.sampled_from(["hi", "/reset now"]),
                "idempotencyKey": st.sampled_from(["k1", "k2"]),
                "sessionKey": st.just("main"),
                "limit": st.integers(1, 10),
                "enabled": st.booleans(),
                "text": st.just("hello"),
                "runId": st.just("k1"),
            },
        )
    )
    if params is not None:
        frame["params"] = params
    return json.dumps(frame)


# --------------------------------------------------------------------------- (a) server: no input raises

server_ops = st.one_of(
    st.tuples(st.just("text"), raw_texts),
    st.tuples(st.just("text"), json_texts),
    st.tuples(st.just("text"), connect_frames()),
    st.tuples(st.just("text"), request_frames()),
    st.tuples(st.just("text"), valid_requests()),
    st.tuples(st.just("text"), valid_requests()),
    st.tuples(st.just("text"), valid_requests()),
    st.tuples(st.just("bytes"), st.binary(max_size=48)),
    st.tuples(st.just("bytes"), valid_requests().map(str.encode)),
    st.tuples(st.just("timer"), st.floats(min_value=0, max_value=40)),
    st.tuples(st.just("deadline"), st.none()),
    st.tuples(st.just("pong"), st.none()),
    st.tuples(st.just("accept"), st.none()),
    st.tuples(st.just("respond"), st.booleans()),
    st.tuples(st.just("respond"), st.booleans()),
    st.tuples(
        st.just("publish"),
        st.tuples(st.sampled_from(["tick", "presence", "bogus", "exec.approval.x"]), st.booleans(), st.booleans()),
    ),
)
closing_ops = st.one_of(
    st.tuples(st.just("too_big"), st.none()),
    st.tuples(st.just("oversize"), st.sampled_from([65_537, 70_000])),
    st.tuples(st.just("peer_closed"), st.none() | st.integers(1000, 4999)),
    st.tuples(st.just("shutdown"), st.none() | st.just(1500)),
)


FRIENDLY_PEER = PeerInfo(client_ip="127.0.0.1", is_loopback=True, host="127.0.0.1:18789")


@st.composite
def server_setups(draw: st.DrawFn) -> dict[str, Any]:
    policy = ServerPolicy(
        auto_tick=draw(st.booleans()),
        keepalive_interval_ms=draw(st.sampled_from([None, 25_000, 1_000])),
        tick_interval_ms=draw(st.sampled_from([30_000, 1_000])),
        max_pending_handshake_frames=draw(st.sampled_from([15, 2])),
    )
    if draw(st.integers(0, 4)) < 3:  # mostly a setup where a good connect gets in
        return {
            "peer": FRIENDLY_PEER,
            "secret": draw(
                st.sampled_from([SharedSecret(mode="token", token="T"), SharedSecret(mode="password", password="P")])
            ),
            "phase": Admission.ACCEPTING,
            "policy": policy,
            "accept_at_once": draw(st.integers(0, 3)) > 0,
        }
    ip, loopback = draw(
        st.sampled_from([("127.0.0.1", True), ("::1", True), ("1.2.3.4", False), ("::ffff:1.2.3.4", False)])
    )
    return {
        "peer": PeerInfo(
            client_ip=ip,
            is_loopback=loopback,
            forwarded=draw(st.booleans()),
            origin=draw(st.sampled_from([None, "http://127.0.0.1:18789", "https://evil.example"])),
            host="127.0.0.1:18789",
        ),
        "secret": draw(
            st.sampled_from(
                [
                    SharedSecret(mode="token", token="T"),
                    SharedSecret(mode="password", password="P"),
                    SharedSecret(mode="none"),
                    SharedSecret(mode="token", token=None),
                    SharedSecret(mode="trusted-proxy"),
                ]
            )
        ),
        "phase": draw(st.sampled_from(list(Admission))),
        "policy": policy,
        "accept_at_once": draw(st.booleans()),
    }


class ServerHarness:
    """Drives one ServerConnection like a shell would and checks the invariants after each step."""

    def __init__(self, setup: dict[str, Any]) -> None:
        services = MemoryServices(setup["secret"])
        services.phase = setup["phase"]
        self.now = 0.0
        self.accept_at_once = setup["accept_at_once"]
        self.conn = ServerConnection(
            policy=setup["policy"],
            services=services,
            now=0.0,
            wall_ms=WALL0,
            nonce=NONCE,
            conn_id="conn-1",
            peer=setup["peer"],
        )
        self.accept_pending = False
        self.pending: list[str] = []
        self.close_seen = False
        self.terminated = 0
        self.requests_seen = 0
        self.drain()

    @property
    def wall_ms(self) -> int:
        return WALL0 + int(self.now * 1000)

    def drain(self) -> None:
        for action in self.conn.actions():
            if isinstance(action, CloseTransport):
                assert reason_fits(action.reason), action
                assert not self.close_seen, "a second close was queued"
                self.close_seen = True
            elif isinstance(action, SendText):
                assert not self.close_seen, f"frame sent after the close: {action.text[:200]}"
                frame = json.loads(action.text)
                assert frame["type"] in ("res", "event")
            elif isinstance(action, SendPing):
                assert not self.close_seen
            else:
                assert isinstance(action, Terminate)
        for ev in self.conn.events():
            if isinstance(ev, HandshakeAuthenticated):
                assert self.conn.state is ConnState.AUTHENTICATING
                self.accept_pending = True
            elif isinstance(ev, RequestReceived):
                self.pending.append(ev.request_id)
                self.requests_seen += 1
            elif isinstance(ev, ConnectionTerminated):
                self.terminated += 1
                assert self.terminated == 1
        if self.accept_pending and self.accept_at_once:
            self.accept()

    def accept(self) -> None:
        if self.accept_pending:
            self.accept_pending = False
            self.conn.accept(snapshot(), now=self.now, wall_ms=self.wall_ms)
            self.drain()

    def step(self, op: str, arg: Any) -> None:
        c = self.conn
        if op == "text":
            c.receive_text(arg, now=self.now, wall_ms=self.wall_ms)
        elif op == "bytes":
            c.receive_bytes(arg, now=self.now, wall_ms=self.wall_ms)
        elif op == "oversize":
            c.receive_text("x" * arg, now=self.now, wall_ms=self.wall_ms)
        elif op == "timer":
            self.now += arg
            c.handle_timer(now=self.now, wall_ms=self.wall_ms)
        elif op == "deadline":
            d = c.next_deadline()
            if d is not None:
                self.now = max(self.now, d)
                c.handle_timer(now=self.now, wall_ms=self.wall_ms)
        elif op == "pong":
            c.receive_pong(now=self.now)
        elif op == "accept":
            self.accept()
        elif op == "respond":
            # The application answers its oldest pending request (legitimate use: never raises).
            live = [rid for rid in self.pending if rid in c.pending_request_ids]
            self.pending = live
            if live:
                rid = live.pop(0)
                if arg:
                    c.respond(rid, {"ok": True})
                else:
                    c.respond_error(rid, unavailable("not implemented"))
        elif op == "publish":
            name, congested, drop = arg
            result = c.publish(name, {"x": 1}, congested=congested, drop_if_slow=drop)
            assert isinstance(result, PublishResult)
        elif op == "too_big":
            c.receive_message_too_big(now=self.now)
        elif op == "peer_closed":
            c.receive_closed(arg, now=self.now)
        elif op == "shutdown":
            c.begin_shutdown(now=self.now, wall_ms=self.wall_ms, restart_expected_ms=arg)
        else:  # pragma: no cover
            raise AssertionError(op)
        self.drain()


@SETTINGS
@given(
    setup=server_setups(),
    opening=st.sampled_from(["good", "good", "good", "fuzzy", "none"]),
    good=good_connects(),
    fuzzy=connect_frames(),
    ops=st.lists(server_ops, min_size=2, max_size=25),
    ending=st.none() | st.tuples(st.integers(0, 25), closing_ops),
)
def test_server_never_raises_on_peer_input(
    setup: dict[str, Any],
    opening: str,
    good: str,
    fuzzy: str,
    ops: list[tuple[str, Any]],
    ending: tuple[int, tuple[str, Any]] | None,
):
    h = ServerHarness(setup)
    if opening != "none":
        h.step("text", good if opening == "good" else fuzzy)
    if ending is not None:
        ops = list(ops)
        ops.insert(min(ending[0], len(ops)), ending[1])
    for op, arg in ops:
        h.step(op, arg)
    event(f"server ended {h.conn.state.value}; requests reached app: {h.requests_seen > 0}")
    # Running the clock out ends every connection that is not OPEN (alive by design), within
    # a bounded number of deadlines.
    for _ in range(50):
        if h.conn.next_deadline() is None or h.conn.state is ConnState.OPEN:
            break
        h.step("deadline", None)
    assert h.conn.state in (ConnState.OPEN, ConnState.CLOSED) or h.accept_pending, h.conn.state


# --------------------------------------------------------------------------- (b) client: no input raises


@st.composite
def server_frames(draw: st.DrawFn) -> str | bytes:
    kind = draw(
        st.sampled_from(
            [
                "challenge",
                "hello",
                "response",
                "response",
                "response",
                "event",
                "event",
                "event",
                "json",
                "raw",
                "bytes",
            ]
        )
    )
    if kind == "challenge":
        payload = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "nonce": st.sampled_from(["n-1", "", 5]) | st.text(max_size=6),
                    "ts": st.integers(-5, 2**64) | st.sampled_from([True, 1.5, "1"]),
                    "capabilities": st.just(["model-catalog-snapshot"]),
                },
            )
        )
        return json.dumps(
            {"type": "event", "event": draw(st.sampled_from(["connect.challenge", "tick"])), "payload": payload}
        )
    if kind == "hello":
        policy = draw(
            st.none()
            | st.fixed_dictionaries(
                {},
                optional={"tickIntervalMs": st.integers(-(2**70), 2**70) | st.sampled_from([0, 1, 30_000, "x", 1.5])},
            )
        )
        payload: Any = {"type": draw(st.sampled_from(["hello-ok", "hello-ok", "nope"])), "protocol": 4}
        if policy is not None:
            payload["policy"] = policy
        frame: dict[str, Any] = {
            "type": "res",
            "id": draw(st.sampled_from(["connect-1", "connect-1", "r1", "other"])),
            "ok": draw(st.booleans()),
            "payload": draw(st.just(payload) | json_values),
        }
        if draw(st.booleans()):
            frame["error"] = draw(st.just({"code": "INVALID_REQUEST", "message": "nope"}) | json_values)
        return json.dumps(frame)
    if kind == "response":
        frame = {
            "type": "res",
            "id": draw(st.sampled_from(["r0", "r0", "r1", "r1", "r2", "r3", "connect-1", ""])),
            "ok": draw(st.sampled_from([True, True, False, None])),
        }
        if draw(st.booleans()):
            frame["payload"] = draw(st.just({"status": "accepted"}) | st.just({"status": "ok"}) | json_values)
        if draw(st.integers(0, 3)) == 0:
            frame["error"] = draw(
                st.sampled_from(
                    [
                        {"code": "UNAVAILABLE", "message": "x", "retryable": True, "retryAfterMs": 5},
                        {"code": "X", "message": "y", "details": {"a": 1}},
                    ]
                )
                | json_values
            )
        return json.dumps(frame)
    if kind == "event":
        frame = {"type": "event", "event": draw(st.sampled_from(["tick", "presence", "shutdown", ""]))}
        if draw(st.booleans()):
            frame["seq"] = draw(st.integers(-3, 2**64) | st.sampled_from([1.5, "2", None]))
        if draw(st.booleans()):
            frame["payload"] = draw(json_values)
        if draw(st.booleans()):
            frame["stateVersion"] = draw(st.just({"presence": 2, "health": 1}) | json_values)
        if draw(st.integers(0, 5)) == 0:
            frame[draw(st.sampled_from(["extra", "recipientProfileId"]))] = draw(json_scalars)
        return json.dumps(frame)
    if kind == "json":
        return draw(json_texts)
    if kind == "raw":
        return draw(raw_texts)
    return draw(st.binary(max_size=48))


client_ops = st.one_of(
    *[st.tuples(st.just("frame"), server_frames())] * 5,
    st.tuples(st.just("timer"), st.floats(min_value=0, max_value=5)),
    st.tuples(st.just("request"), st.booleans()),
    st.tuples(st.just("request"), st.booleans()),
)
client_endings = st.one_of(
    st.tuples(st.just("deadline"), st.none()),
    st.tuples(st.just("peer_closed"), st.none() | st.integers(1000, 4999)),
    st.tuples(st.just("close"), st.none()),
)


CHALLENGE = json.dumps(
    {
        "type": "event",
        "event": "connect.challenge",
        "payload": {"nonce": NONCE, "ts": WALL0, "capabilities": ["model-catalog-snapshot"]},
    }
)


def hello_frame(tick_interval_ms: int) -> str:
    return json.dumps(
        {
            "type": "res",
            "id": "connect-1",
            "ok": True,
            "payload": {"type": "hello-ok", "protocol": 4, "policy": {"tickIntervalMs": tick_interval_ms}},
        }
    )


@SETTINGS
@given(
    with_key=st.booleans(),
    opening=st.sampled_from(["none", "challenge", "open", "open", "open"]),
    tick=st.sampled_from([1_000, 30_000, 120_000]),
    ops=st.lists(client_ops, min_size=1, max_size=30),
    ending=st.none() | st.tuples(st.integers(0, 30), client_endings),
)
def test_client_never_raises_on_server_frames(
    with_key: bool, opening: str, tick: int, ops: list[tuple[str, Any]], ending: tuple[int, Any] | None
):
    now = 0.0
    client = ClientConnection(
        connect_params(scopes=["operator.read"]), connect_id="connect-1", now=now, device_key=KEY if with_key else None
    )
    prelude: list[tuple[str, Any]] = {
        "none": [],
        "challenge": [("frame", CHALLENGE)],
        "open": [("frame", CHALLENGE), ("frame", hello_frame(tick)), ("request", True), ("request", False)],
    }[opening]
    ops = prelude + list(ops)
    if ending is not None:
        ops.insert(min(len(ops), len(prelude) + ending[0]), ending[1])
    counter = 0
    closes = 0
    terminated = 0
    responses = 0
    events = 0

    def drain() -> None:
        nonlocal closes, terminated, responses, events
        for action in client.actions():
            if isinstance(action, CloseTransport):
                assert reason_fits(action.reason)
                closes += 1
                assert closes == 1
            elif isinstance(action, SendText):
                assert closes == 0
                assert json.loads(action.text)["type"] == "req"
            else:
                assert isinstance(action, Terminate)
        for ev in client.events():
            if isinstance(ev, ConnectionTerminated):
                terminated += 1
                assert terminated == 1
            elif isinstance(ev, ResponseReceived):
                responses += 1
            elif isinstance(ev, EventReceived):
                events += 1

    for op, arg in ops:
        if op == "frame":
            client.receive_text(arg, now=now, wall_ms=WALL0 + int(now * 1000))
        elif op == "timer":
            now += arg
            client.handle_timer(now=now, wall_ms=WALL0 + int(now * 1000))
        elif op == "deadline":
            d = client.next_deadline()
            if d is not None:
                now = max(now, d)
                client.handle_timer(now=now)
        elif op == "request":
            if client.state is ClientState.OPEN:
                client.request("health", request_id=f"r{counter}", expect_final=arg)
                counter += 1
        elif op == "peer_closed":
            client.receive_closed(arg, now=now)
        else:
            client.close(now=now)
        drain()
    event(f"client ended {client.state.value}; responses: {responses > 0}; events: {events > 0}")


# --------------------------------------------------------------------------- (c) seq property

UNRESTRICTED = ["tick", "health", "heartbeat", "shutdown", "update.available"]
READ_GATED = ["agent", "chat", "presence", "sessions.changed", "session.tool", "config.changed"]
OTHER_GATED = {
    "exec.approval.requested": "operator.approvals",
    "device.pair.requested": "operator.pairing",
    "talk.mode": "operator.talk",
    "terminal.output": "operator.admin",
    "plugin.custom": "operator.write",
}
UNKNOWN = ["bogus", "ticks", "x.y.z", "connect.challenge"]
EVENT_NAMES = UNRESTRICTED + READ_GATED + list(OTHER_GATED) + UNKNOWN


def oracle_eligible(event: str, role: str, scopes: frozenset[str]) -> bool:
    """§10.3 and §7.2, written independently of gateway_core.broadcast."""
    if event in UNRESTRICTED:
        return True
    if event in UNKNOWN:
        return False
    if role != "operator":
        return False
    need = "operator.read" if event in READ_GATED else OTHER_GATED[event]
    if need in scopes or "operator.admin" in scopes:
        return True
    return need in ("operator.read", "operator.talk") and "operator.write" in scopes


@st.composite
def congestion_flags(draw: st.DrawFn) -> tuple[bool, bool]:
    congested = draw(st.integers(0, 3)) == 0
    return congested, draw(st.booleans())


@SETTINGS
@given(
    role=st.sampled_from(["operator", "operator", "operator", "node"]),
    scopes=st.lists(st.sampled_from(SCOPES), max_size=3, unique=True),
    calls=st.lists(st.tuples(st.sampled_from(EVENT_NAMES), congestion_flags()), max_size=40),
)
def test_seq_gaps_exactly_at_dropped_events(role: str, scopes: list[str], calls: list[tuple[str, tuple[bool, bool]]]):
    policy = ServerPolicy(auto_tick=False, keepalive_interval_ms=None)
    if role == "node":
        params = connect_params(client_id="node-host", mode="node", role="node", scopes=[])
    else:
        params = connect_params(scopes=scopes)  # cli/cli on loopback keeps the requested scopes
    pair = Pair(params=params, policy=policy, device_key=KEY if role == "node" else None)
    assert pair.server.state is ConnState.OPEN
    principal = pair.server.principal
    assert principal is not None and principal.role == role
    granted = principal.scopes
    if role == "operator":
        assert granted == frozenset(scopes)

    n_before = len(pair.server_frames)
    expected = 0  # the model of the connection's seq counter
    sent: list[tuple[int, str]] = []
    dropped: list[int] = []
    closed = False
    for name, (congested, drop) in calls:
        frames_before = len(pair.server_frames)
        result = pair.server.publish(name, {"n": expected}, congested=congested, drop_if_slow=drop)
        pair.pump()
        new = [f for f in pair.server_frames[frames_before:] if f["type"] == "event"]
        if closed:
            assert result is PublishResult.FILTERED
            assert new == []
            continue
        eligible = oracle_eligible(name, role, granted)
        if not eligible:
            assert result is PublishResult.FILTERED, (name, result)
            assert new == []
            assert pair.server.seq == expected
            continue
        expected += 1
        assert pair.server.seq == expected
        if not congested:
            assert result is PublishResult.SENT
            assert [(f["event"], f["seq"]) for f in new] == [(name, expected)]
            sent.append((expected, name))
        elif drop:
            assert result is PublishResult.DROPPED
            assert new == []
            dropped.append(expected)
        else:
            assert result is PublishResult.CLOSED
            assert new == []
            closed = True
            closes = pair.server_sent(CloseTransport)
            assert closes == [CloseTransport(1008, "slow consumer")]

    wire = [f for f in pair.server_frames[n_before:] if f["type"] == "event"]
    seqs = [f["seq"] for f in wire]
    assert seqs == [s for s, _ in sent]
    assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False)), seqs
    # The numbers missing from the wire are exactly the dropped ones (and, on a close, the last).
    last = expected
    missing = sorted(set(range(1, last + 1)) - set(seqs))
    assert missing == dropped + ([last] if closed else [])

    # The client saw every sent event and reported a gap exactly where drops separate two sends.
    received = [e.seq for e in pair.client_of(EventReceived)]
    assert received == seqs
    gaps = pair.client_of(SequenceGap)
    want_gaps = [SequenceGap(expected=a + 1, received=b) for a, b in zip(seqs, seqs[1:], strict=False) if b != a + 1]
    assert gaps == want_gaps
    if closed:
        assert pair.client.state is ClientState.CLOSED
        (term,) = pair.client_of(ConnectionTerminated)
        assert (term.code, term.reason) == (1008, "slow consumer")


# --------------------------------------------------------------------------- pinned counterexamples
# Deterministic inputs that once broke properties (a)/(b), kept as regression tests.


def open_server() -> ServerConnection:
    pair = Pair(
        params=connect_params(scopes=["operator.admin"]),
        policy=ServerPolicy(auto_tick=False, keepalive_interval_ms=None),
    )
    assert pair.server.state is ConnState.OPEN
    return pair.server


@pytest.mark.parametrize(
    "data",
    ["1x", "[1,", '"abc" junk', '{"type":"req","id":5,', '{"type":"res","id":"a"', b"0\x00"],
    ids=["number-trailing", "truncated-array", "string-trailing", "bad-id-truncated", "res-truncated", "binary"],
)
def test_post_handshake_malformed_frame_does_not_raise(data: str | bytes):
    server = open_server()
    if isinstance(data, bytes):
        server.receive_bytes(data, now=1.0, wall_ms=WALL0 + 1000)
    else:
        server.receive_text(data, now=1.0, wall_ms=WALL0 + 1000)
    # §9.2: not valid JSON after the handshake → logged, no response, connection stays open.
    assert server.actions() == []
    assert [type(e).__name__ for e in server.events()] == ["FrameIgnored"]
    assert server.state is ConnState.OPEN


def test_malformed_frame_queued_during_handshake_does_not_raise_from_accept():
    pair = Pair(params=connect_params(scopes=["operator.admin"]), auto_accept=False)
    assert pair.server.state is ConnState.AUTHENTICATING
    pair.server.receive_text("1x", now=0.0, wall_ms=WALL0)
    pair.server.accept(snapshot(), now=0.0, wall_ms=WALL0)
    assert pair.server.state is ConnState.OPEN


DEEP = 1_500  # 3 000 bytes of brackets: far below the 64 KiB pre-auth limit


def test_deeply_nested_first_frame_does_not_raise():
    server = ServerConnection(
        policy=ServerPolicy(), services=MemoryServices(), now=0.0, wall_ms=WALL0, nonce=NONCE, conn_id="c"
    )
    server.actions()
    server.receive_text("[" * DEEP + "]" * DEEP, now=0.0, wall_ms=WALL0)
    (close,) = [a for a in server.actions() if isinstance(a, CloseTransport)]
    assert close.code in (1000, 1008)


def test_deeply_nested_request_after_handshake_does_not_raise():
    server = open_server()
    text = '{"type":"req","id":"x","method":"health","params":' + "[" * DEEP + "]" * DEEP + "}"
    server.receive_text(text, now=1.0, wall_ms=WALL0 + 1000)
    server.actions()
    assert server.state is ConnState.OPEN


def test_client_deeply_nested_frame_does_not_raise():
    client = ClientConnection(connect_params(), connect_id="connect-1", now=0.0)
    client.receive_text(CHALLENGE, now=0.0, wall_ms=WALL0)
    client.receive_text(hello_frame(30_000), now=0.0, wall_ms=WALL0)
    assert client.state is ClientState.OPEN
    client.events()
    text = '{"type":"event","event":"tick","payload":' + "[" * DEEP + "]" * DEEP + "}"
    client.receive_text(text, now=0.0, wall_ms=WALL0)
    assert [type(e).__name__ for e in client.events()] in (["EventReceived"], ["ProtocolViolation"])


def _der(tag: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes([tag, len(body)]) + body


def _pem_with_unknown_algorithm() -> str:
    import base64

    # SubjectPublicKeyInfo { AlgorithmIdentifier { OID 1.2.3.4.5, NULL }, BIT STRING (32 bytes) }
    algorithm = _der(0x30, _der(0x06, bytes([42, 3, 4, 5])) + b"\x05\x00")
    spki = _der(0x30, algorithm + _der(0x03, b"\x00" + b"\x01" * 32))
    return "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(spki).decode() + "\n-----END PUBLIC KEY-----\n"


def test_connect_with_unsupported_pem_device_key_does_not_raise():
    server = ServerConnection(
        policy=ServerPolicy(), services=MemoryServices(), now=0.0, wall_ms=WALL0, nonce=NONCE, conn_id="c"
    )
    server.actions()
    frame = {
        "type": "req",
        "id": "c1",
        "method": "connect",
        "params": {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {"id": "cli", "version": "1.0.0", "platform": "linux", "mode": "cli"},
            "auth": {"token": "T"},
            "device": {
                "id": "abc",
                "publicKey": _pem_with_unknown_algorithm(),
                "signature": "AAAA",
                "signedAt": WALL0,
                "nonce": NONCE,
            },
        },
    }
    server.receive_text(json.dumps(frame), now=0.0, wall_ms=WALL0)
    res, close = server.actions()
    assert json.loads(res.text)["error"]["message"] == "device public key invalid"
    assert close == CloseTransport(1008, "device public key invalid")


def test_client_huge_tick_interval_does_not_raise():
    client = ClientConnection(connect_params(), connect_id="connect-1", now=0.0)
    client.receive_text(CHALLENGE, now=0.0, wall_ms=WALL0)
    client.receive_text(hello_frame(10**400), now=0.0, wall_ms=WALL0)
    assert client.state is ClientState.OPEN


def test_binary_frame_within_limit_is_not_message_too_big():
    server = ServerConnection(
        policy=ServerPolicy(), services=MemoryServices(), now=0.0, wall_ms=WALL0, nonce=NONCE, conn_id="c"
    )
    server.actions()
    server.receive_bytes(b"\xff" * 30_000, now=0.0, wall_ms=WALL0)
    assert server.actions() == [CloseTransport(1000, "")]
