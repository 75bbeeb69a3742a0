"""IRC on Trio streams: the shell around ``gateway_core.channels.irc.IrcClient``.

Config as ``docs/channels/irc.md``: ``host``, ``port`` (6697 with TLS, 6667 plain), ``tls``
(default true), ``nick``, ``username``, ``realname``, ``password`` / ``passwordFile`` (server
password), ``channels`` (joined after the MOTD), the access keys, and env ``IRC_HOST``,
``IRC_PORT``, ``IRC_TLS``, ``IRC_NICK``, ``IRC_USERNAME``, ``IRC_REALNAME``, ``IRC_PASSWORD``,
``IRC_CHANNELS`` for the default account. Ours adds ``sasl: {username?, password | passwordFile}``
(SASL PLAIN; the published plugin has none), ``tlsCaFile`` (trust a private CA, e.g. a self-signed
server) and ``nickserv.password`` (IDENTIFY after connect).

One task reads and feeds the client, one fires its timers (PING on silence, the pong and
registration deadlines); writes go through one lock. A dead connection raises
:class:`ChannelFailure`, and the gateway reconnects about once a second (as published).

IRC has no message ids and never resends what a disconnected client missed: each message gets
an id local to its connection, the ingress queue protects the window between receiving and
answering, and a message sent while we were disconnected is lost to us — status says so
(``replay: "none"``). A DM still queued from an earlier connection is not answered after a
restart (the nick may belong to someone else by now).
"""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path
from typing import Any

import trio

from gateway_core.channels import accounts as A
from gateway_core.channels import irc as core
from gateway_core.channels.delivery import Outcome
from gateway_core.channels.inbound import Inbound, OutboundItem
from gateway_core.channels.rules import IrcRules

from .. import _runtime
from .base import AccountContext, ChannelFailure, ChannelPlugin, Transport

CONNECT_TIMEOUT_S = 15.0
RECV_BYTES = 65536


def _read_secret_file(path: str) -> str | None:
    p = Path(os.path.expanduser(path))
    try:
        if not stat.S_ISREG(p.lstat().st_mode):
            return None
        return p.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def options(account: dict[str, Any], *, is_default: bool, env: dict[str, str]) -> dict[str, Any]:
    """The connection settings with defaults and the default account's env fallbacks."""

    def pick(key: str, env_key: str) -> Any:
        value = account.get(key)
        if value in (None, "") and is_default:
            return env.get(env_key)
        return value

    tls_raw = pick("tls", "IRC_TLS")
    tls = tls_raw if isinstance(tls_raw, bool) else (str(tls_raw).lower() not in ("0", "false", "no") if tls_raw is not None else True)
    port_raw = pick("port", "IRC_PORT")
    try:
        port = int(port_raw) if port_raw not in (None, "") else (6697 if tls else 6667)
    except (TypeError, ValueError):
        port = 6697 if tls else 6667
    nick = pick("nick", "IRC_NICK")
    channels = account.get("channels")
    if not isinstance(channels, list) and is_default and env.get("IRC_CHANNELS"):
        channels = [c.strip() for c in env["IRC_CHANNELS"].split(",")]
    password = pick("password", "IRC_PASSWORD")
    if not password and isinstance(account.get("passwordFile"), str):
        password = _read_secret_file(account["passwordFile"])
    sasl = account.get("sasl") if isinstance(account.get("sasl"), dict) else None
    sasl_pair = None
    if sasl is not None:
        secret = sasl.get("password") or (_read_secret_file(sasl["passwordFile"]) if isinstance(sasl.get("passwordFile"), str) else None)
        if secret:
            sasl_pair = (str(sasl.get("username") or pick("username", "IRC_USERNAME") or nick or ""), str(secret))
    nickserv = account.get("nickserv") if isinstance(account.get("nickserv"), dict) else {}
    ns_password = nickserv.get("password") or (env.get("IRC_NICKSERV_PASSWORD") if is_default else None)
    return {
        "host": pick("host", "IRC_HOST"),
        "port": port,
        "tls": tls,
        "nick": nick,
        "username": pick("username", "IRC_USERNAME") or nick,
        "realname": pick("realname", "IRC_REALNAME") or "OpenClaw",
        "password": password,
        "sasl": sasl_pair,
        "channels": tuple(c for c in channels or () if isinstance(c, str) and c.strip()),
        "nickserv": (nickserv.get("service") or "NickServ", ns_password) if ns_password and nickserv.get("enabled") is not False else None,
        "tlsCaFile": account.get("tlsCaFile") if isinstance(account.get("tlsCaFile"), str) else None,
    }


