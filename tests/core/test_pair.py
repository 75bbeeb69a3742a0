"""ServerConnection and ClientConnection talking to each other in memory, on a virtual clock.

The "application" of :class:`gwcore_harness.Pair` accepts every HandshakeAuthenticated with a
Snapshot and answers RequestReceived; time moves only through ``handle_timer`` at the next deadline.
"""

from __future__ import annotations

import json

import pytest
from gwcore_harness import TOKEN, WALL0, Pair, connect_params, snapshot

from gateway_core import (
    ClientState,
    CloseTransport,
    ConnectFailed,
    ConnectionTerminated,
    ConnState,
    DeviceKey,
    EventReceived,
    HandshakeAuthenticated,
    HandshakeFailed,
    HelloReceived,
    LocalProtocolError,
    MemoryServices,
    PeerInfo,
    PongReceived,
    ProtocolViolation,
    PublishResult,
    RequestReceived,
    ResponseReceived,
    SendPing,
    SendText,
    SequenceGap,
    ServerConnection,
    ServerPolicy,
    Terminate,
)
from gateway_core.errors import unavailable

QUIET = ServerPolicy(auto_tick=False, keepalive_interval_ms=None)
ALL_SCOPES = ["operator.admin", "operator.read", "operator.write"]


def open_pair(**kw) -> Pair:
    pair = Pair(**kw)
    assert pair.server.state is ConnState.OPEN, pair.server_events
    assert pair.client.state is ClientState.OPEN, pair.client_events
    return pair


def hello_of(pair: Pair) -> dict:
    (hello,) = pair.client_of(HelloReceived)
    return hello.hello


# --------------------------------------------------------------------------- handshake


def test_happy_handshake_cli_keeps_requested_scopes():
    pair = open_pair(params=connect_params(scopes=["operator.read", "operator.write"]))
    # The first thing on the wire is the challenge, without seq.
    first = pair.server_frames[0]
    assert first["event"] == "connect.challenge"
    assert first["payload"]["nonce"] == "nonce-1"
    assert first["payload"]["ts"] == WALL0
    assert "seq" not in first

    (auth_ev,) = pair.server_of(HandshakeAuthenticated)
    assert auth_ev.request_id == "connect-1"
    principal = pair.server.principal
    assert principal is not None
    assert principal.role == "operator"
    assert principal.scopes == frozenset({"operator.read", "operator.write"})
    assert principal.auth_method == "token"
    assert principal.local is True

    hello = hello_of(pair)
    assert hello["type"] == "hello-ok"
    assert hello["protocol"] == 4
    assert hello["server"]["connId"] == "conn-1"
    assert hello["auth"]["role"] == "operator"
    assert hello["auth"]["scopes"] == ["operator.read", "operator.write"]
    assert hello["auth"]["method"] == "token"
    assert hello["policy"]["tickIntervalMs"] == 30_000
    assert "health" in hello["features"]["methods"]
    # Non-admin: no config path / state dir / auth mode in the snapshot; read: presence kept.
    assert "configPath" not in hello["snapshot"]
    assert hello["snapshot"]["presence"]
    # The hello-ok answers the connect id and nothing else happened.
    assert pair.server_frames[1]["id"] == "connect-1"
    assert pair.client.pending_request_ids == ()
    assert pair.client_of(ProtocolViolation) == []


def test_test_client_with_token_gets_no_scopes():
    pair = open_pair(params=connect_params(client_id="test", mode="test", scopes=["operator.admin"]))
    assert pair.server.principal is not None
    assert pair.server.principal.scopes == frozenset()
    hello = hello_of(pair)
    assert hello["auth"]["scopes"] == []
    # No read scope: the snapshot's presence is projected away.
    assert hello["snapshot"]["presence"] == []
    # Without scopes only health is callable.
    pair.request("health", request_id="h")
    pair.request("status", request_id="s")
    by_id = {r.request_id: r for r in pair.client_of(ResponseReceived)}
    assert by_id["h"].ok is True
    assert by_id["s"].ok is False
    assert by_id["s"].error.code == "FORBIDDEN"
    assert by_id["s"].error.message == "missing scope: operator.read"
    assert [r.method for r in pair.requests] == ["health"]


