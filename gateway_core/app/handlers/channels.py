"""Channels family: ``channels.status`` (§5.6), ``channels.start|stop|logout``, the pairing methods,
``send`` and ``message.action`` (the published ``openclaw message send`` calls the latter).

The handlers read the channel state the host keeps in ``app.parts["channels"]`` and ask the host
for what needs the outside world: probes, account start/stop, pairing rows and outbox messages
(``gateway_core.channels.effects``). ``send`` is idempotent through the durable outbox: the
idempotency key names the outbox rows, so a repeated key (even after a restart) waits for the same
delivery instead of sending twice.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ... import errors as E
from ...channels import accounts as A
from ...channels import pairing as P
from ...channels.effects import AwaitDelivery, ChannelCall, ChannelControl, ChannelProbe
from ...channels.inbound import OutboundItem
from ...channels.rules import ChannelRules
from ...channels.state import ChannelsState, channels_state
from ...channels.status import ChannelView, issue, status_payload
from ...params import Params
from ..effects import Effect, EffectFailed
from ..gateway import Ctx
from ..router import Refused, routes

NonEmpty = Annotated[str, Meta(min_length=1)]
SEND_TIMEOUT_S: Final = 30.0
PROBE_TIMEOUT_MS: Final = 10_000
#: Fields of the default account copied into the channel summary (``channels.<id>``).
SUMMARY_FIELDS: Final = ("configured", "running", "lastStartAt", "lastStopAt", "lastError", "tokenSource", "probe", "lastProbeAt", "mode")


class ChannelOpParams(Params):
    channel: NonEmpty
    account_id: str | UnsetType = UNSET


class PairingListParams(Params):
    channel: NonEmpty | UnsetType = UNSET
    account_id: NonEmpty | UnsetType = UNSET


class PairingApproveParams(Params):
    channel: NonEmpty
    account_id: NonEmpty
    request_id: NonEmpty
    notify: bool | UnsetType = UNSET
    bootstrap_command_owner: bool | UnsetType = UNSET


class PairingDismissParams(Params):
    channel: NonEmpty
    account_id: NonEmpty
    request_id: NonEmpty


class MessageActionParams(Params):
    channel: NonEmpty
    action: NonEmpty
    params: dict[str, Any]
    idempotency_key: NonEmpty
    reply: Any | UnsetType = UNSET
    account_id: str | UnsetType = UNSET
    requester_account_id: str | UnsetType = UNSET
    requester_sender_id: str | UnsetType = UNSET
    sender_is_owner: bool | UnsetType = UNSET
    session_key: str | UnsetType = UNSET
    session_id: str | UnsetType = UNSET
    inbound_turn_kind: str | UnsetType = UNSET
    agent_id: str | UnsetType = UNSET
    tool_context: Any | UnsetType = UNSET
    conversation_read_origin: str | UnsetType = UNSET


def _convert(method: str, raw: Any, schema: type[Struct]) -> Any:
    try:
        return msgspec.convert({} if raw is None else raw, schema)
    except msgspec.ValidationError as exc:
        raise Refused(E.invalid_request(f"invalid {method} params: {exc}")) from None


def _rules(state: ChannelsState, channel: str) -> ChannelRules:
    rules = state.rules.get(channel)
    assert rules is not None
    return rules


def _listed_channels(app: Any, state: ChannelsState) -> list[str]:
    return [c for c in A.configured_channels(app.config) if state.known(c)]


# --------------------------------------------------------------------------- channels.status


def channels_status(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    app = ctx.app
    state = channels_state(app)
    wanted = p.channel.strip().lower() if p.channel is not UNSET and p.channel else None
    if wanted is not None and not state.known(wanted):
        raise Refused(E.invalid_request(f"unknown channel: {p.channel}"))
    order = [c for c in _listed_channels(app, state) if wanted is None or c == wanted]
    probes: dict[tuple[str, str], Any] = {}
    warnings: list[str] = []
    if p.probe is True:
        timeout = p.timeout_ms if p.timeout_ms is not UNSET else PROBE_TIMEOUT_MS
        targets = tuple(
            (c, acc)
            for c in order
            for acc in A.account_ids(A.section(app.config, c))
            if A.is_enabled(A.section(app.config, c), acc)
        )
        if targets:
            try:
                probes = yield ChannelProbe(targets, timeout)
            except EffectFailed as failure:
                warnings.append(f"probe failed: {failure.message}")
    views = []
    for channel in order:
        meta = state.meta(channel)
        sec = A.section(app.config, channel)
        accounts = []
        issues: list[dict[str, Any]] = []
        for acc in state.accounts_of(app.config, channel):
            snap = state.snapshot(app.config, channel, acc, ctx.wall_ms)
            snap_issues = snap.pop("issues", None) or []
            issues.extend(snap_issues)
            probe = probes.get((channel, acc))
            if probe is not None:
                snap["probe"] = probe
                snap["lastProbeAt"] = ctx.wall_ms
                state.patch(channel, acc, {"lastProbeAt": ctx.wall_ms})
                if isinstance(probe, dict) and not probe.get("ok") and not snap.get("lastError"):
                    snap["lastError"] = probe.get("error") or "probe failed"
            if snap.get("enabled") and snap.get("configured") and snap.get("lastError") and not snap.get("running"):
                issues.append(issue(channel, acc, "runtime", str(snap["lastError"])))
            accounts.append(snap)
        default = A.default_account_id(sec)
        dsnap = next((a for a in accounts if a["accountId"] == default), accounts[0] if accounts else {"configured": False})
        summary = {k: dsnap.get(k) for k in SUMMARY_FIELDS if k in dsnap}
        summary.setdefault("configured", False)
        views.append(ChannelView(meta=meta, default_account=default, accounts=accounts, summary=summary, issues=issues))
    return status_payload(ctx.wall_ms, views, warnings)


# --------------------------------------------------------------------------- start / stop / logout


def _op(ctx: Ctx, raw: Any, method: str, action: str) -> Generator[Effect, Any, Any]:
    p = _convert(method, raw, ChannelOpParams)
    state = channels_state(ctx.app)
    channel = p.channel.strip().lower()
    if not state.known(channel):
        raise Refused(E.invalid_request(f"unknown channel: {p.channel}" if action != "stop" else f"unknown channel {channel}"))
    if action == "logout":
        raise Refused(E.invalid_request(f"channel {channel} does not support logout"))
    sec = A.section(ctx.app.config, channel)
    account = p.account_id.strip().lower() if p.account_id is not UNSET and p.account_id.strip() else A.default_account_id(sec)
    try:
        result = yield ChannelControl(action, channel, account)
    except EffectFailed as failure:
        raise Refused(E.unavailable(failure.message)) from None
    return result


def channels_start(ctx: Ctx, raw: Any) -> Generator[Effect, Any, Any]:
    return (yield from _op(ctx, raw, "channels.start", "start"))


def channels_stop(ctx: Ctx, raw: Any) -> Generator[Effect, Any, Any]:
    return (yield from _op(ctx, raw, "channels.stop", "stop"))


def channels_logout(ctx: Ctx, raw: Any) -> Generator[Effect, Any, Any]:
    return (yield from _op(ctx, raw, "channels.logout", "logout"))


# --------------------------------------------------------------------------- pairing


def _pairing_accounts(ctx: Ctx, channel: str | None, account: str | None) -> list[tuple[str, str]]:
    """Configured accounts under ``dmPolicy: pairing`` (the only ones with requests)."""
    app = ctx.app
    state = channels_state(app)
    if channel is not None and (not state.known(channel) or not state.meta(channel).supports_pairing):
        raise Refused(E.invalid_request(f"unknown pairing channel: {channel}"))
    out = []
    for ch in _listed_channels(app, state):
        if (channel is not None and ch != channel) or not state.meta(ch).supports_pairing:
            continue
        for acc in A.account_ids(A.section(app.config, ch)):
            if account is not None and acc != account:
                continue
            if A.access_config(app.config, ch, acc).dm_policy == "pairing":
                out.append((ch, acc))
    return out


def _owners_configured(config: dict[str, Any]) -> bool:
    commands = config.get("commands") if isinstance(config.get("commands"), dict) else {}
    return bool([x for x in commands.get("ownerAllowFrom") or () if isinstance(x, str | int) and str(x).strip()])


def pairing_list(ctx: Ctx, raw: Any) -> Generator[Effect, Any, Any]:
    p = _convert("channels.pairing.list", raw, PairingListParams)
    state = channels_state(ctx.app)
    channel = p.channel.strip().lower() if p.channel is not UNSET else None
    account = p.account_id.strip().lower() if p.account_id is not UNSET else None
    accounts = _pairing_accounts(ctx, channel, account)
    requests: list[dict[str, Any]] = []
    for ch, acc in accounts:
        meta = state.meta(ch)
        pending = yield ChannelCall("pairing_pending", (ch, acc))
        requests += [P.public_request(ch, meta.label, meta.id_label, req) for req in pending]
    return {
        "accounts": [
            {"channel": ch, "channelLabel": state.meta(ch).label, "accountId": acc, "notifySupported": True} for ch, acc in accounts
        ],
        "requests": requests,
        "commandOwnerConfigured": _owners_configured(ctx.app.config),
        "limits": {"pendingPerAccount": P.MAX_PENDING, "ttlMs": P.TTL_MS},
    }


def _one_account(ctx: Ctx, channel: str, account: str) -> tuple[str, str]:
    accounts = _pairing_accounts(ctx, channel, account)
    if len(accounts) != 1:
        raise Refused(E.invalid_request(f"channel account does not use DM pairing: {channel}:{account}"))
    return accounts[0]


def pairing_approve(ctx: Ctx, raw: Any) -> Generator[Effect, Any, Any]:
    p = _convert("channels.pairing.approve", raw, PairingApproveParams)
    channel, account = _one_account(ctx, p.channel.strip().lower(), p.account_id.strip().lower())
    approved = yield ChannelCall("pairing_approve_request", (channel, account, p.request_id))
    if approved is None:
        raise Refused(E.invalid_request("pending DM access request no longer exists"))
    bootstrap = "not-requested"
    if p.bootstrap_command_owner is True:
        bootstrap = yield ChannelCall("bootstrap_owner", (channel, approved.id))
    notification = "not-requested"
    if p.notify is True:
        notification = "sent"
        try:
            yield from _queue_and_wait(ctx, [_approval_notice(ctx, channel, account, approved.id, f"pairing:{p.request_id}")])
        except Refused:
            notification = "failed"
    return {"requestId": p.request_id, "senderId": approved.meta.get("senderId") or approved.id,
            "notification": notification, "commandOwnerBootstrap": bootstrap}


APPROVED_NOTICE: Final = "\u2705 Access approved. You can message this bot now."


def _approval_notice(ctx: Ctx, channel: str, account: str, sender: str, key: str) -> OutboundItem:
    rules = _rules(channels_state(ctx.app), channel)
    target = sender.split("!", 1)[0] if channel == "irc" else sender
    text = rules.render(APPROVED_NOTICE, target, {})[0]
    return OutboundItem(channel=channel, account_id=account, target=target, text=text, key=key, kind="notice", parse_mode=rules.parse_mode)


def pairing_dismiss(ctx: Ctx, raw: Any) -> Generator[Effect, Any, Any]:
    p = _convert("channels.pairing.dismiss", raw, PairingDismissParams)
    channel, account = _one_account(ctx, p.channel.strip().lower(), p.account_id.strip().lower())
    dismissed = yield ChannelCall("pairing_dismiss_request", (channel, account, p.request_id))
    if dismissed is None:
        raise Refused(E.invalid_request("pending DM access request no longer exists"))
    return {"requestId": p.request_id, "senderId": dismissed.meta.get("senderId") or dismissed.id}


# --------------------------------------------------------------------------- send


def _resolve_channel(ctx: Ctx, requested: str | None) -> str:
    app = ctx.app
    state = channels_state(app)
    if requested:
        channel = requested.strip().lower()
        if channel == "webchat":
            raise Refused(E.invalid_request("webchat is an internal channel: send through chat.send instead"))
        if not state.known(channel) or A.section(app.config, channel) is None:
            raise Refused(E.invalid_request(f"unsupported channel: {requested}"))
        return channel
    configured = _listed_channels(app, state)
    if len(configured) != 1:
        raise Refused(E.invalid_request("channel is required (more than one channel is configured)" if configured else "unsupported channel: none configured"))
    return configured[0]


def _queue_and_wait(ctx: Ctx, items: list[OutboundItem], timeout_s: float = SEND_TIMEOUT_S) -> Generator[Effect, Any, list[dict[str, Any]]]:
    """Queue ``items`` (idempotent by key) and wait for their delivery; the rows as they settled."""
    yield ChannelCall("outbox_put", (items,))
    rows = yield AwaitDelivery(tuple(i.key for i in items), timeout_s)
    settled = [rows.get(i.key) or {"state": "pending"} for i in items]
    failed = next((r for r in settled if r.get("state") in ("failed", "unknown")), None)
    if failed is not None:
        raise Refused(E.unavailable(f"send failed: {failed.get('error') or failed.get('state')}"))
    if any(r.get("state") != "sent" for r in settled):
        raise Refused(
            E.unavailable("send did not complete in time; the message stays queued and will be delivered",
                          {"code": "OUTBOUND_DELIVERY_QUEUED"}, retryable=True)
        )
    return settled


def _send_items(ctx: Ctx, channel: str, account_id: str | None, to: str, text: str, key: str, thread: str | None) -> list[OutboundItem]:
    app = ctx.app
    rules = _rules(channels_state(app), channel)
    sec = A.section(app.config, channel)
    account = account_id.strip().lower() if account_id and account_id.strip() else A.default_account_id(sec)
    if account not in A.account_ids(sec):
        raise Refused(E.invalid_request(f"unknown account for {channel}: {account}"))
    target = to.strip()
    if channel == "telegram":
        from ...channels.telegram import parse_target

        target, topic = parse_target(target)
        thread = thread or topic
    chunks = rules.render(text, target, A.account_config(sec, account))
    if not chunks:
        raise Refused(E.invalid_request("invalid send params: text or media is required"))
    return [
        OutboundItem(channel=channel, account_id=account, target=target, text=chunk, key=f"send:{key}:{i}", kind="send",
                     group=f"send:{key}", index=i, count=len(chunks), thread_id=thread, parse_mode=rules.parse_mode)
        for i, chunk in enumerate(chunks)
    ]


def send(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    text = p.message if p.message is not UNSET else ""
    has_media = any(x is not UNSET and x for x in (p.media_url, p.media_urls, p.buffer))
    if not text.strip() and not has_media:
        raise Refused(E.invalid_request("invalid send params: text or media is required"))
    if not text.strip():
        raise Refused(E.invalid_request("invalid send params: media sends are not supported by this gateway"))
    channel = _resolve_channel(ctx, p.channel if p.channel is not UNSET else None)
    items = _send_items(ctx, channel, p.account_id if p.account_id is not UNSET else None, p.to, text, p.idempotency_key,
                        p.thread_id if p.thread_id is not UNSET else None)
    settled = yield from _queue_and_wait(ctx, items)
    out: dict[str, Any] = {"runId": p.idempotency_key, "messageId": settled[-1].get("messageId"), "channel": channel}
    out["chatId" if channel == "telegram" else "conversationId"] = items[0].target
    return out


def message_action(ctx: Ctx, raw: Any) -> Generator[Effect, Any, Any]:
    """``message.action`` with ``action: "send"`` (what ``openclaw message send`` calls)."""
    p = _convert("message.action", raw, MessageActionParams)
    if p.action != "send":
        raise Refused(E.invalid_request(f"message action {p.action} is not supported by this gateway"))
    channel = _resolve_channel(ctx, p.channel)
    args = p.params
    to = args.get("to") or args.get("target")
    text = args.get("message") if isinstance(args.get("message"), str) else args.get("text")
    if not isinstance(to, str) or not to.strip():
        raise Refused(E.invalid_request("invalid message.action params: target is required"))
    if not isinstance(text, str) or not text.strip():
        raise Refused(E.invalid_request("invalid message.action params: text or media is required"))
    account = p.account_id if p.account_id is not UNSET else args.get("accountId")
    thread = args.get("threadId") if isinstance(args.get("threadId"), str) else None
    items = _send_items(ctx, channel, account if isinstance(account, str) else None, to, text, p.idempotency_key, thread)
    settled = yield from _queue_and_wait(ctx, items)
    mid = settled[-1].get("messageId")
    out: dict[str, Any] = {"ok": True, "messageId": mid}
    out["chatId" if channel == "telegram" else "conversationId"] = items[0].target
    out["receipt"] = {}
    return out


ROUTES = routes(
    "channels",
    [
        ("channels.status", channels_status),
        ("channels.start", channels_start),
        ("channels.stop", channels_stop),
        ("channels.logout", channels_logout),
        ("channels.pairing.list", pairing_list),
        ("channels.pairing.approve", pairing_approve),
        ("channels.pairing.dismiss", pairing_dismiss),
        ("send", send),
        ("message.action", message_action),
    ],
)
