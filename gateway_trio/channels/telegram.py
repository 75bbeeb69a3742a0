"""Telegram over the Bot API (httpx), long polling, as the published channel does it.

Config (``channels.telegram`` and ``accounts.<id>``): ``botToken``, ``tokenFile`` (a regular file,
not a symlink; it wins over ``botToken``), env ``TELEGRAM_BOT_TOKEN`` (default account only, lowest
precedence), ``apiRoot`` (the Bot API root, without ``/bot<TOKEN>``; default
``https://api.telegram.org``), plus the shared access keys the pipeline reads. ``webhookUrl`` is
not served here: the account polls and says so in its status issues.

Start-up calls (channels-observed.md): ``getMe`` (GET), ``deleteWebhook {"drop_pending_updates":
false}``, then — the first time an account starts in this process — ``deleteMyCommands`` for the
default and the group scope and ``setMyCommands`` for both; then ``getUpdates`` with ``timeout`` 0
and afterwards 30, ``offset`` = last ``update_id`` + 1. The offset is stored in the same
transaction as the updates it confirms (``AccountContext.submit``), so an update is never
confirmed to Telegram before it is durably queued, and a restart resumes from it.

Errors: ``getMe`` 401 is fatal (the token is wrong). A failed poll (unreachable API, 409 conflict
with another poller, 5xx) marks the account disconnected and retries with backoff (1 s, 2 s, 4 s…,
at most 30 s) with the same offset.
"""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from gateway_core.channels import telegram as tg
from gateway_core.channels.delivery import Outcome
from gateway_core.channels.inbound import OutboundItem
from gateway_core.channels.rules import TelegramRules

from .. import _runtime
from .base import AccountContext, ChannelFailure, ChannelPlugin, Transport

if TYPE_CHECKING:
    import httpx

DEFAULT_API_ROOT = "https://api.telegram.org"
POLL_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
SEND_TIMEOUT_S = 30.0
#: How long a long poll may take beyond its own ``timeout`` before it counts as lost.
POLL_GRACE_S = 15.0
OFFSET = "offset"


def _token_file(path: str) -> str | None:
    p = Path(os.path.expanduser(path))
    try:
        st = p.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None  # symlinks and the rest are refused, as published
    text = p.read_text(encoding="utf-8").strip()
    return text or None


_SSL: ssl.SSLContext | None = None


def ssl_context() -> ssl.SSLContext:
    """One client TLS context for every account (loading the CA bundle costs ~1 MB per context)."""
    global _SSL
    if _SSL is None:
        _SSL = ssl.create_default_context()
    return _SSL


def resolve_token(account: dict[str, Any], *, is_default: bool, env: dict[str, str]) -> tuple[str | None, str]:
    """``(token, source)``: ``tokenFile`` beats ``botToken`` beats env (default account only)."""
    if isinstance(account.get("tokenFile"), str) and account["tokenFile"].strip():
        token = _token_file(account["tokenFile"])
        if token:
            return token, "tokenFile"
    raw = account.get("botToken")
    if isinstance(raw, str) and raw.strip():
        value = raw.strip()
        if value.startswith("${") and value.endswith("}"):
            resolved = env.get(value[2:-1])
            return (resolved, "config") if resolved else (None, "none")
        return value, "config"
    if is_default and env.get("TELEGRAM_BOT_TOKEN"):
        return env["TELEGRAM_BOT_TOKEN"], "env"
    return None, "none"


def api_root(account: dict[str, Any]) -> str:
    root = account.get("apiRoot")
    return (root if isinstance(root, str) and root.strip() else DEFAULT_API_ROOT).rstrip("/")