class IrcTransport(Transport):
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    async def send(self, item: OutboundItem) -> Outcome:
        if self.conn.dead:
            return Outcome(kind="refused", detail="IRC connection is down")
        try:
            lines = self.conn.client.privmsg(item.target, item.text)
        except ValueError as exc:
            return Outcome(kind="rejected", detail=str(exc))
        try:
            await self.conn.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            return Outcome(kind="ambiguous", detail=f"connection lost while sending: {exc}")
        return Outcome(kind="delivered", message_id=f"{self.conn.conn_id}:{lines}")


class _Connection:
    """One live connection: the stream, the sans-IO client and the write lock."""

    def __init__(self, stream: trio.abc.Stream, client: core.IrcClient) -> None:
        self.stream = stream
        self.client = client
        self.conn_id = _runtime.new_uuid().replace("-", "")[:12]
        self.lock = trio.Lock()
        self.dead = False
        self.changed = trio.Event()

    async def flush(self) -> None:
        data = self.client.data_to_send()
        if data:
            async with self.lock:
                await self.stream.send_all(data)
        self.changed.set()
        self.changed = trio.Event()


async def _open(opts: dict[str, Any]) -> trio.abc.Stream:
    with trio.fail_after(CONNECT_TIMEOUT_S):
        if opts["tls"]:
            context = ssl.create_default_context(cafile=os.path.expanduser(opts["tlsCaFile"]) if opts["tlsCaFile"] else None)
            return await trio.open_ssl_over_tcp_stream(opts["host"], opts["port"], ssl_context=context, https_compatible=False)
        return await trio.open_tcp_stream(opts["host"], opts["port"])


