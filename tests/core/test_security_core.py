"""The security rules of the core, in memory: origins, ingress attribution, the failed-auth limiter,
browser clients, the in-flight cap, lenient JSON and storage failures (issue 10 items 1, 2, 4, 5, 7, 9).

The live matrix (tests/test_security_matrix.py) checks the same rules over sockets, side by side
with the published gateway; these tests pin the decision tables without any I/O.
"""

from __future__ import annotations

import json

import pytest
from gwcore_harness import Pair, connect_params

from gateway_core import (
    ClientState,
    ConnectFailed,
    DeviceKey,
    HandshakeAuthenticated,
    MemoryServices,
    PeerInfo,
    ServerPolicy,
)
from gateway_core.auth import AuthRateLimiter, RateLimitPolicy
from gateway_core.events import ConnectionTerminated, RequestReceived
from gateway_core.ingress import attribute, parse_trusted_proxies
from gateway_core.origin import INVALID, NOT_ALLOWED, OriginPolicy, check_origin, parse_origin, seed_origins
from gateway_core.server import ConnState

P = 18789


def open_pair(**kw) -> Pair:  # type: ignore[no-untyped-def]
    pair = Pair(**kw)
    assert pair.server.state is ConnState.OPEN, pair.server_events
    assert pair.client.state is ClientState.OPEN, pair.client_events
    return pair


LOCAL = OriginPolicy(port=P)

ORIGIN_ROWS = [
    # origin, Host header, local client, policy, outcome
    (f"http://127.0.0.1:{P}", f"127.0.0.1:{P}", True, LOCAL, None),
    (f"http://localhost:{P}", f"127.0.0.1:{P}", True, LOCAL, None),
    (f"https://LOCALHOST:{P}", f"127.0.0.1:{P}", True, LOCAL, None),
    (f"http://[::1]:{P}", f"[::1]:{P}", True, LOCAL, None),
    (f"http://evil.example:{P}", f"evil.example:{P}", True, LOCAL, NOT_ALLOWED),  # DNS rebinding
    ("http://evil.example", f"127.0.0.1:{P}", True, LOCAL, NOT_ALLOWED),
    (f"http://127.0.0.1:{P + 1}", f"127.0.0.1:{P}", True, LOCAL, NOT_ALLOWED),  # stricter than published
    ("http://localhost", f"127.0.0.1:{P}", True, LOCAL, NOT_ALLOWED),  # port 80: stricter
    (f"http://localhost:{P}", f"127.0.0.1:{P}", False, LOCAL, NOT_ALLOWED),  # remote peer
    (f"http://192.168.1.10:{P}", f"192.168.1.10:{P}", False, LOCAL, None),  # private address literal
    (f"http://8.8.8.8:{P}", f"8.8.8.8:{P}", True, LOCAL, NOT_ALLOWED),
    (f"http://127.0.0.1:{P}", f"127.0.0.1:{P}", False, LOCAL, NOT_ALLOWED),
    (f"http://gw.local:{P}", f"gw.local:{P}", True, LOCAL, NOT_ALLOWED),  # stricter
    ("null", None, True, LOCAL, INVALID),
    (f"http://127.0.0.1:{P}/path", None, True, LOCAL, INVALID),
    (f"http://user@127.0.0.1:{P}", None, True, LOCAL, INVALID),
    ("https://ui.example/", None, False, OriginPolicy(allowed=("HTTPS://UI.example",)), None),
    ("https://ui.example:444", None, False, OriginPolicy(allowed=("https://ui.example",)), NOT_ALLOWED),
    ("https://any.example", None, False, OriginPolicy(allowed=("*",)), None),
    (f"http://evil.example:{P}", f"evil.example:{P}", False, OriginPolicy(host_header_fallback=True), None),
]


@pytest.mark.parametrize(("origin", "host", "local", "policy", "want"), ORIGIN_ROWS)
def test_origin_rules(origin: str, host: str | None, local: bool, policy: OriginPolicy, want: str | None) -> None:
    assert check_origin(origin, host_header=host, local=local, policy=policy) == want


def test_parse_origin_lowercases_and_keeps_the_port() -> None:
    got = parse_origin("HTTP://Example.COM:8080/")
    assert got is not None and (got.serialized, got.hostname, got.port) == (
        "http://example.com:8080",
        "example.com",
        8080,
    )
    assert parse_origin("") is None and parse_origin("example.com") is None


def test_seeding_for_non_loopback_binds() -> None:
    assert seed_origins("loopback", P) == ()
    assert seed_origins("lan", P) == (f"http://localhost:{P}", f"http://127.0.0.1:{P}")
    assert seed_origins("custom", P, "10.0.0.5")[-1] == f"http://10.0.0.5:{P}"