class BotApi:
    """Calls to one bot's API (``<apiRoot>/bot<TOKEN>/<method>``) on one pooled client."""

    def __init__(self, client: httpx.AsyncClient, root: str, token: str) -> None:
        self.client = client
        self.base = f"{root}/bot{token}/"

    async def call(self, method: str, body: dict[str, Any] | None = None, *, timeout: float = 30.0, get: bool = False) -> tuple[int, Any]:
        """``(status, decoded body)``; transport failures raise httpx errors."""
        if get:
            resp = await self.client.get(self.base + method, timeout=timeout)
        else:
            resp = await self.client.post(self.base + method, json=body or {}, timeout=timeout)
        try:
            data = resp.json()
        except ValueError:
            data = {"ok": False, "error_code": resp.status_code, "description": resp.text[:200]}
        return resp.status_code, data


def _describe(status: int, body: Any) -> str:
    if isinstance(body, dict):
        return f"{body.get('error_code', status)}: {body.get('description') or 'error'}"
    return f"HTTP {status}"


class TelegramTransport(Transport):
    supports_typing = True

    def __init__(self, api: BotApi) -> None:
        self.api = api

    async def send(self, item: OutboundItem) -> Outcome:
        import httpx

        body = tg.send_message_body(item.target, item.text, reply_to=item.reply_to, thread_id=item.thread_id)
        if item.parse_mode is None:
            body.pop("parse_mode", None)
        try:
            status, data = await self.api.call("sendMessage", body, timeout=SEND_TIMEOUT_S)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return tg.classify(None, None, sent=False, detail=f"{type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:  # read timeout, reset: the request went out
            return tg.classify(None, None, sent=True, detail=f"{type(exc).__name__}: {exc}")
        return tg.classify(status, data, sent=True)

    async def typing(self, target: str) -> None:
        import httpx

        try:
            await self.api.call("sendChatAction", tg.typing_body(target), timeout=10.0)
        except httpx.HTTPError:
            pass


class TelegramChannel(ChannelPlugin):
    rules = TelegramRules()

    def __init__(self) -> None:
        #: Accounts whose command menu was registered in this process (a restart skips it, as published).
        self._menus: set[tuple[str, str]] = set()

    def inspect(self, config: dict[str, Any] | None, account_id: str, env: dict[str, str]) -> dict[str, Any]:
        from gateway_core.channels import accounts as A

        sec = A.section(config, "telegram")
        account = A.account_config(sec, account_id)
        token, source = resolve_token(account, is_default=account_id == A.default_account_id(sec), env=env)
        out: dict[str, Any] = {
            "configured": token is not None,
            "tokenSource": source,
            "tokenStatus": "available" if token else "missing",
            "mode": "polling",
            "allowUnmentionedGroups": False,
        }
        issues = []
        if token is None:
            issues.append({"channel": "telegram", "accountId": account_id, "kind": "config",
                           "message": "Telegram bot token is not configured",
                           "fix": "set channels.telegram.botToken (or tokenFile, or TELEGRAM_BOT_TOKEN for the default account)"})
        if account.get("webhookUrl"):
            issues.append({"channel": "telegram", "accountId": account_id, "kind": "config",
                           "message": "webhook mode is not served by this gateway; the account uses long polling",
                           "fix": "remove channels.telegram.webhookUrl"})
        out["issues"] = issues
        return out

    async def _start(self, api: BotApi, ctx: AccountContext) -> dict[str, Any]:
        status, me = await api.call("getMe", get=True, timeout=30.0)
        if status == 401 or (isinstance(me, dict) and me.get("error_code") == 401):
            raise ChannelFailure("getMe returned 401: Unauthorized (check the bot token)", fatal=True)
        if status != 200 or not isinstance(me, dict) or not me.get("ok"):
            raise ChannelFailure(f"getMe failed: {_describe(status, me)}")
        bot = me["result"]
        await api.call("deleteWebhook", {"drop_pending_updates": False})
        key = (ctx.account_id, api.base)
        if key not in self._menus:
            commands = tg.menu_commands()
            await api.call("deleteMyCommands", {})
            await api.call("deleteMyCommands", {"scope": {"type": "all_group_chats"}})
            await api.call("setMyCommands", {"commands": commands})
            await api.call("setMyCommands", {"commands": commands, "scope": {"type": "all_group_chats"}})
            self._menus.add(key)
        return bot

    async def run_account(self, ctx: AccountContext) -> None:
        import httpx  # loaded when a Telegram account starts, not with the gateway

        token, _ = resolve_token(ctx.account, is_default=ctx.is_default, env=ctx.env)
        if token is None:
            raise ChannelFailure("Telegram bot token is not configured", fatal=True)
        root = api_root(ctx.account)
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0), verify=ssl_context()) as client:
            api = BotApi(client, root, token)
            try:
                bot = await self._start(api, ctx)
            except httpx.HTTPError as exc:
                raise ChannelFailure(f"Telegram API unreachable: {type(exc).__name__}: {exc}") from None
            username = bot.get("username")
            bot_id = bot.get("id") if isinstance(bot.get("id"), int) else None
            ctx.set_status(botUsername=username, lifecycle="ready")
            ctx.log("info", f"starting provider (@{username})")
            ctx.set_transport(TelegramTransport(api))
            stored = await ctx.offset(OFFSET)
            offset = int(stored) if stored and stored.lstrip("-").isdigit() else None
            first = True
            failures = 0
            while True:
                timeout = 0 if first else tg.POLL_TIMEOUT_S
                try:
                    status, data = await api.call(
                        "getUpdates", tg.get_updates_body(offset, timeout), timeout=timeout + POLL_GRACE_S
                    )
                except httpx.HTTPError as exc:
                    status, data = None, f"{type(exc).__name__}: {exc}"
                now = ctx.now_ms()
                if status != 200 or not isinstance(data, dict) or not data.get("ok"):
                    failures += 1
                    detail = data if isinstance(data, str) else _describe(status or 0, data)
                    ctx.set_status(connected=False, lastError=f"getUpdates failed: {detail}", lastDisconnectAt=now,
                                   reconnectAttempts=failures)
                    await trio.sleep(POLL_BACKOFF_S[min(failures, len(POLL_BACKOFF_S)) - 1])
                    continue
                if failures or first:
                    ctx.set_status(connected=True, lastConnectedAt=now, lastError=None, reconnectAttempts=0)
                failures = 0
                first = False
                updates = [u for u in data.get("result") or () if isinstance(u, dict) and isinstance(u.get("update_id"), int)]
                ctx.set_status(lastTransportActivityAt=now, lastEventAt=now)
                if not updates:
                    continue
                msgs = []
                for update in updates:
                    msg = tg.normalize_update(update, account_id=ctx.account_id, bot_username=username, bot_id=bot_id)
                    if msg is not None:
                        msgs.append(msg)
                new_offset = max(u["update_id"] for u in updates) + 1
                await ctx.submit(msgs, (OFFSET, str(new_offset)))
                if msgs:
                    ctx.set_status(lastInboundAt=ctx.now_ms())
                offset = new_offset

    async def probe(self, config: dict[str, Any] | None, account_id: str, env: dict[str, str], timeout_s: float) -> dict[str, Any]:
        from gateway_core.channels import accounts as A

        sec = A.section(config, "telegram")
        account = A.account_config(sec, account_id)
        token, _ = resolve_token(account, is_default=account_id == A.default_account_id(sec), env=env)
        if token is None:
            return tg.probe_result(False, error="bot token not configured")
        import httpx

        started = _runtime.now()
        try:
            async with httpx.AsyncClient(timeout=timeout_s, verify=ssl_context()) as client:
                status, data = await BotApi(client, api_root(account), token).call("getMe", get=True, timeout=timeout_s)
        except httpx.HTTPError as exc:
            return tg.probe_result(False, error=f"{type(exc).__name__}: {exc}", elapsed_ms=int((_runtime.now() - started) * 1000))
        elapsed = int((_runtime.now() - started) * 1000)
        if status == 200 and isinstance(data, dict) and data.get("ok"):
            return tg.probe_result(True, me=data["result"], elapsed_ms=elapsed)
        return tg.probe_result(False, status=status, error=_describe(status, data), elapsed_ms=elapsed)


__all__ = ["TelegramChannel", "TelegramTransport", "api_root", "resolve_token"]