def test_admin_sees_config_paths_in_snapshot():
    pair = open_pair(params=connect_params(scopes=["operator.admin"]))
    hello = hello_of(pair)
    assert hello["snapshot"]["configPath"] == "/virtual/openclaw.json"
    assert hello["snapshot"]["authMode"] == "token"


# --------------------------------------------------------------------------- requests


def test_request_response_matching_by_id():
    held: list[RequestReceived] = []
    pair = open_pair(params=connect_params(scopes=ALL_SCOPES), handler=lambda p, ev: held.append(ev))
    pair.request("health", request_id="a")
    pair.request("status", {}, request_id="b")
    pair.request("health", request_id="c")
    assert [ev.request_id for ev in held] == ["a", "b", "c"]
    assert set(pair.server.pending_request_ids) == {"a", "b", "c"}
    assert set(pair.client.pending_request_ids) == {"a", "b", "c"}
    # Answer out of order: the client matches by id, not by position.
    for rid in ("c", "a", "b"):
        pair.server.respond(rid, {"answer": rid})
        pair.pump()
    responses = pair.client_of(ResponseReceived)
    assert [(r.request_id, r.payload) for r in responses] == [
        ("c", {"answer": "c"}),
        ("a", {"answer": "a"}),
        ("b", {"answer": "b"}),
    ]
    assert all(r.ok and r.final for r in responses)
    assert pair.client.pending_request_ids == ()
    assert pair.server.pending_request_ids == ()
    assert pair.client_of(ProtocolViolation) == []


def test_error_response_reaches_client_with_error_shape():
    pair = open_pair(
        params=connect_params(scopes=ALL_SCOPES),
        handler=lambda p, ev: p.server.respond_error(ev.request_id, unavailable("nope", retryable=True)),
    )
    pair.request("status", request_id="x")
    (res,) = pair.client_of(ResponseReceived)
    assert res.request_id == "x" and res.ok is False and res.final is True
    assert res.error.code == "UNAVAILABLE" and res.error.message == "nope" and res.error.retryable is True


def test_pipelined_request_is_answered_after_hello():
    """§3.1 step 6: a frame sent while the connect is processed is replayed after hello-ok."""
    pair = Pair(params=connect_params(scopes=ALL_SCOPES), auto_accept=False)
    assert pair.server.state is ConnState.AUTHENTICATING
    pair.send_raw(json.dumps({"type": "req", "id": "early", "method": "health"}))
    assert pair.requests == []
    pair.server.accept(snapshot(), now=pair.now, wall_ms=pair.wall_ms)
    pair.pump()
    ids = [f.get("id") for f in pair.server_frames if f["type"] == "res"]
    assert ids == ["connect-1", "early"]
    assert [r.request_id for r in pair.requests] == ["early"]


def test_two_stage_agent_response():
    held: list[RequestReceived] = []
    pair = open_pair(params=connect_params(scopes=["operator.write"]), handler=lambda p, ev: held.append(ev))
    pair.request("agent", {"message": "hi", "idempotencyKey": "run-1"}, request_id="r1", expect_final=True)
    (ev,) = held
    assert ev.method == "agent"
    assert ev.params.idempotency_key == "run-1"  # typed params

    pair.server.respond("r1", {"runId": "run-1", "status": "accepted", "acceptedAt": pair.wall_ms}, final=False)
    pair.pump()
    (ack,) = pair.client_of(ResponseReceived)
    assert ack.request_id == "r1" and ack.ok is True and ack.final is False
    assert ack.payload["status"] == "accepted"
    # Still pending on both sides between the two stages.
    assert pair.client.pending_request_ids == ("r1",)
    assert pair.server.pending_request_ids == ("r1",)

    pair.advance_by(5)
    pair.server.respond("r1", {"runId": "run-1", "status": "ok", "summary": "completed"})
    pair.pump()
    ack2, final = pair.client_of(ResponseReceived)
    assert ack2 is ack
    assert final.request_id == "r1" and final.final is True and final.payload["status"] == "ok"
    assert pair.client.pending_request_ids == ()
    assert pair.server.pending_request_ids == ()
    with pytest.raises(LocalProtocolError):
        pair.server.respond("r1", {"too": "late"})


