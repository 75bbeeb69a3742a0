"""One connect attempt decided (protocol.md §3.2 rows 7-14, §6): admission, protocol range, role,
browser origin, device proof, shared secret or device token, the missing-device rules, pairing.

Pure and stateless beyond the attempt: a :class:`Handshake` reads the connection's peer facts, the
policy and the read-only services view, and returns the :class:`~gateway_core.events.Principal`
or raises the refusal. What admitting the client requires the application to keep (a pairing, a
new device token) is collected in :attr:`Handshake.decisions`; a new pairing request in
:attr:`Handshake.pairing_requested`. :class:`~gateway_core.server.ServerConnection` owns the
connection's state machine and turns these into events, answers and close codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec
from msgspec import UNSET

from . import constants as C
from . import scopes as S
from .auth import SHARED_SECRET_CLASS as RATE_LIMIT_SCOPE
from .auth import AuthRateLimiter, check_shared_secret, failure_error
from .device import verify_proof
from .errors import NOT_PAIRED, RemoteProtocolError, error, invalid_request, unavailable
from .events import Principal
from .frames import ConnectParams
from .origin import INVALID, OriginPolicy, check_origin, is_browser_client
from .services import Admission, DeviceToken, GatewayServices, PairedDevice, PairingRequest

if TYPE_CHECKING:
    from .server import PeerInfo, ServerPolicy

CONTROL_UI_CLIENTS: Final = frozenset({"openclaw-control-ui", "openclaw-tui"})
#: Pairing reasons → the requirement text of "pairing required: <requirement>" (§6.6).
PAIRING_REQUIREMENTS: Final = {
    "not-paired": "device is not approved yet",
    "role-upgrade": "device is asking for a higher role than currently approved",
    "scope-upgrade": "device is asking for more scopes than currently approved",
    "metadata-upgrade": "device identity changed and must be re-approved",
}


def _protocol_ok(p: ConnectParams, role: str) -> bool:
    """§5: the accepted version ranges."""
    lo, hi = p.min_protocol, p.max_protocol
    if lo <= C.PROTOCOL_VERSION <= hi:
        return True
    if p.client.mode == "probe" and hi >= C.MIN_PROBE_PROTOCOL_VERSION and lo <= C.PROTOCOL_VERSION:
        return True
    return role == "node" and p.client.mode == "node" and lo <= C.MIN_NODE_PROTOCOL_VERSION <= hi


def _owner_profile(method: str | None, role: str, mode: str) -> str | None:
    """Shared-secret operators (not cli/probe/backend) act as the gateway owner's profile."""
    if method in ("token", "password") and role == "operator" and mode not in ("cli", "probe", "backend"):
        return "gateway-owner"
    return None


def _norm(value: str | None) -> str:
    return (value or "").strip().lower()


class HeldRefusal(Exception):
    """A failed-auth refusal the limiter wants answered only after ``delay_ms`` (loopback penalty)."""

    def __init__(self, refusal: RemoteProtocolError, delay_ms: int) -> None:
        super().__init__()
        self.refusal = refusal
        self.delay_ms = delay_ms


