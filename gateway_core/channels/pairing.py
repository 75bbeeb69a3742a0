"""DM pairing (§5.5, docs/channels/pairing.md) as pure functions over one channel's state.

A :class:`PairingState` holds one channel's pending requests (all accounts) and its approved
senders per account — what the published gateway keeps in the SQLite tables
``channel_pairing_requests`` and ``channel_pairing_allow_entries``, whose layout the host's store
uses unchanged, so the published ``openclaw pairing`` CLI and ours read and approve the same rows.
Each operation takes the state and returns the new state and its result; the host runs it inside
one write transaction (read, apply, write).

Rules: codes are 8 characters from :data:`ALPHABET` (no ``0 O 1 I``), unique among the channel's
pending codes; a request expires 1 hour after it was created; an account has at most 3 pending
requests (a 4th sender gets nothing until one expires or is approved); a sender who asks again
keeps the same code and is **not** sent it again (``created`` is False). Codes come in as
arguments (the host draws them from a CSPRNG), never from the core.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any, Final

from msgspec import Struct

from .timefmt import iso_from_ms, ms_from_iso

ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH: Final = 8
TTL_MS: Final = 3_600_000
MAX_PENDING: Final = 3


class Request(Struct, frozen=True, kw_only=True):
    """One pending request: ``id`` is the sender id (``4242``, ``alice!~a@host``)."""

    id: str
    code: str
    created_at: str
    last_seen_at: str
    meta: dict[str, str] = {}

    @property
    def account_id(self) -> str:
        return (self.meta.get("accountId") or "default").strip().lower() or "default"

    @property
    def created_ms(self) -> int:
        return ms_from_iso(self.created_at) or 0


class PairingState(Struct, kw_only=True):
    """One channel's pairing rows."""

    requests: list[Request] = []
    #: account id → approved sender ids, in approval order.
    allow: dict[str, list[str]] = {}


class Upserted(Struct, frozen=True):
    """``code`` is empty when the account already has :data:`MAX_PENDING` requests."""

    code: str
    created: bool


def is_code(text: str) -> bool:
    return len(text) == CODE_LENGTH and all(c in ALPHABET for c in text)


def account_key(account_id: str | None) -> str:
    return (account_id or "").strip().lower() or "default"


def request_id(channel: str, req: Request) -> str:
    """The opaque id the RPCs use (approve without showing the code), as published."""
    raw = f"{channel}\0{req.account_id}\0{req.id}\0{req.created_at}".encode()
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")[:32]


def _live(state: PairingState, now_ms: int) -> list[Request]:
    out = []
    for req in state.requests:
        created = ms_from_iso(req.created_at)
        if created is not None and now_ms - created <= TTL_MS:
            out.append(req)
    return out


def _cap(requests: list[Request]) -> list[Request]:
    """Keep at most MAX_PENDING per account (the most recently seen)."""
    by_account: dict[str, list[int]] = {}
    for i, req in enumerate(requests):
        by_account.setdefault(req.account_id, []).append(i)
    drop: set[int] = set()
    for idxs in by_account.values():
        if len(idxs) > MAX_PENDING:
            ordered = sorted(idxs, key=lambda i: ms_from_iso(requests[i].last_seen_at) or 0)
            drop.update(ordered[: len(idxs) - MAX_PENDING])
    return [r for i, r in enumerate(requests) if i not in drop]


def pending(state: PairingState, now_ms: int, account_id: str | None = None) -> list[Request]:
    """Live requests (optionally of one account), oldest first."""
    want = account_key(account_id) if account_id else None
    live = _cap(_live(state, now_ms))
    rows = [r for r in live if want is None or r.account_id == want]
    return sorted(rows, key=lambda r: (r.created_at, r.account_id, r.id))


def prune(state: PairingState, now_ms: int) -> bool:
    """Drop expired and over-cap requests in place; True when something was dropped."""
    kept = _cap(_live(state, now_ms))
    changed = len(kept) != len(state.requests)
    state.requests = kept
    return changed


