"""Device identity proofs (protocol.md §6.4): Ed25519 keys, v3/v2 signature payloads, checks.

Pure computation: the challenge nonce and ``now_ms`` are arguments; nothing here reads a clock
or generates randomness (signing with a caller-supplied key is deterministic for Ed25519).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from msgspec import UNSET, Struct

from .constants import DEVICE_SIGNATURE_SKEW_MS
from .errors import INVALID_REQUEST, error
from .frames import ConnectAuth, DeviceProof, ErrorShape


def b64url(data: bytes) -> str:
    """Unpadded base64url, the wire form of keys and signatures."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64_any(text: str) -> bytes:
    """Decode base64url or standard base64, padded or not."""
    t = text.strip().replace("-", "+").replace("_", "/")
    t += "=" * (-len(t) % 4)
    return base64.b64decode(t, validate=True)


def raw_public_key(text: str) -> bytes | None:
    """The raw 32-byte key from base64url/base64 or a PEM SPKI block; ``None`` if not canonical."""
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                return None
            return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        raw = _b64_any(text)
    except Exception:  # noqa: BLE001 - any unparsable or unsupported key is simply "not canonical"
        return None
    return raw if len(raw) == 32 else None


def device_id_for(raw_key: bytes) -> str:
    """Device id = lowercase hex SHA-256 of the raw public key."""
    return hashlib.sha256(raw_key).hexdigest()


def _norm(value: str | None) -> str:
    return (value or "").strip().encode("ascii", "ignore").decode().lower() if value else ""


def signature_payload(
    version: str,
    *,
    device_id: str,
    client_id: str,
    client_mode: str,
    role: str,
    scopes: list[str],
    signed_at: int,
    token: str,
    nonce: str,
    platform: str | None = None,
    device_family: str | None = None,
) -> str:
    """The UTF-8 string a device signs: ``v3|…|platform|family`` or ``v2|…|nonce``."""
    parts = [version, device_id, client_id, client_mode, role, ",".join(scopes), str(signed_at), token, nonce]
    if version == "v3":
        parts += [_norm(platform), _norm(device_family)]
    return "|".join(parts)


def proof_token(auth: ConnectAuth | None) -> str:
    """``auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? ""`` (the signed token)."""
    if auth is None:
        return ""
    for value in (auth.token, auth.device_token, auth.bootstrap_token):
        if value is not UNSET and value is not None:
            return value
    return ""


class DeviceCheck(Struct, frozen=True):
    """A failed device check: its message, details code and reason (§6.4 table)."""

    message: str
    code: str
    reason: str

    def to_error(self) -> ErrorShape:
        return error(INVALID_REQUEST, self.message, {"code": self.code, "reason": self.reason})


ID_MISMATCH: Final = DeviceCheck("device identity mismatch", "DEVICE_AUTH_DEVICE_ID_MISMATCH", "device-id-mismatch")
EXPIRED: Final = DeviceCheck("device signature expired", "DEVICE_AUTH_SIGNATURE_EXPIRED", "device-signature-stale")
NONCE_REQUIRED: Final = DeviceCheck("device nonce required", "DEVICE_AUTH_NONCE_REQUIRED", "device-nonce-missing")
NONCE_MISMATCH: Final = DeviceCheck("device nonce mismatch", "DEVICE_AUTH_NONCE_MISMATCH", "device-nonce-mismatch")
SIGNATURE_INVALID: Final = DeviceCheck("device signature invalid", "DEVICE_AUTH_SIGNATURE_INVALID", "device-signature")
PUBLIC_KEY_INVALID: Final = DeviceCheck(
    "device public key invalid", "DEVICE_AUTH_PUBLIC_KEY_INVALID", "device-public-key"
)


def verify_proof(
    device: DeviceProof,
    *,
    challenge_nonce: str,
    now_ms: int,
    client_id: str,
    client_mode: str,
    role: str,
    scopes: list[str],
    auth: ConnectAuth | None,
    platform: str | None,
    device_family: str | None,
) -> DeviceCheck | None:
    """Run the §6.4 checks in order; ``None`` when the proof is good."""
    raw = raw_public_key(device.public_key)
    if raw is not None and device_id_for(raw) != device.id:
        return ID_MISMATCH
    if abs(now_ms - device.signed_at) > DEVICE_SIGNATURE_SKEW_MS:
        return EXPIRED
    if not device.nonce.strip():
        return NONCE_REQUIRED
    if device.nonce != challenge_nonce:
        return NONCE_MISMATCH
    if raw is None:
        return PUBLIC_KEY_INVALID
    try:
        signature = _b64_any(device.signature)
    except (ValueError, binascii.Error):
        return SIGNATURE_INVALID
    key = Ed25519PublicKey.from_public_bytes(raw)
    common = dict(
        device_id=device.id,
        client_id=client_id,
        client_mode=client_mode,
        role=role,
        scopes=scopes,
        signed_at=device.signed_at,
        token=proof_token(auth),
        nonce=device.nonce,
    )
    for version in ("v3", "v2"):
        payload = signature_payload(version, platform=platform, device_family=device_family, **common)  # type: ignore[arg-type]
        try:
            key.verify(signature, payload.encode())
            return None
        except InvalidSignature:
            continue
    return SIGNATURE_INVALID


class DeviceKey:
    """A device's Ed25519 key pair, for clients (the CLI, tests, the conformance runner)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.device_id = device_id_for(self.public_raw)
        self.public_key = b64url(self.public_raw)

    @classmethod
    def from_seed(cls, seed: bytes) -> DeviceKey:
        """Build from a 32-byte seed (the caller supplies the randomness, or a fixed test seed)."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        """The 32-byte private seed, for persisting the identity."""
        return self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def sign(self, payload: str) -> str:
        """base64url signature of ``payload``."""
        return b64url(self._key.sign(payload.encode()))

    def proof(
        self,
        *,
        nonce: str,
        signed_at: int,
        client_id: str,
        client_mode: str,
        role: str = "operator",
        scopes: list[str] | None = None,
        token: str = "",
        platform: str | None = None,
        device_family: str | None = None,
        version: str = "v3",
    ) -> DeviceProof:
        """A complete ``connect.params.device`` object signed over ``nonce``."""
        payload = signature_payload(
            version,
            device_id=self.device_id,
            client_id=client_id,
            client_mode=client_mode,
            role=role,
            scopes=scopes or [],
            signed_at=signed_at,
            token=token,
            nonce=nonce,
            platform=platform,
            device_family=device_family,
        )
        return DeviceProof(
            id=self.device_id,
            public_key=self.public_key,
            signature=self.sign(payload),
            signed_at=signed_at,
            nonce=nonce,
        )


__all__ = [
    "DeviceCheck",
    "DeviceKey",
    "b64url",
    "device_id_for",
    "proof_token",
    "raw_public_key",
    "signature_payload",
    "verify_proof",
]