class IrcChannel(ChannelPlugin):
    rules = IrcRules()
    restart_backoff_s = (1.0, 1.0, 2.0, 2.0, 5.0, 10.0, 30.0)

    def inspect(self, config: dict[str, Any] | None, account_id: str, env: dict[str, str]) -> dict[str, Any]:
        sec = A.section(config, "irc")
        opts = options(A.account_config(sec, account_id), is_default=account_id == A.default_account_id(sec), env=env)
        configured = bool(opts["host"] and opts["nick"])
        out: dict[str, Any] = {
            "configured": configured,
            "mode": "tls" if opts["tls"] else "plain",
            "baseUrl": f"{opts['host']}:{opts['port']}" if opts["host"] else None,
            "replay": "none",
        }
        issues = []
        if not configured:
            issues.append({"channel": "irc", "accountId": account_id, "kind": "config", "message": "IRC host and nick are required",
                           "fix": "set channels.irc.host and channels.irc.nick"})
        if not opts["tls"]:
            issues.append({"channel": "irc", "accountId": account_id, "kind": "config",
                           "message": "plaintext IRC (tls: false): traffic is not encrypted"})
        out["issues"] = issues
        return out

    def replayable(self, msg: Inbound) -> bool:
        return msg.is_group

    async def _connect(self, opts: dict[str, Any]) -> _Connection:
        try:
            stream = await _open(opts)
        except (OSError, trio.TooSlowError, ssl.SSLError) as exc:
            raise ChannelFailure(f"IRC connect to {opts['host']}:{opts['port']} failed: {exc or type(exc).__name__}") from None
        client = core.IrcClient(
            nick=opts["nick"], username=opts["username"], realname=opts["realname"], password=opts["password"],
            sasl=opts["sasl"], channels=opts["channels"], now=_runtime.now(),
        )
        return _Connection(stream, client)

    async def run_account(self, ctx: AccountContext) -> None:
        opts = options(ctx.account, is_default=ctx.is_default, env=ctx.env)
        if not (opts["host"] and opts["nick"]):
            raise ChannelFailure("IRC host and nick are required", fatal=True)
        conn = await self._connect(opts)
        try:
            await conn.flush()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._timers, conn)
                await self._read(conn, ctx, opts)
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ChannelFailure(f"IRC connection lost: {exc}") from None
        finally:
            conn.dead = True
            ctx.set_transport(None)
            ctx.set_status(connected=False, lastDisconnectAt=ctx.now_ms())
            with trio.CancelScope(shield=True):
                if not conn.client.closed:
                    conn.client.quit("shutdown")
                with trio.move_on_after(2):
                    try:
                        await conn.flush()
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        pass
                await conn.stream.aclose()

    async def _timers(self, conn: _Connection) -> None:
        while True:
            due = conn.client.next_deadline()
            if due is None:
                await trio.sleep_forever()
            with trio.move_on_at(due):
                await conn.changed.wait()
            conn.client.handle_timer(_runtime.now())
            await conn.flush()

    async def _read(self, conn: _Connection, ctx: AccountContext, opts: dict[str, Any]) -> None:
        client = conn.client
        while True:
            data = await conn.stream.receive_some(RECV_BYTES)
            client.receive_data(data, _runtime.now())
            now = ctx.now_ms()
            ctx.set_status(lastTransportActivityAt=now)
            msgs: list[Inbound] = []
            for event in client.events():
                if isinstance(event, core.Registered):
                    ctx.set_status(connected=True, lastConnectedAt=now, lastError=None, lifecycle="ready", nick=event.nick,
                                   reconnectAttempts=0)
                    ctx.set_transport(IrcTransport(conn))
                    if opts["nickserv"] is not None:
                        service, password = opts["nickserv"]
                        client.privmsg(service, f"IDENTIFY {password}")
                    ctx.log("info", f"connected to {opts['host']}:{opts['port']} as {event.nick}")
                elif isinstance(event, core.Joined):
                    ctx.log("info", f"joined {event.channel}")
                elif isinstance(event, core.Message):
                    msgs.append(self._inbound(ctx, conn, event))
                elif isinstance(event, core.Failed):
                    await conn.flush()
                    raise ChannelFailure(event.reason, fatal=event.fatal)
            await conn.flush()
            if msgs:
                await ctx.submit(msgs)
                ctx.set_status(lastInboundAt=ctx.now_ms())
            if not data:
                raise ChannelFailure("IRC connection closed by the server")

    def _inbound(self, ctx: AccountContext, conn: _Connection, m: core.Message) -> Inbound:
        sender = core.sender_id(m.nick, m.user, m.host)
        display = core.sender_display(m.nick, m.user, m.host)
        return Inbound(
            channel="irc",
            account_id=ctx.account_id,
            event_id=f"{conn.conn_id}:{m.seq}",
            chat_type="direct" if m.direct else "group",
            peer_id=m.nick if m.direct else m.target,
            sender_id=sender,
            sender_name=m.nick,
            text=m.text,
            mentioned=not m.direct and core.mentions(m.text, m.own_nick),
            reply_target=m.nick if m.direct else m.target,
            ts=ctx.now_ms(),
            extra={"display": display},
        )

    async def probe(self, config: dict[str, Any] | None, account_id: str, env: dict[str, str], timeout_s: float) -> dict[str, Any]:
        """A short connection of its own: register (``nick_`` if the nick is taken), then ``QUIT :probe``."""
        sec = A.section(config, "irc")
        opts = options(A.account_config(sec, account_id), is_default=account_id == A.default_account_id(sec), env=env)
        if not (opts["host"] and opts["nick"]):
            return {"ok": False, "error": "IRC host and nick are required"}
        started = _runtime.now()
        try:
            with trio.fail_after(timeout_s):
                conn = await self._connect(opts)
                try:
                    await conn.flush()
                    while not conn.client.registered:
                        data = await conn.stream.receive_some(RECV_BYTES)
                        conn.client.receive_data(data, _runtime.now())
                        for event in conn.client.events():
                            if isinstance(event, core.Failed):
                                return {"ok": False, "error": event.reason, "elapsedMs": int((_runtime.now() - started) * 1000)}
                        await conn.flush()
                    nick = conn.client.nick
                    conn.client.quit("probe")
                    await conn.flush()
                finally:
                    await conn.stream.aclose()
        except ChannelFailure as exc:
            return {"ok": False, "error": exc.message}
        except trio.TooSlowError:
            return {"ok": False, "error": f"probe timed out after {timeout_s:g}s"}
        except (OSError, trio.BrokenResourceError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "host": opts["host"], "port": opts["port"], "tls": opts["tls"], "nick": nick,
                "elapsedMs": int((_runtime.now() - started) * 1000)}


__all__ = ["IrcChannel", "IrcTransport", "options"]
