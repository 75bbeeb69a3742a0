"""Browser origins and browser pairing on the handshake (protocol.md §3.2 row 10, §6.6).

The rules were checked against the published gateway (2026.9.6, live): a Control UI on loopback
with its Origin is paired silently; a Control UI sending no Origin is refused ("origin missing or
invalid"); a foreign origin is refused; a same-origin page on a public host name needs the
allowlist. (The origin rules themselves are tested row by row in tests/core/test_security_core.py
and, against both gateways, in tests/test_security_matrix.py.)
"""

from __future__ import annotations

from gwcore_harness import Pair, connect_params

from gateway_core import ConnState, DeviceKey, MemoryServices, PeerInfo, ServerPolicy

ADMIN = ["operator.admin", "operator.read", "operator.write", "operator.pairing"]


def _ui_pair(origin: str | None, host: str = "127.0.0.1:18789", *, loopback: bool = True, **kw) -> Pair:
    key = DeviceKey.from_seed(b"\x11" * 32)
    return Pair(
        params=connect_params(client_id="openclaw-control-ui", mode="webchat", scopes=ADMIN),
        device_key=key,
        peer=PeerInfo(client_ip="127.0.0.1" if loopback else "192.168.1.9", is_loopback=loopback, origin=origin, host=host),
        **kw,
    )


def _refusal(pair: Pair) -> dict:
    res = [f for f in pair.server_frames if f.get("type") == "res"]
    assert res and res[-1]["ok"] is False, pair.server_frames
    return res[-1]["error"]


def test_control_ui_on_loopback_with_its_origin_is_paired_silently() -> None:
    services = MemoryServices()
    pair = _ui_pair("http://127.0.0.1:18789", services=services)
    assert pair.server.state is ConnState.OPEN, pair.server_frames
    assert pair.server.principal is not None and sorted(pair.server.principal.scopes) == sorted(ADMIN)
    assert len(services.devices) == 1 and not services.pairing_requests


def test_other_clients_with_a_browser_origin_still_need_approval() -> None:
    services = MemoryServices()
    pair = Pair(
        params=connect_params(client_id="cli", mode="cli", scopes=ADMIN),
        device_key=DeviceKey.from_seed(b"\x12" * 32),
        peer=PeerInfo(origin="http://127.0.0.1:18789", host="127.0.0.1:18789"),
        services=services,
    )
    assert _refusal(pair)["details"]["code"] == "PAIRING_REQUIRED"
    (request,) = services.pairing_requests.values()
    assert request.client_id == "cli" and request.platform == "linux" and request.reason == "not-paired"


def test_control_ui_without_an_origin_is_refused() -> None:
    error = _refusal(_ui_pair(None))
    assert error["details"] == {"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason": "origin missing or invalid"}


def test_a_public_same_origin_host_needs_the_allowlist() -> None:
    error = _refusal(_ui_pair("https://gw.example.com", "gw.example.com", loopback=False))
    assert error["details"]["reason"] == "origin not allowed"
    allowed = ServerPolicy(allowed_origins=("https://gw.example.com",))
    pair = _ui_pair("https://gw.example.com", "gw.example.com", loopback=False, policy=allowed)
    # Admitted by origin; a remote browser then waits for approval.
    assert _refusal(pair)["details"]["code"] == "PAIRING_REQUIRED"


def test_no_silent_pairing_when_auto_approve_local_is_off() -> None:
    pair = _ui_pair("http://127.0.0.1:18789", policy=ServerPolicy(auto_approve_local_pairing=False))
    assert _refusal(pair)["details"]["code"] == "PAIRING_REQUIRED"