def test_two_stage_agent_failed_final_carries_payload_and_error():
    held: list[RequestReceived] = []
    pair = open_pair(params=connect_params(scopes=["operator.write"]), handler=lambda p, ev: held.append(ev))
    pair.request("agent", {"message": "hi", "idempotencyKey": "k"}, request_id="r1", expect_final=True)
    pair.server.respond("r1", {"runId": "k", "status": "accepted"}, final=False)
    pair.server.respond_error("r1", unavailable("no provider"), payload={"runId": "k", "status": "error"})
    pair.pump()
    ack, final = pair.client_of(ResponseReceived)
    assert ack.final is False
    assert final.final is True and final.ok is False
    assert final.payload == {"runId": "k", "status": "error"}
    assert final.error.message == "no provider"
    assert pair.client.pending_request_ids == ()


def test_accepted_status_is_final_without_expect_final():
    held: list[RequestReceived] = []
    pair = open_pair(params=connect_params(scopes=["operator.write"]), handler=lambda p, ev: held.append(ev))
    pair.request("agent", {"message": "hi", "idempotencyKey": "k"}, request_id="r1")
    pair.server.respond("r1", {"runId": "k", "status": "accepted"}, final=False)
    pair.pump()
    (ack,) = pair.client_of(ResponseReceived)
    assert ack.final is True
    assert pair.client.pending_request_ids == ()


def test_invalid_agent_params_never_reach_application():
    pair = open_pair(params=connect_params(scopes=["operator.write"]))
    pair.request("agent", {"idempotencyKey": "k"}, request_id="bad", expect_final=True)
    (res,) = pair.client_of(ResponseReceived)
    assert res.ok is False and res.final is True
    assert res.error.message == "invalid agent params: must have required property 'message'"
    assert pair.requests == []


# --------------------------------------------------------------------------- device identity


def test_device_proof_then_device_token_reconnect():
    key = DeviceKey.from_seed(bytes(range(32)))
    services = MemoryServices()
    first = open_pair(
        params=connect_params(scopes=["operator.read"]), device_key=key, services=services, conn_id="conn-a"
    )
    hello = hello_of(first)
    token = hello["auth"].get("deviceToken")
    assert isinstance(token, str) and token
    assert hello["auth"]["issuedAtMs"] == first.wall_ms
    assert first.server.principal.device_id == key.device_id
    assert key.device_id in services.devices  # silently paired (local)
    connect = json.loads(next(a.text for _, a in first.client_actions if isinstance(a, SendText)))
    assert connect["params"]["device"]["nonce"] == "nonce-1"
    assert connect["params"]["device"]["id"] == key.device_id

    second = open_pair(
        params=connect_params(scopes=["operator.read"], token=None, device_token=token),
        device_key=key,
        services=services,
        nonce="nonce-2",
        conn_id="conn-b",
        now=10.0,
    )
    principal = second.server.principal
    assert principal.auth_method == "device-token"
    assert principal.scopes == frozenset({"operator.read"})
    assert hello_of(second)["auth"]["method"] == "device-token"
    assert hello_of(second)["auth"]["deviceToken"] == token


def test_device_token_with_broader_scopes_is_refused():
    key = DeviceKey.from_seed(b"\x07" * 32)
    services = MemoryServices()
    first = open_pair(params=connect_params(scopes=["operator.read"]), device_key=key, services=services)
    token = hello_of(first)["auth"]["deviceToken"]
    second = Pair(
        params=connect_params(scopes=["operator.admin"], token=None, device_token=token),
        device_key=key,
        services=services,
        nonce="nonce-2",
    )
    second.advance(1.0)  # loopback failures are answered after the penalty
    (failed,) = second.client_of(ConnectFailed)
    assert failed.error.details["code"] == "AUTH_SCOPE_MISMATCH"
    (term,) = second.client_of(ConnectionTerminated)
    assert term.code == 1008