class Handshake:
    """The decision for one ``connect`` (see the module docstring)."""

    def __init__(
        self, *, peer: PeerInfo, policy: ServerPolicy, services: GatewayServices, nonce: str, conn_id: str
    ) -> None:
        self.peer = peer
        self.policy = policy
        self.services = services
        self.nonce = nonce
        self.conn_id = conn_id
        #: What the application must persist before it accepts (see HandshakeAuthenticated).
        self.decisions: list[PairedDevice | DeviceToken] = []
        #: A new pairing request this attempt raised (the connect itself is refused).
        self.pairing_requested: PairingRequest | None = None

    def decide(self, p: ConnectParams, wall_ms: int) -> Principal:
        """The admitted identity, or :class:`RemoteProtocolError` / :class:`HeldRefusal`."""
        role = p.role if p.role is not UNSET else "operator"
        admission = self.services.admission()
        if admission is Admission.STARTING and role != "node":  # row 7
            raise RemoteProtocolError(
                unavailable(
                    "gateway starting; retry shortly",
                    {"reason": "startup-sidecars"},
                    retryable=True,
                    retry_after_ms=500,
                ),
                C.CLOSE_TRY_AGAIN_LATER,
                "gateway starting",
            )
        if admission in (Admission.RESTARTING, Admission.SUSPENDING, Admission.DRAINING):  # row 7b
            word = "suspension" if admission is Admission.SUSPENDING else "restart"
            admission = Admission.RESTARTING if admission is Admission.DRAINING else admission
            raise RemoteProtocolError(
                unavailable(
                    f"connect unavailable during gateway {word}",
                    {"method": "connect", "reason": f"gateway-{word}", "phase": admission.value},
                    retryable=True,
                    retry_after_ms=1000,
                ),
                C.CLOSE_TRY_AGAIN_LATER,
                f"gateway {word} in progress",
            )
        if not _protocol_ok(p, role):  # row 8
            raise RemoteProtocolError(
                invalid_request(
                    "protocol mismatch",
                    {
                        "code": "PROTOCOL_MISMATCH",
                        "clientMinProtocol": p.min_protocol,
                        "clientMaxProtocol": p.max_protocol,
                        "expectedProtocol": C.PROTOCOL_VERSION,
                        "minimumProbeProtocol": C.MIN_PROBE_PROTOCOL_VERSION,
                    },
                ),
                C.CLOSE_PROTOCOL_ERROR,
                "protocol mismatch",
            )
        if role not in ("operator", "node"):  # row 9
            raise RemoteProtocolError(invalid_request("invalid role"), C.CLOSE_POLICY_VIOLATION)
        origin = self.peer.browser_origin
        if origin is not None:
            refused = self._origin_refusal(origin)
        else:  # the published UI and webchat clients are checked as browsers even without an Origin
            refused = INVALID if is_browser_client(p.client.id, p.client.mode) else None
        if refused is not None:  # row 10
            raise RemoteProtocolError(
                invalid_request(
                    "origin not allowed (open the Control UI from the gateway host or allow it in "
                    "gateway.controlUi.allowedOrigins)",
                    {"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason": refused},
                ),
                C.CLOSE_POLICY_VIOLATION,
            )
        return self._authenticate(p, role, wall_ms)

    def _origin_refusal(self, origin: str) -> str | None:
        """Why a browser ``origin`` may not connect (see gateway_core.origin), or ``None``."""
        policy = self.policy
        return check_origin(
            origin,
            host_header=self.peer.host,
            local=self.peer.local,
            policy=OriginPolicy(
                allowed=policy.allowed_origins,
                host_header_fallback=policy.host_header_origin_fallback,
                port=policy.port,
            ),
        )

    def _auth_failure(self, reason: str, p: ConnectParams, wall_ms: int, **kw: Any) -> RemoteProtocolError:
        """A failed attempt, counted; the refusal to raise, or :class:`HeldRefusal` when the
        limiter wants the answer held back."""
        limiter: AuthRateLimiter = self.services.rate_limiter
        delay = limiter.record_failure(RATE_LIMIT_SCOPE, self.peer.client_ip, wall_ms, origin=self.peer.browser_origin)
        err = failure_error(reason, client_id=p.client.id, client_mode=p.client.mode, local=self.peer.local, **kw)
        refusal = RemoteProtocolError(err, C.CLOSE_POLICY_VIOLATION)
        if delay > 0:
            raise HeldRefusal(refusal, delay)
        return refusal

    def _authenticate(self, p: ConnectParams, role: str, wall_ms: int) -> Principal:
        """§6: device proof, shared secret / device token, missing-device rules, pairing."""
        peer = self.peer
        requested = list(p.scopes) if p.scopes is not UNSET else []
        auth = p.auth if p.auth is not UNSET else None
        device = p.device if p.device is not UNSET else None
        platform = p.client.platform
        family = p.client.device_family if p.client.device_family is not UNSET else None
        if device is not None:
            check = verify_proof(
                device,
                challenge_nonce=self.nonce,
                now_ms=wall_ms,
                client_id=p.client.id,
                client_mode=p.client.mode,
                role=role,
                scopes=requested,
                auth=auth,
                platform=platform,
                device_family=family,
            )
            if check is not None:  # row 12
                raise RemoteProtocolError(check.to_error(), C.CLOSE_POLICY_VIOLATION)

        limiter: AuthRateLimiter = self.services.rate_limiter
        secret = self.services.shared_secret()
        outcome = check_shared_secret(secret, auth)
        method = outcome.method
        reason = outcome.reason
        token_record = None
        device_token_given = auth.device_token if auth is not None and auth.device_token is not UNSET else None
        if device is not None and (
            device_token_given or (not outcome.ok and outcome.presented and secret.mode == "token")
        ):
            candidate = device_token_given or (auth.token if auth is not None and auth.token is not UNSET else None)
            if candidate:
                token_record = self.services.find_device_token(device.id, role, candidate)
                if token_record is not None:
                    if not all(S.satisfies(token_record.scopes, s) for s in requested):
                        reason, outcome_ok = "scope_mismatch", False
                    else:
                        method, reason, outcome_ok = "device-token", None, True
                    outcome = msgspec.structs.replace(outcome, ok=outcome_ok, method=method, reason=reason)
                elif device_token_given and not outcome.ok:
                    reason = "device_token_mismatch"
                    outcome = msgspec.structs.replace(outcome, reason=reason, presented=True)

        presented = outcome.presented or device is not None
        browser = peer.browser_origin
        retry = limiter.retry_after_ms(RATE_LIMIT_SCOPE, peer.client_ip, wall_ms, origin=browser)
        if retry is not None and presented:
            raise self._auth_failure("rate_limited", p, wall_ms, retry_after_ms=retry)

        granted: list[str]
        if device is None:
            cid, cmode = p.client.id, p.client.mode
            if cid == "gateway-client" and cmode == "backend" and peer.local and browser is None and outcome.ok:
                granted = requested  # §6.3 rule 2
            elif cid in CONTROL_UI_CLIENTS:  # rule 3
                raise RemoteProtocolError(
                    invalid_request(
                        "control ui requires device identity (use HTTPS or localhost secure context)",
                        {"code": "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"},
                    ),
                    C.CLOSE_POLICY_VIOLATION,
                )
            elif role == "operator" and outcome.ok and method in ("token", "password", "trusted-proxy"):
                # Rule 4: only the local CLI keeps what it asks for; a browser page never does.
                keep = cid == "cli" and cmode == "cli" and peer.local and browser is None
                granted = requested if keep else []
            elif outcome.presented and not outcome.ok:  # rule 5
                raise self._auth_failure(reason or "unauthorized", p, wall_ms)
            else:  # rule 6
                raise RemoteProtocolError(
                    error(NOT_PAIRED, "device identity required", {"code": "DEVICE_IDENTITY_REQUIRED"}),
                    C.CLOSE_POLICY_VIOLATION,
                )
            limiter.record_success(RATE_LIMIT_SCOPE, peer.client_ip, origin=browser)
            return self._principal(p, role, granted, method)

        if not outcome.ok:  # row 13
            can_retry = (
                reason == "token_mismatch"
                and auth is not None
                and auth.token is not UNSET
                and device_token_given is None
            )
            raise self._auth_failure(reason or "unauthorized", p, wall_ms, can_retry_with_device_token=can_retry)
        limiter.record_success(RATE_LIMIT_SCOPE, peer.client_ip, origin=browser)
        self._pair(p, device.id, device.public_key, role, requested, method or "none", wall_ms)
        if token_record is None:
            token_record = self._device_token(device.id, role, requested, wall_ms)
        return self._principal(p, role, requested, method, device.id, token_record)

    def _device_token(self, device_id: str, role: str, scopes: list[str], wall_ms: int) -> DeviceToken:
        """The device's token for ``role``: the current one when its scopes match, else a new one
        (a decision the application persists before it accepts)."""
        current = self.services.current_token(device_id, role)
        if current is not None and sorted(current.scopes) == sorted(scopes):
            return current
        issued = DeviceToken(
            token=self.services.new_id("devtok"), device_id=device_id, role=role, scopes=list(scopes), issued_at_ms=wall_ms
        )
        self.decisions.append(issued)
        return issued

    def _principal(
        self,
        p: ConnectParams,
        role: str,
        granted: list[str],
        method: str | None,
        device_id: str | None = None,
        token: DeviceToken | None = None,
    ) -> Principal:
        """The server-granted identity of an admitted connection."""
        return Principal(
            conn_id=self.conn_id,
            role=role,
            scopes=frozenset(granted),
            scope_list=tuple(dict.fromkeys(granted)),
            auth_method=method or "none",
            client=p.client,
            client_ip=self.peer.client_ip,
            local=self.peer.local,
            caps=tuple(p.caps) if p.caps is not UNSET else (),
            device_id=device_id,
            device_token=token.token if token is not None else None,
            device_token_issued_at_ms=token.issued_at_ms if token is not None else None,
            profile_id=_owner_profile(method, role, p.client.mode),
        )

    def _pair(
        self, p: ConnectParams, device_id: str, public_key: str, role: str, scopes: list[str], method: str, wall_ms: int
    ) -> None:
        """§6.6 row 14: silent local pairing and upgrades, else ``pairing required``."""
        peer = self.peer
        # A browser origin on a direct-local connection is silently paired only for the Control UI
        # and webchat clients (the origin check already admitted it), as published; other browser
        # clients need approval.
        browser_ok = (
            peer.browser_origin is None
            or p.client.id in CONTROL_UI_CLIENTS
            or is_browser_client(p.client.id, p.client.mode)
        )
        local = peer.local and browser_ok and self.policy.auto_approve_local_pairing
        family = p.client.device_family if p.client.device_family is not UNSET else ""
        record = self.services.get_device(device_id)
        requirement: str | None
        if record is None or record.public_key != public_key:
            requirement = "not-paired"
        elif record.platform and (_norm(record.platform), _norm(record.device_family)) != (
            _norm(p.client.platform),
            _norm(family),
        ):
            requirement = "metadata-upgrade"
        elif role not in record.roles:
            requirement = "role-upgrade"
        elif not all(S.satisfies(record.scopes, s) for s in scopes):
            requirement = "scope-upgrade"
        else:
            return
        auto = local and (requirement != "scope-upgrade" or method in ("none", "token", "password"))
        if auto:
            roles = sorted(set(record.roles if record and requirement != "not-paired" else []) | {role})
            merged = sorted(set(record.scopes if record and requirement != "not-paired" else []) | set(scopes))
            self.decisions.append(
                PairedDevice(
                    device_id=device_id,
                    public_key=public_key,
                    roles=roles,
                    scopes=merged,
                    platform=p.client.platform,
                    device_family=family,
                    client_id=p.client.id,
                    client_mode=p.client.mode,
                    display_name=p.client.display_name if p.client.display_name is not UNSET else "",
                    paired_at_ms=wall_ms,
                )
            )
            return
        known = self.services.pending_request(device_id, public_key)
        request_id = known.request_id if known is not None else self.services.new_id("pair")
        if known is None:
            request = PairingRequest(
                request_id=request_id,
                device_id=device_id,
                public_key=public_key,
                role=role,
                scopes=scopes,
                client_id=p.client.id,
                client_mode=p.client.mode,
                remote_ip=peer.client_ip,
                ts=wall_ms,
                platform=p.client.platform,
                device_family=family,
                display_name=p.client.display_name if p.client.display_name is not UNSET else "",
                reason=requirement,
            )
            self.pairing_requested = request
        message = f"pairing required: {PAIRING_REQUIREMENTS[requirement]}"
        details: dict[str, Any] = {
            "code": "PAIRING_REQUIRED",
            "reason": requirement,
            "requestId": request_id,
            "remediationHint": "approve this device from a paired operator (openclaw devices approve)",
            "deviceId": device_id,
            "requestedRole": role,
            "requestedScopes": scopes,
        }
        if record is not None:
            details["approvedRoles"] = record.roles
            details["approvedScopes"] = record.scopes
        raise RemoteProtocolError(
            error(NOT_PAIRED, message, details), C.CLOSE_POLICY_VIOLATION, f"{message} (requestId: {request_id})"
        )


__all__ = ["CONTROL_UI_CLIENTS", "PAIRING_REQUIREMENTS", "RATE_LIMIT_SCOPE", "Handshake", "HeldRefusal"]
