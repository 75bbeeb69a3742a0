"""Pairings, device tokens and the gateway identity survive a restart (atomic files in the state dir)."""

from __future__ import annotations

import stat
from pathlib import Path

import trio

from gateway_core.auth import SharedSecret
from gateway_core.services import DeviceToken, PairedDevice
from gateway_trio.state import GatewayIdentity, PersistentServices, atomic_write


def test_pairings_and_tokens_persist(tmp_path: Path) -> None:
    secret = SharedSecret(mode="token", token="x")
    first = PersistentServices(tmp_path, lambda: secret)
    token = DeviceToken(token="tok-1", device_id="d1", role="operator", scopes=["operator.read"], issued_at_ms=1000)
    first.apply((PairedDevice(device_id="d1", public_key="pk", roles=["operator"], scopes=["operator.read"]), token))
    assert first.dirty and not (tmp_path / "devices" / "paired.json").exists()  # staged, not yet written
    trio.run(first.persist)
    assert not first.dirty
    again = PersistentServices(tmp_path, lambda: secret)
    assert again.get_device("d1") is not None and again.get_device("d1").scopes == ["operator.read"]
    assert again.find_device_token("d1", "operator", token.token) is not None
    assert again.find_device_token("d1", "operator", "forged") is None
    for name in ("paired.json", "tokens.json"):
        mode = (tmp_path / "devices" / name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600


def test_identity_is_stable(tmp_path: Path) -> None:
    a = GatewayIdentity(tmp_path).as_payload()
    b = GatewayIdentity(tmp_path).as_payload()
    assert a == b and len(a["deviceId"]) == 64


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]