def test_remote_device_needs_pairing():
    key = DeviceKey.from_seed(b"\x09" * 32)
    services = MemoryServices()
    pair = Pair(
        params=connect_params(scopes=["operator.read"]),
        device_key=key,
        services=services,
        peer=PeerInfo(client_ip="203.0.113.5", is_loopback=False),
    )
    (failed,) = pair.client_of(ConnectFailed)
    assert failed.error.code == "NOT_PAIRED"
    assert failed.error.details["reason"] == "not-paired"
    request_id = failed.error.details["requestId"]
    assert request_id in services.pairing_requests
    (term,) = pair.client_of(ConnectionTerminated)
    assert term.code == 1008
    assert term.reason == f"pairing required: device is not approved yet (requestId: {request_id})"


# --------------------------------------------------------------------------- ticks and liveness


def test_server_tick_every_30s_reaches_client_in_sequence():
    pair = open_pair()
    pair.advance(95.0)
    ticks = [(t, e) for t, e in pair.client_timeline if isinstance(e, EventReceived) and e.event == "tick"]
    assert [e.seq for _, e in ticks] == [1, 2, 3]
    assert [t for t, _ in ticks] == [30.0, 60.0, 90.0]
    assert [e.payload["ts"] for _, e in ticks] == [WALL0 + 30_000, WALL0 + 60_000, WALL0 + 90_000]
    assert pair.client_of(SequenceGap) == []
    # Keepalive pings were answered, so the connection is still open on both sides.
    assert pair.server.state is ConnState.OPEN and pair.client.state is ClientState.OPEN
    assert len(pair.server_sent(SendPing)) == 3  # 25, 50, 75
    assert len(pair.server_of(PongReceived)) == 3
    assert pair.server.seq == 3 and pair.client.last_seq == 3


def test_custom_tick_interval_is_advertised_and_used():
    pair = open_pair(policy=ServerPolicy(tick_interval_ms=1_000, keepalive_interval_ms=None))
    assert hello_of(pair)["policy"]["tickIntervalMs"] == 1_000
    assert pair.client.tick_interval_ms == 1_000
    pair.advance(10.5)
    seqs = [e.seq for e in pair.client_of(EventReceived) if e.event == "tick"]
    assert seqs == list(range(1, 11))
    assert pair.client.state is ClientState.OPEN


def test_client_tick_watchdog_closes_4000_when_server_silent():
    pair = open_pair(policy=QUIET)
    assert pair.client.next_deadline() == pytest.approx(60.0)  # 2 x tickIntervalMs
    pair.advance(59.999)
    assert pair.client.state is ClientState.OPEN
    pair.advance(120.0)
    closes = [(t, a) for t, a in pair.client_actions if isinstance(a, CloseTransport)]
    assert closes == [(60.0, CloseTransport(4000, "tick timeout"))]
    (cterm,) = pair.client_of(ConnectionTerminated)
    assert (cterm.code, cterm.reason, cterm.by_peer) == (4000, "tick timeout", False)
    (sterm,) = pair.server_of(ConnectionTerminated)
    assert (sterm.code, sterm.reason, sterm.by_peer) == (4000, "tick timeout", True)
    assert pair.server.state is ConnState.CLOSED and pair.client.state is ClientState.CLOSED


def test_any_server_frame_feeds_the_client_watchdog():
    pair = open_pair(policy=QUIET)
    pair.advance(50.0)
    pair.server.publish("health", {"ok": True})
    pair.pump()
    pair.advance(100.0)
    assert pair.client.state is ClientState.OPEN
    pair.advance(111.0)
    assert pair.client.state is ClientState.CLOSED
    (term,) = pair.client_of(ConnectionTerminated)
    assert term.code == 4000


