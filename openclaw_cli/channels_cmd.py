"""``openclaw channels list|status``, ``openclaw message send``, ``openclaw pairing list|approve``.

``channels list`` is the local inventory, as published: the configured accounts of each channel
this gateway can run (``--all``: every supported channel, and configured sections no plugin here
serves). ``--json`` reads only the config; the human form also asks a reachable gateway
(``channels.status``, best effort) so an account the gateway runs shows its live snapshot.

``channels status`` asks the gateway (``channels.status``, ``--probe`` for live checks) and prints
one line per account in the published format; when the gateway cannot be reached it prints a
config-only summary instead, as the runbook says (exit 0 either way).

``message send`` goes through the gateway (``send``, idempotent: the CLI picks the key) and
prints ``✅ Sent via <channel>. Message ID: <id>``.

``pairing`` works on the local state, like the published CLI: the pairing rows live in the
shared state database (``<state>/state/openclaw.sqlite``, the published table layout), so it works
whether or not the gateway runs, and against the published gateway's state as well. The first
approval makes the sender the command owner (``commands.ownerAllowFrom``) when none exists.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Annotated, Any

from cyclopts import App, Parameter

from .rpc_cmds import Json, Password, Port, Timeout, Token, Url, _rpc
from .style import Style
from .target import CliFailure, read_config, resolve_target

DOCS_TIP = "Tip: https://docs.openclaw.ai/cli/status adds gateway health probes to status output (requires a reachable gateway)."
NO_CHANNELS = "- no configured chat channels (run `openclaw channels list --all` to see installable channels)"


# --------------------------------------------------------------------------- formatting


def time_ago(ms: float) -> str:
    """As published: ``just now``, ``5m ago``, ``3h ago``, ``2d ago``."""
    if ms < 0:
        return "unknown"
    minutes = round(round(ms / 1000) / 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes}m ago"
    hours = round(minutes / 60)
    if hours < 48:
        return f"{hours}h ago"
    return f"{round(hours / 24)}d ago"


def _state_bits(account: dict[str, Any]) -> list[str]:
    bits = []
    if isinstance(account.get("enabled"), bool):
        bits.append("enabled" if account["enabled"] else "disabled")
    if isinstance(account.get("configured"), bool):
        bits.append("configured" if account["configured"] else "not configured")
    if isinstance(account.get("linked"), bool):
        bits.append("linked" if account["linked"] else "not linked")
    if isinstance(account.get("stateReason"), str) and account["stateReason"]:
        bits.append(f"reason:{account['stateReason']}")
    if isinstance(account.get("lastError"), str) and account["lastError"]:
        bits.append(f"error:{account['lastError']}")
    return bits


def account_line(label: str, account: dict[str, Any], now_ms: int, *, live: bool) -> str:
    """One ``- <Label> <account>: bits`` line (the published order of bits)."""
    bits = _state_bits(account)
    if live:
        if isinstance(account.get("running"), bool):
            bits.append("running" if account["running"] else "stopped")
        if isinstance(account.get("connected"), bool):
            bits.append("connected" if account["connected"] else "disconnected")
        for key, name in (("lastInboundAt", "in"), ("lastOutboundAt", "out"), ("lastTransportActivityAt", "transport")):
            if isinstance(account.get(key), int) and account[key]:
                bits.append(f"{name}:{time_ago(now_ms - account[key])}")
    if isinstance(account.get("mode"), str) and account["mode"]:
        bits.append(f"mode:{account['mode']}")
    if live:
        probe = account.get("probe") if isinstance(account.get("probe"), dict) else {}
        bot = account.get("bot") if isinstance(account.get("bot"), dict) else probe.get("bot") if isinstance(probe.get("bot"), dict) else {}
        name = str(bot.get("username") or account.get("botUsername") or "").strip()
        if name:
            bits.append(f"bot:{name if name.startswith('@') else '@' + name}")
    source = account.get("tokenSource")
    if isinstance(source, str) and source and source != "none":
        bits.append("token:***")  # as the published CLI prints it (the source stays in --json)
    if live and isinstance(account.get("healthState"), str) and account["healthState"] not in ("healthy", "unmanaged"):
        bits.append(f"health:{account['healthState']}")
    if isinstance(account.get("baseUrl"), str) and account["baseUrl"]:
        bits.append(f"url:{account['baseUrl']}")
    if live and isinstance(account.get("probe"), dict) and isinstance(account["probe"].get("ok"), bool):
        bits.append("works" if account["probe"]["ok"] else "probe failed")
    name = f" ({account['name']})" if isinstance(account.get("name"), str) and account["name"].strip() else ""
    return f"- {label} {account.get('accountId') or 'default'}{name}: {', '.join(bits)}"


def gateway_lines(payload: dict[str, Any]) -> list[str]:
    now = int(time.time() * 1000)
    lines = ["Gateway reachable."]
    warnings = [w for w in payload.get("warnings") or () if isinstance(w, str) and w.strip()]
    if payload.get("partial") is True or warnings:
        lines.append("Channel status is partial:")
        lines += [f"- {w[:500]}" for w in warnings[:50]]
        lines.append("")
    labels = payload.get("channelLabels") or {}
    accounts = payload.get("channelAccounts") or {}
    start = len(lines)
    for channel in sorted(accounts):
        for account in accounts[channel] or ():
            lines.append(account_line(labels.get(channel, channel), account, now, live=True))
    if len(lines) == start:
        lines.append(NO_CHANNELS)
    lines.append("")
    issues = [i for i in payload.get("statusIssues") or () if isinstance(i, dict)]
    if issues:
        lines.append("Warnings:")
        lines += [f"- {i.get('channel')} {i.get('accountId')}: {i.get('message')}{' (' + i['fix'] + ')' if i.get('fix') else ''}" for i in issues]
        lines.append("- Run: openclaw doctor")
        lines.append("")
    lines.append(DOCS_TIP)
    return lines


def _plugins() -> dict[str, Any]:
    from gateway_trio.channels import registry

    return registry.load()


def config_lines(cfg: dict[str, Any], path: str, reason: str) -> list[str]:
    """The config-only summary (no gateway): what is configured, from the config and the env."""
    import os

    from gateway_core.channels import accounts as A

    mode = "remote" if (cfg.get("gateway") or {}).get("mode") == "remote" else "local"
    lines = [reason, f"Config: {path}", f"Mode: {mode}", ""]
    start = len(lines)
    plugins = _plugins()
    env = dict(os.environ)
    for channel in A.configured_channels(cfg):
        plugin = plugins.get(channel)
        if plugin is None:
            continue
        sec = A.section(cfg, channel)
        for account_id in A.account_ids(sec):
            snap = {"accountId": account_id, "enabled": A.is_enabled(sec, account_id)}
            snap.update({k: v for k, v in plugin.inspect(cfg, account_id, env).items() if k != "issues"})
            lines.append(account_line(plugin.rules.meta.label, snap, 0, live=False))
    if len(lines) == start:
        lines.append(NO_CHANNELS)
    lines += ["", DOCS_TIP]
    return lines


# --------------------------------------------------------------------------- channels list

LIST_FOOTER = (
    "Model provider usage moved out of `channels list` \u2014 see `openclaw status` or `openclaw models list`.",
    "Docs: https://docs.openclaw.ai/gateway/configuration",
)


def inventory_line(label: str, account: dict[str, Any], st: Style) -> str:
    """One ``- <Label> <account> (name): installed, configured, enabled, …`` line of ``channels list``."""
    bits = [st.ok("installed")]
    if isinstance(account.get("configured"), bool):
        bits.append(st.ok("configured") if account["configured"] else st.warn("not configured"))
    bits.append(st.error("disabled") if account.get("enabled") is False else st.ok("enabled"))
    if isinstance(account.get("linked"), bool):
        bits.append(st.ok("linked") if account["linked"] else st.warn("not linked"))
    for key, name in (("tokenSource", "token"), ("botTokenSource", "bot"), ("appTokenSource", "app")):
        if isinstance(account.get(key), str) and account[key]:
            bits.append(f"{name}=***")  # the published CLI prints the source masked, whatever it is
    if isinstance(account.get("baseUrl"), str) and account["baseUrl"]:
        bits.append(f"base={st.muted(account['baseUrl'])}")
    name = f" ({account['name']})" if isinstance(account.get("name"), str) and account["name"].strip() else ""
    return f"- {st.accent(label)} {st.heading(account.get('accountId') or 'default')}{name}: {', '.join(bits)}"


def _live_accounts() -> dict[str, list[dict[str, Any]]]:
    """The gateway's account snapshots by channel (``channels.status``), or nothing when it is not
    reachable or this CLI has no credentials for it: the list never depends on the gateway."""
    try:
        target = resolve_target(url=None, port=None, token=None, password=None, method="channels.status")
        payload = _rpc(target, "channels.status", {"probe": False, "timeoutMs": 5000}, scopes=["operator.read"], timeout_ms=5000)
    except CliFailure:
        return {}
    accounts = (payload or {}).get("channelAccounts") if isinstance(payload, dict) else None
    if not isinstance(accounts, dict):
        return {}
    return {c: [a for a in rows if isinstance(a, dict) and isinstance(a.get("accountId"), str)]
            for c, rows in accounts.items() if isinstance(rows, list)}


def _valid_config(json_: bool) -> dict[str, Any] | int:
    """The config, or the exit status of a reported refusal (unreadable or invalid: exit 78)."""
    from gateway_core.config import validate_config

    try:
        paths, cfg = read_config(strict=True)
    except CliFailure as fail:
        return fail.report(json_)
    issues = validate_config(cfg)
    if not issues:
        return cfg
    message = f"OpenClaw config is invalid: {paths.config_path}"
    if json_:
        print(json.dumps({"ok": False, "error": {"type": "config_invalid", "message": message},
                          "issues": [{"path": i.path, "message": i.message} for i in issues]}, indent=2))
    else:
        lines = [message, *(f"- {i.path}: {i.message}" for i in issues), "Fix: openclaw doctor --fix",
                 "Inspect: openclaw config validate"]
        print("\n".join(lines), file=sys.stderr)
    return 78


def channels_list(
    *,
    all_: Annotated[bool, Parameter(name="--all", help="Also every supported channel that has no configured account yet.")] = False,
    json_: Json = False,
) -> int:
    """List chat channels (configured accounts by default; --all adds every supported channel).

    Read from the config (--json never contacts the gateway); the human form shows a reachable
    gateway's live snapshot of the accounts it runs. Use `openclaw channels status --probe` for
    live checks.
    """
    import os

    from gateway_core.channels import accounts as A

    cfg = _valid_config(json_)
    if isinstance(cfg, int):
        return cfg
    plugins = _plugins()
    configured = A.configured_channels(cfg)
    if json_:
        chat: dict[str, Any] = {}
        for cid, plugin in plugins.items():
            ids = plugin.account_ids(cfg)
            if ids or all_:
                chat[cid] = {"accounts": ids, "label": plugin.rules.meta.label, "docsPath": f"/channels/{cid}",
                             "installed": True, "origin": "configured" if ids else "available"}
        for cid in configured:
            if cid not in plugins:
                chat[cid] = {"accounts": [], "label": cid, "installed": False, "origin": "configured"}
        print(json.dumps({"chat": chat}, indent=2))
        return 0
    st = Style.for_stdout()
    live = _live_accounts()
    env = dict(os.environ)
    lines = [st.heading("Chat channels:")]
    for cid, plugin in plugins.items():
        ids = plugin.account_ids(cfg)
        if not ids and not all_:
            continue
        sec = A.section(cfg, cid)
        running = live.get(cid, [])
        for account_id in dict.fromkeys([*(ids or [A.DEFAULT_ACCOUNT]), *(a["accountId"] for a in running if ids)]):
            snap = next((a for a in running if a["accountId"] == account_id), None)
            if snap is None:
                snap = {"accountId": account_id, "enabled": A.is_enabled(sec, account_id),
                        "name": A.account_config(sec, account_id).get("name")}
                snap.update({k: v for k, v in plugin.inspect(cfg, account_id, env).items() if k != "issues"})
            lines.append(inventory_line(plugin.rules.meta.label, snap, st))
    for cid in configured:
        if cid not in plugins:
            lines.append(f"- {st.accent(cid)}: {st.warn('not installed')}, {st.ok('configured')}, {st.error('disabled')}")
    if len(lines) == 1:
        lines.append(st.muted("- no chat channels found" if all_ else NO_CHANNELS))
    print("\n".join([*lines, "", st.muted(LIST_FOOTER[0]), LIST_FOOTER[1]]))
    return 0


# --------------------------------------------------------------------------- channels status


def channels_status(
    *,
    probe: Annotated[bool, Parameter(help="Ask each channel account for a live check.")] = False,
    channel: Annotated[str | None, Parameter(help="Only this channel.")] = None,
    url: Url = None,
    port: Port = None,
    token: Token = None,
    password: Password = None,
    timeout: Timeout = 10000,
    json_: Json = False,
) -> int:
    """Status of the configured chat channels (RPC ``channels.status``); config-only when the gateway is down."""
    params: dict[str, Any] = {}
    if probe:
        params["probe"] = True
        params["timeoutMs"] = timeout
    if channel:
        params["channel"] = channel
    try:
        target = resolve_target(url=url, port=port, token=token, password=password, method="channels.status")
        if probe and not json_:
            print("Checking channel status (probe)\u2026", flush=True)
        payload = _rpc(target, "channels.status", params, scopes=["operator.read"], timeout_ms=timeout + 5000,
                       prefix="Channels status failed: ")
    except CliFailure as fail:
        if fail.envelope.get("error", {}).get("type") not in ("gateway_transport_error", "gateway_credentials_required"):
            return fail.report(json_)
        return _fallback(fail, json_, channel)
    if json_:
        print(json.dumps(payload, indent=2))
        return 0
    print("\n".join(gateway_lines(payload)))
    return 0


def _fallback(fail: CliFailure, json_: bool, channel: str | None) -> int:
    from gateway_core.channels import accounts as A

    paths, cfg = read_config()
    auth = fail.envelope.get("error", {}).get("type") == "gateway_credentials_required"
    error = fail.envelope.get("error", {}).get("message") or fail.text
    if json_:
        configured = [c for c in A.configured_channels(cfg) if c in _plugins() and (channel is None or c == channel)]
        print(json.dumps({
            "gatewayReachable": False, "error": error, "gatewayAuthUnavailable": auth, "configOnly": True,
            "config": {"path": str(paths.config_path), "mode": "remote" if (cfg.get("gateway") or {}).get("mode") == "remote" else "local"},
            "configuredChannels": configured,
        }, indent=2))
        return 0
    print(f"{'Gateway auth unavailable' if auth else 'Gateway not reachable'}: {error}", file=sys.stderr)
    reason = f"{'Gateway auth unavailable' if auth else 'Gateway not reachable'}; showing config-only status."
    print("\n".join(config_lines(cfg, str(paths.config_path), Style.for_stdout().warn(reason))))
    return 0


# --------------------------------------------------------------------------- message send

message_app = App(name="message", help="Send messages through the gateway's channels.", help_epilogue="Docs: https://docs.openclaw.ai/cli/message")


@message_app.command(name="send")
def message_send(
    *,
    channel: Annotated[str | None, Parameter(help="Channel id (telegram, irc, …).")] = None,
    target: Annotated[str, Parameter(help="Chat id, nick or #channel.")],
    message: Annotated[str, Parameter(help="Text to send.")],
    account: Annotated[str | None, Parameter(help="Account id (multi-account channels).")] = None,
    thread_id: Annotated[str | None, Parameter(help="Thread or topic id.")] = None,
    idempotency_key: Annotated[str | None, Parameter(help="Reuse a key to make a retry safe.")] = None,
    url: Url = None,
    token: Token = None,
    password: Password = None,
    timeout: Timeout = 30000,
    json_: Json = False,
) -> int:
    """Send a message through a channel (RPC ``send``)."""
    key = idempotency_key or str(uuid.uuid4())
    params: dict[str, Any] = {"to": target, "message": message, "idempotencyKey": key}
    if channel:
        params["channel"] = channel
    if account:
        params["accountId"] = account
    if thread_id:
        params["threadId"] = thread_id
    try:
        gw = resolve_target(url=url, port=None, token=token, password=password, method="send")
        result = _rpc(gw, "send", params, scopes=["operator.write"], timeout_ms=timeout, prefix="Message send failed: ")
    except CliFailure as fail:
        return fail.report(json_)
    used = (result or {}).get("channel") or channel or ""
    mid = (result or {}).get("messageId")
    if json_:
        print(json.dumps({"action": "send", "channel": used, "dryRun": False, "handledBy": "gateway", "messageId": mid,
                          "payload": result}, indent=2))
        return 0
    print(f"\u2705 Sent via {used}.{f' Message ID: {mid}' if mid else ''}")
    return 0


# --------------------------------------------------------------------------- pairing

pairing_app = App(name="pairing", help="Secure DM pairing (approve inbound requests).", help_epilogue="Docs: https://docs.openclaw.ai/cli/pairing")


def _pairing_channels() -> list[str]:
    return [cid for cid, p in _plugins().items() if p.rules.meta.supports_pairing]


def _configured_pairing_channels(cfg: dict[str, Any]) -> list[str]:
    from gateway_core.channels import accounts as A

    known = _pairing_channels()
    return [c for c in A.configured_channels(cfg) if c in known and (A.section(cfg, c) or {}).get("enabled") is not False]


def _channel(raw: str | None, known: list[str]) -> str:
    value = (raw or "").strip().lower()
    if not value:
        raise CliFailure("Missing channel. Use openclaw pairing list --channel <channel>.", {})
    if value not in known:
        raise CliFailure(f'Channel "{value}" does not support pairing. Supported pairing channels: {", ".join(known) or "none"}.', {})
    return value


def _account(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not raw.strip():
        raise CliFailure("--account must not be blank", {})
    return raw.strip().lower()


def _store() -> Any:
    from gateway_trio.channels.store import ChannelStore

    paths, _ = read_config()
    return ChannelStore(paths.state_dir, now_ms=lambda: int(time.time() * 1000))


def _fail(fail: CliFailure) -> int:
    print(fail.text, file=sys.stderr)
    return fail.code


@pairing_app.command(name="list")
def pairing_list(
    channel_arg: Annotated[str | None, Parameter(name="CHANNEL", help="Channel id.")] = None,
    /,
    *,
    channel: Annotated[str | None, Parameter(help="Channel id.")] = None,
    account: Annotated[str | None, Parameter(help="Account id (multi-account channels).")] = None,
    json_: Json = False,
) -> int:
    """List pending pairing requests."""
    from gateway_core.channels.rules import BUILTIN

    _, cfg = read_config()
    known = _pairing_channels()
    configured = _configured_pairing_channels(cfg)
    try:
        raw = channel or channel_arg or (configured[0] if len(configured) == 1 else "")
        if not raw:
            if not configured:
                raise CliFailure("No chat DM pairing channels are configured. To approve a TUI or device request, use openclaw devices approve instead.", {})
            raise CliFailure(f"Channel required (expected one of: {', '.join(configured)}).", {})
        name = _channel(raw, known)
        if channel and channel_arg and _channel(channel_arg, known) != name:
            raise CliFailure(f'Conflicting pairing channels: "{name}" and "{channel_arg.lower()}". Pass the channel either positionally or with --channel.', {})
        acc = _account(account)
    except CliFailure as fail:
        return _fail(fail)
    store = _store()
    try:
        requests = store.pairing_pending(name, acc)
    finally:
        store.close()
    rows = [{"id": r.id, "code": r.code, "createdAt": r.created_at, "lastSeenAt": r.last_seen_at, "meta": r.meta} for r in requests]
    if json_:
        print(json.dumps({"channel": name, "requests": rows}, indent=2))
        return 0
    if not rows:
        print(f"No pending {name} pairing requests.")
        return 0
    label = (BUILTIN.get(name).meta.id_label if name in BUILTIN else "id")
    print(f"Pairing requests ({len(rows)})")
    table = [("Code", label, "Meta", "Requested")] + [
        (r["code"], r["meta"].get("senderId") or r["id"], json.dumps(r["meta"]), r["createdAt"]) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    return 0


@pairing_app.command(name="approve")
def pairing_approve(
    code_or_channel: Annotated[str, Parameter(name="CODE_OR_CHANNEL", help="Pairing code (or the channel when two arguments are given).")],
    code: Annotated[str | None, Parameter(name="CODE", help="Pairing code (when the channel is the first argument).")] = None,
    /,
    *,
    channel: Annotated[str | None, Parameter(help="Channel id.")] = None,
    account: Annotated[str | None, Parameter(help="Account id (multi-account channels).")] = None,
    notify: Annotated[bool, Parameter(help="Tell the requester on the same channel (needs the gateway).")] = False,
) -> int:
    """Approve a pairing code and allow that sender."""
    from gateway_core.channels.pairing import owner_entry
    from gateway_trio.channels.manager import bootstrap_owner_file

    paths, cfg = read_config()
    known = _pairing_channels()
    configured = _configured_pairing_channels(cfg)
    try:
        if channel and code is not None:
            raise CliFailure("Too many arguments. Use: openclaw pairing approve --channel <channel> <code>", {})
        raw_channel = channel or (code_or_channel if code is not None else (configured[0] if len(configured) == 1 else ""))
        the_code = code_or_channel if channel or code is None else code
        if not raw_channel or not the_code:
            raise CliFailure("Usage: openclaw pairing approve <channel> <code> (or: openclaw pairing approve --channel <channel> <code>)", {})
        name = _channel(raw_channel, known)
        acc = _account(account)
    except CliFailure as fail:
        return _fail(fail)
    store = _store()
    try:
        approved = store.pairing_approve_code(name, the_code, acc)
    finally:
        store.close()
    if approved is None:
        print(f'No pending pairing request found for code "{the_code}". Run openclaw pairing list --channel {name} to list pending requests.',
              file=sys.stderr)
        return 1
    sender = approved.meta.get("senderId") or approved.id
    print(f"Approved {name} sender {sender}.")
    entry = owner_entry(name, approved.id)
    if bootstrap_owner_file(paths.config_path, entry) == "configured":
        print(f"Command owner configured {entry} (commands.ownerAllowFrom was empty).")
    if notify:
        _notify(name, approved.account_id, approved.id)
    return 0


def _notify(channel: str, account: str, sender: str) -> None:
    from gateway_core.app.handlers.channels import APPROVED_NOTICE

    target = sender.split("!", 1)[0] if channel == "irc" else sender
    try:
        gw = resolve_target(url=None, port=None, token=None, password=None, method="send")
        _rpc(gw, "send", {"to": target, "message": APPROVED_NOTICE, "channel": channel, "accountId": account,
                          "idempotencyKey": f"pairing-approved:{channel}:{account}:{sender}"},
             scopes=["operator.write"], timeout_ms=30000)
    except CliFailure as fail:
        print(f"Failed to notify requester: {fail.text.splitlines()[0]}")


__all__ = ["channels_list", "channels_status", "message_app", "message_send", "pairing_app", "pairing_approve", "pairing_list"]