TRUSTED = parse_trusted_proxies(["127.0.0.1", "10.0.0.0/8", "not an ip"])

INGRESS_ROWS = [
    ("127.0.0.1", [], (), ("direct-local", "127.0.0.1")),
    ("::ffff:127.0.0.1", [], (), ("direct-local", "127.0.0.1")),
    ("127.0.0.1", [("x-forwarded-for", "203.0.113.7")], (), ("unattributable", "127.0.0.1")),
    ("127.0.0.1", [("x-forwarded-proto", "https")], (), ("unattributable", "127.0.0.1")),
    ("127.0.0.1", [("forwarded", "for=1.2.3.4")], (), ("unattributable", "127.0.0.1")),
    ("127.0.0.1", [("tailscale-user-login", "a@b")], (), ("unattributable", "127.0.0.1")),
    ("127.0.0.1", [("tailscale-other", "x")], (), ("direct-local", "127.0.0.1")),
    ("203.0.113.9", [], (), ("direct-remote", "203.0.113.9")),
    ("203.0.113.9", [("x-real-ip", "1.1.1.1")], (), ("unattributable", "203.0.113.9")),
    (
        "127.0.0.1",
        [("x-forwarded-for", "198.51.100.1, 10.1.2.3, 127.0.0.1")],
        TRUSTED,
        ("trusted-proxy", "198.51.100.1"),
    ),
    ("10.9.9.9", [("x-forwarded-for", "[2001:db8::1]:443")], TRUSTED, ("trusted-proxy", "2001:db8::1")),
    ("127.0.0.1", [("x-forwarded-for", "127.0.0.1")], TRUSTED, ("unattributable", "127.0.0.1")),
    ("127.0.0.1", [("x-real-ip", "203.0.113.9")], TRUSTED, ("unattributable", "127.0.0.1")),
]


@pytest.mark.parametrize(("peer", "headers", "trusted", "want"), INGRESS_ROWS)
def test_ingress_attribution(peer: str, headers: list[tuple[str, str]], trusted: tuple, want: tuple[str, str]) -> None:
    got = attribute(peer, headers, trusted)
    assert (got.kind, got.client_ip) == want


def test_real_ip_fallback_only_when_enabled() -> None:
    got = attribute("127.0.0.1", [("x-real-ip", "203.0.113.9")], TRUSTED, allow_real_ip_fallback=True)
    assert (got.kind, got.client_ip) == ("trusted-proxy", "203.0.113.9")


# --------------------------------------------------------------------------- item 1: the policy is used


def test_configured_limiter_is_kept_even_when_empty() -> None:
    """An empty limiter must not be swapped for the default one (it was falsy before)."""
    limiter = AuthRateLimiter(RateLimitPolicy(exempt_loopback=False, max_attempts=3))
    services = MemoryServices(rate_limiter=limiter)
    assert services.rate_limiter is limiter
    for i in range(3):
        (failed,) = Pair(
            params=connect_params(token="wrong"), services=services, now=float(i), nonce=f"n{i}"
        ).client_of(ConnectFailed)
        assert failed.error.details["authReason"] == "token_mismatch"
    (locked,) = Pair(params=connect_params(), services=services, now=4.0, nonce="n4").client_of(ConnectFailed)
    assert locked.error.details["code"] == "AUTH_RATE_LIMITED" and locked.error.retryable is True


# --------------------------------------------------------------------------- item 2: browsers


BROWSER = PeerInfo(client_ip="127.0.0.1", is_loopback=True, origin=f"http://127.0.0.1:{P}", host=f"127.0.0.1:{P}")


def test_browser_cli_gets_no_scopes() -> None:
    pair = open_pair(params=connect_params(scopes=["operator.admin"]), peer=BROWSER, policy=ServerPolicy(port=P))
    assert pair.server.principal is not None and pair.server.principal.scopes == frozenset()


def test_browser_failures_lock_out_without_the_loopback_exemption_keyed_by_origin() -> None:
    services = MemoryServices()
    policy = ServerPolicy(port=P)
    for i in range(10):
        pair = Pair(params=connect_params(token="wrong"), services=services, peer=BROWSER, policy=policy, nonce=f"n{i}")
        (failed,) = pair.client_of(ConnectFailed)  # answered at once: no loopback penalty for a page
        assert failed.error.details["authReason"] == "token_mismatch"
    (locked,) = Pair(params=connect_params(), services=services, peer=BROWSER, policy=policy, nonce="x").client_of(
        ConnectFailed
    )
    assert locked.error.details["authReason"] == "rate_limited"
    other = PeerInfo(client_ip="127.0.0.1", is_loopback=True, origin=f"http://localhost:{P}", host=f"127.0.0.1:{P}")
    assert open_pair(params=connect_params(), services=services, peer=other, policy=policy).server.principal
    assert open_pair(params=connect_params(), services=services).server.principal  # the CLI is not affected