def test_server_keepalive_missing_pong_terminates():
    pair = open_pair(policy=ServerPolicy(auto_tick=False), answer_pings=False)
    pair.advance(24.9)
    assert pair.server_sent(SendPing) == []
    pair.advance(25.0)
    assert len(pair.server_sent(SendPing)) == 1
    assert pair.server.state is ConnState.OPEN
    pair.advance(49.9)
    assert pair.server.state is ConnState.OPEN
    pair.advance(50.0)
    terminates = [(t, a) for t, a in pair.server_actions if isinstance(a, Terminate)]
    assert terminates == [(50.0, Terminate())]
    assert pair.server_sent(CloseTransport) == []  # no close frame
    (sterm,) = pair.server_of(ConnectionTerminated)
    assert sterm.code == 1006 and sterm.by_peer is False
    (cterm,) = pair.client_of(ConnectionTerminated)
    assert cterm.code == 1006 and cterm.by_peer is True
    assert pair.server.next_deadline() is None


def test_server_keepalive_with_pongs_stays_open():
    pair = open_pair(policy=ServerPolicy(auto_tick=True))
    pair.advance(600.0)
    assert pair.server.state is ConnState.OPEN
    assert len(pair.server_sent(SendPing)) == 24
    assert pair.server_sent(Terminate) == []


# --------------------------------------------------------------------------- handshake deadlines


def test_handshake_timeout_closes_1000_empty_after_15s():
    server = ServerConnection(
        policy=ServerPolicy(), services=MemoryServices(), now=100.0, wall_ms=WALL0, nonce="n", conn_id="c"
    )
    (challenge,) = server.actions()
    assert isinstance(challenge, SendText)
    assert server.next_deadline() == pytest.approx(115.0)
    server.handle_timer(now=114.999, wall_ms=WALL0 + 14_999)
    assert server.actions() == []
    server.handle_timer(now=115.0, wall_ms=WALL0 + 15_000)
    assert server.actions() == [CloseTransport(1000, "")]
    assert server.state is ConnState.CLOSING
    # Later input is ignored; the close grace then terminates.
    server.receive_text('{"type":"req","id":"x","method":"connect"}', now=115.1, wall_ms=WALL0)
    assert server.actions() == []
    server.handle_timer(now=116.0, wall_ms=WALL0 + 16_000)
    assert server.actions() == [Terminate()]
    (term,) = server.events()
    assert isinstance(term, ConnectionTerminated) and (term.code, term.reason) == (1000, "")


def test_handshake_timeout_while_app_never_accepts():
    pair = Pair(auto_accept=False, connect_timeout_ms=30_000)
    assert pair.server.state is ConnState.AUTHENTICATING
    pair.advance(14.9)
    assert pair.server.state is ConnState.AUTHENTICATING
    pair.advance(20.0)
    closes = [(t, a) for t, a in pair.server_actions if isinstance(a, CloseTransport)]
    assert closes == [(15.0, CloseTransport(1000, ""))]
    (term,) = pair.client_of(ConnectionTerminated)
    assert (term.code, term.reason, term.by_peer) == (1000, "", True)
    # A late accept() after the close is tolerated (the connection is gone), not an error.
    pair.server.accept(snapshot(), now=pair.now, wall_ms=pair.wall_ms)
    assert pair.server.actions() == []


def test_client_connect_timeout_closes_1008_connect_failed():
    pair = Pair(auto_accept=False, connect_timeout_ms=5_000)
    pair.advance(10.0)
    closes = [(t, a) for t, a in pair.client_actions if isinstance(a, CloseTransport)]
    assert closes == [(5.0, CloseTransport(1008, "connect failed"))]
    (term,) = pair.client_of(ConnectionTerminated)
    assert term.code == 1008 and term.by_peer is False


# --------------------------------------------------------------------------- auth failures