def upsert(
    state: PairingState,
    *,
    account_id: str,
    sender_id: str,
    meta: dict[str, Any],
    now_ms: int,
    codes: Iterable[str],
) -> Upserted:
    """Create (or refresh) the request of ``sender_id``. ``codes``: candidate codes to pick from."""
    account = account_key(account_id)
    now = iso_from_ms(now_ms)
    clean = {k: str(v).strip() for k, v in meta.items() if v is not None and str(v).strip()}
    clean["accountId"] = account
    prune(state, now_ms)
    for i, req in enumerate(state.requests):
        if req.id == sender_id and req.account_id == account:
            state.requests[i] = Request(id=sender_id, code=req.code, created_at=req.created_at, last_seen_at=now, meta=clean)
            return Upserted(req.code, False)
    if sum(1 for r in state.requests if r.account_id == account) >= MAX_PENDING:
        return Upserted("", False)
    taken = {r.code.upper() for r in state.requests}
    for code in codes:
        if is_code(code) and code not in taken:
            state.requests.append(Request(id=sender_id, code=code, created_at=now, last_seen_at=now, meta=clean))
            return Upserted(code, True)
    raise ValueError("no unused pairing code among the candidates")


def _take(state: PairingState, now_ms: int, account_id: str | None, match: Any, approve: bool) -> Request | None:
    prune(state, now_ms)
    want = account_key(account_id) if account_id else None
    for i, req in enumerate(state.requests):
        if (want is None or req.account_id == want) and match(req):
            del state.requests[i]
            if approve:
                entries = state.allow.setdefault(req.account_id, [])
                if req.id not in entries:
                    entries.append(req.id)
            return req
    return None


def approve_code(state: PairingState, code: str, now_ms: int, account_id: str | None = None) -> Request | None:
    """Approve the request holding ``code`` (any case): its sender may DM from now on."""
    wanted = code.strip().upper()
    if not wanted:
        return None
    return _take(state, now_ms, account_id, lambda r: r.code.upper() == wanted, True)


def approve_request(state: PairingState, channel: str, rid: str, now_ms: int, account_id: str | None = None) -> Request | None:
    return _take(state, now_ms, account_id, lambda r: request_id(channel, r) == rid, True)


def dismiss_request(state: PairingState, channel: str, rid: str, now_ms: int, account_id: str | None = None) -> Request | None:
    """Remove a request without approving (the sender may ask again later)."""
    return _take(state, now_ms, account_id, lambda r: request_id(channel, r) == rid, False)


def approved(state: PairingState, account_id: str) -> list[str]:
    return list(state.allow.get(account_key(account_id), []))


def pairing_reply(channel: str, id_line: str, code: str) -> str:
    """The message an unknown sender gets (markdown; each channel renders it), as published."""
    return "\n".join(
        [
            "OpenClaw: access not configured.",
            "",
            id_line,
            "Pairing code:",
            "```",
            code,
            "```",
            "",
            "Ask the bot owner to approve with:",
            "```",
            f"openclaw pairing approve {channel} {code}",
            "```",
        ]
    )


def owner_entry(channel: str, sender_id: str) -> str:
    """The ``commands.ownerAllowFrom`` entry for an approved sender (``telegram:4242``)."""
    head, sep, _ = sender_id.partition(":")
    if sep and head.lower() == channel.lower():
        return sender_id
    return f"{channel}:{sender_id}"


def public_request(channel: str, label: str, id_label: str, req: Request, notify_supported: bool = True) -> dict[str, Any]:
    """A request as ``channels.pairing.list`` shows it (published shape)."""
    metadata = {k: v for k, v in req.meta.items() if k not in ("accountId", "senderId") and v}
    out: dict[str, Any] = {
        "requestId": request_id(channel, req),
        "channel": channel,
        "channelLabel": label,
        "accountId": req.account_id,
        "senderId": req.meta.get("senderId") or req.id,
        "senderLabel": id_label,
    }
    if metadata:
        out["metadata"] = metadata
    out.update(
        createdAt=req.created_at,
        lastSeenAt=req.last_seen_at,
        expiresAt=iso_from_ms(req.created_ms + TTL_MS),
        notifySupported=notify_supported,
    )
    return out


__all__ = [
    "ALPHABET",
    "CODE_LENGTH",
    "MAX_PENDING",
    "TTL_MS",
    "PairingState",
    "Request",
    "Upserted",
    "account_key",
    "approve_code",
    "approve_request",
    "approved",
    "dismiss_request",
    "is_code",
    "owner_entry",
    "pairing_reply",
    "pending",
    "prune",
    "public_request",
    "request_id",
    "upsert",
]