# --------------------------------------------------------------------------- item 5: in-flight cap


def _requests(n: int, method: str = "logs.tail") -> list[str]:
    return [json.dumps({"type": "req", "id": f"q{i}", "method": method, "params": {"limit": 1}}) for i in range(n)]


def test_inflight_cap_answers_server_busy() -> None:
    pair = open_pair(params=connect_params(scopes=["operator.admin"]), handler=lambda p, ev: None)  # never answers
    for text in _requests(300):
        pair.send_raw(text)
    received = [e for e in pair.server_events if isinstance(e, RequestReceived)]
    assert len(received) == 257
    busy = [f for f in pair.server_frames if f.get("type") == "res" and f["id"] != "connect-1"]
    assert [f["id"] for f in busy] == [f"q{i}" for i in range(257, 300)]
    assert busy[0]["error"] == {
        "code": "UNAVAILABLE",
        "message": "The server is busy. Please try again in a moment.",
        "retryable": True,
    }
    # Answering frees a slot.
    pair.server.respond("q0", {"ok": True})
    pair.send_raw(_requests(1)[0].replace('"q0"', '"again"'))
    assert [e.request_id for e in pair.server_events if isinstance(e, RequestReceived)][-1] == "again"


def test_send_buffer_overflow_closes_slow_consumer() -> None:
    pair = open_pair(params=connect_params(), handler=lambda p, ev: None)
    pair.server.send_buffer_overflow(now=pair.now)
    pair.pump()
    assert pair.server.state in (ConnState.CLOSING, ConnState.CLOSED)
    (term,) = pair.client_of(ConnectionTerminated)
    assert (term.code, term.reason) == (1008, "slow consumer")


# --------------------------------------------------------------------------- item 7: storage


def test_pairing_the_application_could_not_keep_is_answered_unavailable() -> None:
    """The core decides a silent local pairing and a device token; the application must keep them
    before the hello. When its write fails it says so, and the connect is refused 1013."""
    key = DeviceKey.from_seed(b"\x11" * 32)
    pair = Pair(params=connect_params(scopes=["operator.read"]), device_key=key, auto_accept=False)
    (auth,) = pair.server_of(HandshakeAuthenticated)
    kinds = sorted(type(d).__name__ for d in auth.decisions)
    assert kinds == ["DeviceToken", "PairedDevice"]
    assert pair.services.get_device(key.device_id) is None  # the core changed nothing itself
    pair.server.refuse_storage(now=pair.now)
    pair.pump()
    (failed,) = pair.client_of(ConnectFailed)
    assert failed.error.code == "UNAVAILABLE" and failed.error.retryable is True
    assert failed.error.message == "gateway storage unavailable; retry later"
    (term,) = pair.client_of(ConnectionTerminated)
    assert (term.code, term.reason) == (1013, "gateway storage unavailable")


# --------------------------------------------------------------------------- item 9: lenient JSON


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ('{"type":"req","id":"a","method":"health","params":{"x":1e400}}', None),
        ('{"type":"req","id":"a","method":"logs.tail","params":{"limit":1e400}}', "invalid logs.tail params: at /limit: must be integer"),
        ('{"type":"req","id":"a","method":"health","params":{"x":' + "[" * 3000 + "]" * 3000 + "}}", "invalid request frame: JSON nesting too deep"),
        ('{"type":"req","id":"a","method":"health","params":{"x":"\\udc00"}}', "invalid request frame: unpaired UTF-16 surrogate in a string"),
    ],
    ids=["out of range", "out of range int", "too deep", "lone surrogate"],
)  # fmt: skip
def test_frames_the_fast_decoder_refuses_are_answered(text: str, answer: str | None) -> None:
    pair = open_pair(params=connect_params(scopes=["operator.admin"]))
    pair.send_raw(text)
    (res,) = [f for f in pair.server_frames if f.get("type") == "res" and f["id"] == "a"]
    if answer is None:
        assert res["ok"] is True
    else:
        assert res["ok"] is False and res["error"]["message"] == answer
    assert pair.server.state is ConnState.OPEN


def test_top_level_id_scan_is_bounded() -> None:
    """The id of a too-deep frame is looked for among a bounded number of tokens only."""
    from gateway_core import frames

    early = '{"type":"req","id":"x1","params":' + "[" * 5000 + "]" * 5000 + "}"
    assert frames.top_level_id(early) == "x1"
    late = '{"params":' + "[" * frames.TOP_LEVEL_SCAN_TOKENS + ',"id":"x2"}'
    assert frames.top_level_id(late) is None
    assert frames.may_have_lone_surrogate('"\\udfff"') and not frames.may_have_lone_surrogate('"\\u00e9"')
