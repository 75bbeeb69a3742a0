"""Persistent gateway state in the state dir: device pairings, device tokens, the gateway identity.

Implements gateway_core's ``GatewayServices`` for the live process. Everything is held in memory
and written through to small JSON files with atomic replaces (temp file, fsync, rename), so a
crash never leaves a half-written file and a restart finds every pairing and token again.
"""

from __future__ import annotations

import hmac
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from gateway_core.auth import AuthRateLimiter, RateLimitPolicy, SharedSecret
from gateway_core.device import DeviceKey
from gateway_core.services import Admission, DeviceToken, PairedDevice, PairingRequest, WriteBudget

from . import _runtime


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically (same-dir temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dfd = os.open(path.parent, os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


class GatewayIdentity:
    """The gateway's own Ed25519 identity (``gateway.identity.get``), created once and kept."""

    def __init__(self, state_dir: Path) -> None:
        path = state_dir / "identity" / "gateway.json"
        raw = _read_json(path)
        if isinstance(raw, dict) and isinstance(raw.get("seed"), str):
            self.key = DeviceKey.from_seed(bytes.fromhex(raw["seed"]))
        else:
            self.key = DeviceKey.from_seed(_runtime.new_seed())
            doc = {
                "version": 1,
                "deviceId": self.key.device_id,
                "publicKey": self.key.public_key,
                "seed": self.key.seed().hex(),
            }
            atomic_write(path, json.dumps(doc, indent=2).encode())

    def as_payload(self) -> dict[str, str]:
        return {"deviceId": self.key.device_id, "publicKey": self.key.public_key}


class PersistentServices:
    """``GatewayServices`` backed by ``<state>/devices/*.json``."""

    def __init__(
        self,
        state_dir: Path,
        secret: Callable[[], SharedSecret],
        rate_limit: RateLimitPolicy | None = None,
    ) -> None:
        self.dir = state_dir / "devices"
        self._secret = secret
        self.phase = Admission.STARTING
        self.rate_limiter = AuthRateLimiter(rate_limit)
        self.write_budget = WriteBudget()
        paired = _read_json(self.dir / "paired.json") or {}
        tokens = _read_json(self.dir / "tokens.json") or []
        self.devices: dict[str, PairedDevice] = {
            k: msgspec.convert(v, PairedDevice) for k, v in paired.items() if isinstance(v, dict)
        }
        self.tokens: dict[tuple[str, str], DeviceToken] = {}
        for item in tokens:
            tok = msgspec.convert(item, DeviceToken)
            self.tokens[(tok.device_id, tok.role)] = tok
        self.pairing_requests: dict[str, PairingRequest] = {}

    def _save_devices(self) -> None:
        data = {k: msgspec.to_builtins(v) for k, v in self.devices.items()}
        atomic_write(self.dir / "paired.json", json.dumps(data, indent=2).encode())

    def _save_tokens(self) -> None:
        data = [msgspec.to_builtins(v) for v in self.tokens.values()]
        atomic_write(self.dir / "tokens.json", json.dumps(data, indent=2).encode())

    # GatewayServices ------------------------------------------------------------

    def admission(self) -> Admission:
        return self.phase

    def shared_secret(self) -> SharedSecret:
        return self._secret()

    def get_device(self, device_id: str) -> PairedDevice | None:
        return self.devices.get(device_id)

    def save_device(self, device: PairedDevice) -> None:
        self.devices[device.device_id] = device
        self._save_devices()

    def request_pairing(self, request: PairingRequest) -> str:
        for existing in self.pairing_requests.values():
            if existing.device_id == request.device_id and existing.public_key == request.public_key:
                return existing.request_id
        request.request_id = _runtime.new_uuid()
        self.pairing_requests[request.request_id] = request
        return request.request_id

    def issue_device_token(self, device_id: str, role: str, scopes: list[str], now_ms: int) -> DeviceToken:
        current = self.tokens.get((device_id, role))
        if current is not None and sorted(current.scopes) == sorted(scopes):
            return current
        issued = DeviceToken(
            token=_runtime.new_token(), device_id=device_id, role=role, scopes=list(scopes), issued_at_ms=now_ms
        )
        self.tokens[(device_id, role)] = issued
        self._save_tokens()
        return issued

    def find_device_token(self, device_id: str, role: str, token: str) -> DeviceToken | None:
        current = self.tokens.get((device_id, role))
        if current is not None and hmac.compare_digest(current.token.encode(), token.encode()):
            return current
        return None