def test_loopback_wrong_token_refusal_is_held_until_penalty_deadline():
    pair = Pair(params=connect_params(token="wrong"))
    assert pair.server.state is ConnState.AUTHENTICATING
    assert pair.server_of(HandshakeFailed) == []
    assert pair.client_of(ConnectFailed) == []
    deadline = pair.server.next_deadline()
    assert deadline is not None and deadline >= 0.25
    assert deadline == pytest.approx(0.25)
    # Accepting while a refusal is held is application misuse.
    with pytest.raises(LocalProtocolError):
        pair.server.accept(snapshot(), now=pair.now, wall_ms=pair.wall_ms)
    pair.advance(0.249)
    assert pair.client_of(ConnectFailed) == []
    pair.advance(1.0)
    (failed,) = pair.client_of(ConnectFailed)
    assert failed.error.code == "INVALID_REQUEST"
    assert failed.error.message == (
        "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)"
    )
    assert failed.error.details["code"] == "AUTH_TOKEN_MISMATCH"
    (term,) = pair.client_of(ConnectionTerminated)
    assert term.code == 1008 and term.reason == failed.error.message
    closes = [t for t, a in pair.server_actions if isinstance(a, CloseTransport)]
    assert closes == [pytest.approx(0.25)]
    # The response frame precedes the close.
    kinds = [type(a).__name__ for _, a in pair.server_actions]
    assert kinds[-2:] == ["SendText", "CloseTransport"]


def test_loopback_penalty_escalates_per_failure():
    services = MemoryServices()
    delays = []
    for i in range(4):
        pair = Pair(params=connect_params(token="wrong"), services=services, now=float(i * 10), nonce=f"n{i}")
        delays.append(round(pair.server.next_deadline() - pair.now, 6))
        pair.advance_by(10.0)
        assert pair.client_of(ConnectFailed)
    assert delays == [0.25, 0.5, 1.0, 2.0]
    # A success resets the counter.
    open_pair(services=services, now=100.0, nonce="ok")
    pair = Pair(params=connect_params(token="wrong"), services=services, now=200.0, nonce="again")
    assert pair.server.next_deadline() - pair.now == pytest.approx(0.25)


def test_sixteenth_frame_queued_during_penalty_closes_1008():
    pair = Pair(params=connect_params(token="wrong"))
    assert pair.server.state is ConnState.AUTHENTICATING
    frame = json.dumps({"type": "req", "id": "q", "method": "health"})
    for _ in range(15):
        pair.send_raw(frame)
    assert pair.server.state is ConnState.AUTHENTICATING
    assert pair.server_sent(CloseTransport) == []
    pair.send_raw(frame)
    assert pair.server_sent(CloseTransport) == [CloseTransport(1008, "too many pending handshake frames")]
    (term,) = pair.client_of(ConnectionTerminated)
    assert (term.code, term.reason) == (1008, "too many pending handshake frames")
    # The held refusal is abandoned: no error response ever follows, even past the deadline.
    pair.advance(5.0)
    assert pair.client_of(ConnectFailed) == []
    assert [f for f in pair.server_frames if f["type"] == "res"] == []


def test_rate_limiter_locks_out_remote_peer_even_with_right_token():
    services = MemoryServices()
    remote = PeerInfo(client_ip="1.2.3.4", is_loopback=False)
    mapped = PeerInfo(client_ip="::ffff:1.2.3.4", is_loopback=False)
    for i in range(10):
        peer = remote if i % 2 == 0 else mapped  # both forms count against one key
        pair = Pair(params=connect_params(token="wrong"), services=services, peer=peer, now=float(i), nonce=f"n{i}")
        (failed,) = pair.client_of(ConnectFailed)  # answered at once: no penalty for remote peers
        assert failed.error.details["code"] == "AUTH_TOKEN_MISMATCH"
        assert failed.error.message == (
            "unauthorized: gateway token mismatch (set gateway.remote.token to match gateway.auth.token)"
        )

    for peer in (remote, mapped):
        pair = Pair(params=connect_params(token=TOKEN), services=services, peer=peer, now=11.0, nonce="n-ok")
        assert pair.server.state is ConnState.CLOSED
        (failed,) = pair.client_of(ConnectFailed)
        err = failed.error
        assert err.details["code"] == "AUTH_RATE_LIMITED"
        assert err.details["authReason"] == "rate_limited"
        assert err.message == "unauthorized: too many failed authentication attempts (retry later)"
        assert err.retryable is True
        assert isinstance(err.retry_after_ms, int) and 0 < err.retry_after_ms <= 300_000
        (term,) = pair.client_of(ConnectionTerminated)
        assert term.code == 1008

    # A different address is not affected.
    other = open_pair(
        params=connect_params(token=TOKEN), services=services, peer=PeerInfo(client_ip="5.6.7.8", is_loopback=False)
    )
    assert other.server.principal.scopes == frozenset()  # remote cli: scopes cleared (§6.3 rule 4)


def test_rate_limit_lockout_expires():
    services = MemoryServices()
    remote = PeerInfo(client_ip="1.2.3.4", is_loopback=False)
    for i in range(10):
        Pair(params=connect_params(token="wrong"), services=services, peer=remote, nonce=f"n{i}")
    locked = Pair(params=connect_params(), services=services, peer=remote, now=299.0, nonce="a")
    assert locked.client_of(ConnectFailed)
    later = open_pair(params=connect_params(), services=services, peer=remote, now=301.0, nonce="b")
    assert later.server.principal is not None


def test_no_credentials_is_device_identity_required():
    pair = Pair(params=connect_params(token=None))
    (failed,) = pair.client_of(ConnectFailed)
    assert failed.error.code == "NOT_PAIRED"
    assert failed.error.message == "device identity required"
    (term,) = pair.client_of(ConnectionTerminated)
    assert (term.code, term.reason) == (1008, "device identity required")


# --------------------------------------------------------------------------- shutdown and back-pressure


def test_shutdown_sends_event_then_1012():
    pair = open_pair()
    pair.server.publish("tick", {"ts": 1})
    pair.server.begin_shutdown(now=pair.now, wall_ms=pair.wall_ms)
    pair.pump()
    relevant = [e for e in pair.client_events if isinstance(e, EventReceived | ConnectionTerminated)]
    assert [type(e).__name__ for e in relevant] == ["EventReceived", "EventReceived", "ConnectionTerminated"]
    shutdown, term = relevant[1], relevant[2]
    assert shutdown.event == "shutdown"
    assert shutdown.payload == {"reason": "gateway stopping"}
    assert shutdown.seq == 2
    assert (term.code, term.reason, term.by_peer) == (1012, "service restart", True)
    assert pair.server.state is ConnState.CLOSED


def test_restart_shutdown_carries_restart_expected_ms():
    pair = open_pair(params=connect_params(client_id="test", mode="test"))  # scope-less still gets it
    pair.server.begin_shutdown(now=pair.now, wall_ms=pair.wall_ms, restart_expected_ms=1500)
    pair.pump()
    (ev,) = [e for e in pair.client_of(EventReceived)]
    assert ev.payload == {"reason": "gateway restarting", "restartExpectedMs": 1500}
    (term,) = pair.client_of(ConnectionTerminated)
    assert term.code == 1012


def test_shutdown_before_accept_only_closes():
    pair = Pair(auto_accept=False)
    pair.server.begin_shutdown(now=pair.now, wall_ms=pair.wall_ms)
    pair.pump()
    assert pair.client_of(EventReceived) == []
    (term,) = pair.client_of(ConnectionTerminated)
    assert (term.code, term.reason) == (1012, "service restart")


def test_dropped_event_leaves_a_gap_the_client_reports():
    pair = open_pair(policy=QUIET)
    assert pair.server.publish("tick", {"ts": 1}) is PublishResult.SENT
    assert pair.server.publish("presence", {"presence": []}, congested=True, drop_if_slow=True) is (
        PublishResult.DROPPED
    )
    assert pair.server.publish("tick", {"ts": 2}) is PublishResult.SENT
    pair.pump()  # must not raise
    seqs = [e.seq for e in pair.client_of(EventReceived)]
    assert seqs == [1, 3]
    assert pair.client_of(SequenceGap) == [SequenceGap(expected=2, received=3)]
    assert pair.client.state is ClientState.OPEN
    assert pair.client.last_seq == 3


def test_congested_non_droppable_event_closes_slow_consumer():
    pair = open_pair(policy=QUIET)
    result = pair.server.publish("tick", {"ts": 1}, congested=True, drop_if_slow=False)
    assert result is PublishResult.CLOSED
    pair.pump()
    assert pair.client_of(EventReceived) == []
    (term,) = pair.client_of(ConnectionTerminated)
    assert (term.code, term.reason) == (1008, "slow consumer")
    assert pair.server.publish("tick", {"ts": 2}) is PublishResult.FILTERED


def test_scope_filtered_event_consumes_no_seq():
    pair = open_pair(params=connect_params(client_id="test", mode="test"), policy=QUIET)
    assert pair.server.publish("presence", {"presence": []}) is PublishResult.FILTERED
    assert pair.server.publish("bogus.event", {}) is PublishResult.FILTERED
    assert pair.server.publish("tick", {"ts": 1}) is PublishResult.SENT
    pair.pump()
    assert [e.seq for e in pair.client_of(EventReceived)] == [1]
    assert pair.client_of(SequenceGap) == []


# --------------------------------------------------------------------------- application misuse


def test_respond_to_unknown_id_raises_local_protocol_error():
    pair = open_pair()
    with pytest.raises(LocalProtocolError):
        pair.server.respond("never-asked", {})
    with pytest.raises(LocalProtocolError):
        pair.server.respond_error("never-asked", unavailable("x"))
    # The misuse left nothing on the wire and the connection usable.
    assert pair.server.actions() == []
    pair.request("health", request_id="h")
    assert [r.request_id for r in pair.client_of(ResponseReceived)] == ["h"]


def test_accept_twice_raises_local_protocol_error():
    pair = open_pair()
    with pytest.raises(LocalProtocolError):
        pair.server.accept(snapshot(), now=pair.now, wall_ms=pair.wall_ms)
    assert pair.server.actions() == []


def test_accept_before_connect_raises_local_protocol_error():
    server = ServerConnection(
        policy=ServerPolicy(), services=MemoryServices(), now=0.0, wall_ms=WALL0, nonce="n", conn_id="c"
    )
    with pytest.raises(LocalProtocolError):
        server.accept(snapshot(), now=0.0, wall_ms=WALL0)


def test_client_request_before_open_raises_and_duplicate_id_raises():
    pair = Pair(auto_accept=False)
    with pytest.raises(LocalProtocolError):
        pair.client.request("health", request_id="x")
    pair.server.accept(snapshot(), now=pair.now, wall_ms=pair.wall_ms)
    pair.pump()
    pair.client.request("health", request_id="x")
    with pytest.raises(LocalProtocolError):
        pair.client.request("health", request_id="x")


def test_respond_after_close_is_dropped_not_raised():
    held: list[RequestReceived] = []
    pair = open_pair(handler=lambda p, ev: held.append(ev))
    pair.request("health", request_id="h")
    pair.server.close(4001, "gateway auth changed", now=pair.now)
    assert pair.server.respond("h", {}) is False
    pair.pump()
    (sterm,) = pair.server_of(ConnectionTerminated)
    assert sterm.pending_request_ids == ("h",)
    (cterm,) = pair.client_of(ConnectionTerminated)
    assert (cterm.code, cterm.reason) == (4001, "gateway auth changed")
    assert cterm.pending_request_ids == ("h",)


# --------------------------------------------------------------------------- regressions


def test_late_keepalive_timer_gives_the_pong_a_full_interval():
    pair = open_pair(policy=ServerPolicy(auto_tick=False))
    server = pair.server
    # The shell was stalled and only gets to the 25 s deadline at t=60.
    server.handle_timer(now=60.0, wall_ms=WALL0 + 60_000)
    assert server.actions() == [SendPing(b"")]
    deadline = server.next_deadline()
    assert deadline is not None and deadline >= 60.0 + 25.0 - 1e-9
    server.handle_timer(now=60.001, wall_ms=WALL0 + 60_001)
    assert server.state is ConnState.OPEN
