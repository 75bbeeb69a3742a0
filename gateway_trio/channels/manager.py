"""The channel manager: runs every configured account, its durable queues and its outbox, under Trio.

One per gateway run (``Gateway.channels``), started in the gateway's job nursery before the
listeners. It

* opens the durable store and recovers: accepted-but-unanswered inbound messages are handed to the
  pipeline again (replays), outbox attempts a crash cut short are marked ambiguous (no blind
  replay; the unconfirmed-reply notice is queued for that chat);
* starts each account whose channel section exists (unless ``enabled: false``, and not at all
  with ``OPENCLAW_SKIP_CHANNELS=1``) as its own supervised task inside its own cancel scope,
  restarting it with the plugin's backoff when it fails, never when it fails fatally;
* queues inbound messages durably (:meth:`submit`) and hands them to the pure pipeline one
  conversation message at a time (the next one goes when the previous holds its session lane);
* runs one outbox worker per account: strict order, one attempt at a time, each attempt marked
  before it goes out, the pure retry decision applied after (429 ``retry_after`` holds the whole
  account), receipts into the status;
* performs the channel effects the pure side yields, and re-plans accounts on config changes
  (access settings apply live; connection settings restart just that account).
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from gateway_core.app import EffectFailed
from gateway_core.channels import accounts as A
from gateway_core.channels import delivery as D
from gateway_core.channels.effects import (
    AwaitDelivery,
    ChannelCall,
    ChannelControl,
    ChannelProbe,
    ChannelTyping,
    IngressAdopted,
)
from gateway_core.channels.inbound import Inbound, OutboundItem
from gateway_core.channels.pairing import owner_entry
from gateway_core.channels.pipeline import IngressRow, conversation_key, inbound_job
from gateway_core.channels.state import channels_state

from .. import _runtime
from . import registry
from .base import AccountContext, ChannelFailure, ChannelPlugin, Transport
from .store import AsyncChannelStore, ChannelStore

if TYPE_CHECKING:
    from ..app import Gateway

#: Account settings that apply to new messages without reconnecting (the pipeline reads them live).
LIVE_KEYS = frozenset({
    "dmPolicy", "allowFrom", "groupPolicy", "groupAllowFrom", "groups", "replyToMode", "textChunkLimit", "streaming",
    "historyLimit", "dmHistoryLimit", "dms", "direct", "name", "healthMonitor", "markdown", "responsePrefix", "errorPolicy",
})
TYPING_EVERY_S = 4.5
TYPING_MAX_S = 600.0
PRUNE_EVERY_S = 3600.0
HEALTHY_AFTER_S = 60.0
SETTLED = ("sent", "failed", "unknown")


def skip_channels() -> bool:
    return os.environ.get("OPENCLAW_SKIP_CHANNELS", "").strip().lower() in ("1", "true", "yes")


class _Account:
    def __init__(self, plugin: ChannelPlugin, channel: str, account_id: str, fingerprint: str) -> None:
        self.plugin = plugin
        self.channel = channel
        self.account_id = account_id
        self.fingerprint = fingerprint
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.started = False


class ChannelManager:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.app = gateway.app
        self.log = gateway.log
        self.state = channels_state(self.app)
        self.plugins = registry.load(self.log)
        for plugin in self.plugins.values():
            self.state.register(plugin.rules)
        self.skip = skip_channels()
        self.env = dict(os.environ)
        self.store: AsyncChannelStore | None = None
        self._nursery: trio.Nursery | None = None
        self._accounts: dict[tuple[str, str], _Account] = {}
        self._stopped: set[tuple[str, str]] = set()
        self._transports: dict[tuple[str, str], Transport] = {}
        self._transport_events: dict[tuple[str, str], trio.Event] = {}
        self._wake: dict[tuple[str, str], trio.Event] = {}
        self._workers: set[tuple[str, str]] = set()
        self._settled = trio.Event()
        self._queues: dict[str, deque[IngressRow]] = {}
        self._busy: set[str] = set()
        self._key_conv: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle

    @property
    def config(self) -> dict[str, Any]:
        return self.app.config

    async def open(self, state_dir: Path) -> None:
        store = await trio.to_thread.run_sync(lambda: ChannelStore(state_dir, now_ms=_runtime.wall_ms))
        self.store = AsyncChannelStore(store)

    async def aclose(self) -> None:
        if self.store is not None:
            store, self.store = self.store, None
            await trio.to_thread.run_sync(store.store.close)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Recover, start the accounts and the workers; runs until cancelled with the gateway."""
        assert self.store is not None
        ambiguous = await self.store.call("outbox_recover")
        for row in ambiguous:
            self.log.warn(row["channel"], f"[{row['account_id']}] reply {row['key']} was being sent when the gateway stopped; "
                          "not resending it (unknown_after_send)")
            await self.store.call("outbox_put", [self._notice_for(row)])
        replays = await self.store.call("pending_ingress")
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for channel, account in await self.store.call("outbox_accounts"):
                self._ensure_worker(channel, account)
            if self.skip:
                self.log.info("channels", "OPENCLAW_SKIP_CHANNELS=1: channels not started")
                for key in self.desired(self.config):  # status still tells what is configured
                    self._refresh_inspect(key)
                    self.state.patch(key[0], key[1], {"running": False, "lifecycle": "skipped",
                                                      "stateReason": "skipped (OPENCLAW_SKIP_CHANNELS=1)"})
            else:
                self.plan(self.config)
            for row in replays:
                plugin = self.plugins.get(row.msg.channel)
                if plugin is not None and not plugin.replayable(row.msg):
                    await self.store.call("drop_ingress", row.msg.key, "discarded-after-restart")
                    self.log.info(row.msg.channel, f"[{row.msg.account_id}] queued DM {row.msg.key} from an earlier connection discarded")
                    continue
                self._enqueue(row)
            if replays:
                self.gw.flush()
            nursery.start_soon(self._pruner)
            task_status.started()

    # ------------------------------------------------------------------ accounts

    def _fingerprint(self, channel: str, account_id: str) -> str:
        acc = A.account_config(A.section(self.config, channel), account_id)
        return json.dumps({k: v for k, v in acc.items() if k not in LIVE_KEYS}, sort_keys=True, default=str)

    def desired(self, config: dict[str, Any] | None) -> list[tuple[str, str]]:
        out = []
        for channel in A.configured_channels(config):
            if channel not in self.plugins:
                continue
            sec = A.section(config, channel)
            out += [(channel, acc) for acc in A.account_ids(sec) if A.is_enabled(sec, acc)]
        return out

    def plan(self, config: dict[str, Any] | None) -> None:
        """Start, stop and restart accounts so that the running set matches ``config``."""
        if self._nursery is None or self.skip:
            return
        wanted = set(self.desired(config))
        for key in list(self._accounts):
            if key not in wanted:
                self._stop(key)
        for key in sorted(wanted, key=lambda k: (k[0], k[1])):
            if key in self._stopped:
                continue
            current = self._accounts.get(key)
            fingerprint = self._fingerprint(*key)
            if current is not None and current.fingerprint == fingerprint:
                self._refresh_inspect(key)
                continue
            if current is not None:
                self.log.info(key[0], f"[{key[1]}] settings changed; restarting the account")
                self._stop(key)
            self._start(key, fingerprint)
        for key in list(self.state.runtime):
            if key not in wanted and key not in self._accounts:
                self.state.patch(key[0], key[1], {"running": False, "connected": False})

    def config_changed(self, config: dict[str, Any] | None) -> None:
        self.plan(config)

    def _refresh_inspect(self, key: tuple[str, str]) -> None:
        plugin = self.plugins[key[0]]
        self.state.patch(key[0], key[1], plugin.inspect(self.config, key[1], self.env))

    def _start(self, key: tuple[str, str], fingerprint: str | None = None) -> None:
        assert self._nursery is not None
        plugin = self.plugins[key[0]]
        account = _Account(plugin, key[0], key[1], fingerprint or self._fingerprint(*key))
        self._accounts[key] = account
        self._stopped.discard(key)
        self._ensure_worker(*key)
        self._nursery.start_soon(self._supervise, account)

    def _stop(self, key: tuple[str, str]) -> _Account | None:
        account = self._accounts.pop(key, None)
        if account is not None:
            account.scope.cancel()
        return account

    async def _supervise(self, account: _Account) -> None:
        key = (account.channel, account.account_id)
        plugin = account.plugin
        patch = self._patcher(key)
        failures = 0
        try:
            with account.scope:
                while True:
                    inspect = plugin.inspect(self.config, account.account_id, self.env)
                    now = _runtime.wall_ms()
                    patch({**inspect, "running": bool(inspect.get("configured")), "connected": False,
                           "lifecycle": "starting" if failures == 0 else "recovering", "lastStartAt": now, "terminal": False})
                    if not inspect.get("configured"):
                        patch({"running": False, "lifecycle": "stopped", "lastError": None})
                        self.log.warn(account.channel, f"[{account.account_id}] not configured; not started")
                        return
                    ctx = self._context(key)
                    started = _runtime.now()
                    try:
                        await plugin.run_account(ctx)
                        return
                    except ChannelFailure as failure:
                        error, fatal = failure.message, failure.fatal
                    except Exception as exc:  # noqa: BLE001 - a plugin's bug restarts the account, never the gateway
                        error, fatal = _describe_failure(exc)
                    self._set_transport(key, None)
                    if _runtime.now() - started > HEALTHY_AFTER_S:
                        failures = 0
                    failures += 1
                    if fatal:
                        patch({"running": False, "connected": False, "lastError": error, "terminal": True, "lifecycle": "blocked"})
                        self.log.error(account.channel, f"[{account.account_id}] stopped: {error}")
                        return
                    delay = plugin.restart_backoff_s[min(failures, len(plugin.restart_backoff_s)) - 1]
                    patch({"connected": False, "lastError": error, "reconnectAttempts": failures, "lifecycle": "recovering",
                           "lastDisconnectAt": _runtime.wall_ms()})
                    self.log.warn(account.channel, f"[{account.account_id}] {error}; restarting in {delay:g}s")
                    await trio.sleep(delay)
        finally:
            self._set_transport(key, None)
            patch({"running": False, "connected": False, "lastStopAt": _runtime.wall_ms(), "lifecycle": "stopped"})
            account.done.set()

    def _patcher(self, key: tuple[str, str]) -> Any:
        def patch(fields: dict[str, Any]) -> None:
            self.state.patch(key[0], key[1], fields)

        return patch

    def _context(self, key: tuple[str, str]) -> AccountContext:
        channel, account_id = key

        async def submit(msgs: list[Inbound], offset: tuple[str, str] | None) -> None:
            await self.submit(channel, account_id, msgs, offset)

        async def get_offset(name: str) -> str | None:
            assert self.store is not None
            return await self.store.call("get_offset", channel, account_id, name)

        return AccountContext(
            channel=channel, account_id=account_id, config=self.config, submit=submit, get_offset=get_offset,
            patch=self._patcher(key), set_transport=lambda t: self._set_transport(key, t), log=self.log,
            now_ms=_runtime.wall_ms, env=self.env,
        )

    def _set_transport(self, key: tuple[str, str], transport: Transport | None) -> None:
        if transport is None:
            self._transports.pop(key, None)
            return
        self._transports[key] = transport
        event = self._transport_events.pop(key, None)
        if event is not None:
            event.set()
        self._wake_worker(key)

    # ------------------------------------------------------------------ control (channels.start / stop)

    async def control(self, action: str, channel: str, account_id: str) -> dict[str, Any]:
        key = (channel, account_id)
        if action == "stop":
            self._stopped.add(key)
            account = self._stop(key)
            if account is not None:
                with trio.move_on_after(10):
                    await account.done.wait()
            return {"channel": channel, "accountId": account_id, "stopped": True}
        if action != "start":
            raise EffectFailed("unsupported", f"channel action {action} is not supported")
        self._stopped.discard(key)
        if self.skip:
            return {"channel": channel, "accountId": account_id, "started": False,
                    "outcome": {"status": "skipped", "reason": "OPENCLAW_SKIP_CHANNELS is set"}}
        if key not in self.desired(self.config):
            return {"channel": channel, "accountId": account_id, "started": False,
                    "outcome": {"status": "skipped", "reason": "account is not configured or is disabled"}}
        if key in self._accounts:
            return {"channel": channel, "accountId": account_id, "started": False,
                    "outcome": {"status": "skipped", "reason": "already running"}}
        self._start(key)
        return {"channel": channel, "accountId": account_id, "started": True, "outcome": {"status": "handed-off"}}

    async def probe(self, targets: Iterable[tuple[str, str]], timeout_ms: int) -> dict[tuple[str, str], Any]:
        results: dict[tuple[str, str], Any] = {}
        limiter = trio.CapacityLimiter(4)

        async def one(key: tuple[str, str]) -> None:
            plugin = self.plugins.get(key[0])
            if plugin is None:
                return
            async with limiter:
                with trio.move_on_after(max(0.1, timeout_ms / 1000)) as scope:
                    try:
                        results[key] = await plugin.probe(self.config, key[1], self.env, max(0.1, timeout_ms / 1000))
                    except Exception as exc:  # noqa: BLE001 - a probe failure is a result
                        results[key] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                if scope.cancelled_caught:
                    results[key] = {"ok": False, "error": f"probe timed out after {timeout_ms}ms"}

        async with trio.open_nursery() as nursery:
            for key in targets:
                nursery.start_soon(one, key)
        return results

    # ------------------------------------------------------------------ inbound

    async def submit(self, channel: str, account_id: str, msgs: list[Inbound], offset: tuple[str, str] | None = None) -> None:
        """Queue ``msgs`` durably (with the poll offset, in one transaction), then dispatch the new ones."""
        assert self.store is not None
        stored = (channel, account_id, offset[0], offset[1]) if offset is not None else None
        rows = await self.store.call("ingress_put", msgs, stored)
        for row in rows:
            self._enqueue(row)
        if rows:
            self.gw.flush()

    def _enqueue(self, row: IngressRow) -> None:
        conv = conversation_key(row.msg)
        self._queues.setdefault(conv, deque()).append(row)
        if conv not in self._busy:
            self._dispatch_next(conv)

    def _dispatch_next(self, conv: str) -> None:
        queue = self._queues.get(conv)
        if not queue:
            self._queues.pop(conv, None)
            self._busy.discard(conv)
            return
        row = queue.popleft()
        self._busy.add(conv)
        self._key_conv[row.msg.key] = conv
        job = inbound_job(self.app, row, _runtime.now(), _runtime.wall_ms())
        self.app.spawn(job, f"inbound {row.msg.key}")

    # ------------------------------------------------------------------ outputs of the app

    def handles_output(self, output: Any) -> bool:
        return isinstance(output, IngressAdopted | ChannelTyping)

    def output(self, output: Any) -> None:
        """Called from ``Gateway.flush`` (so: no flushing here; spawned jobs go through the outbox)."""
        if isinstance(output, IngressAdopted):
            conv = self._key_conv.pop(output.key, None)
            if conv is not None:
                self._busy.discard(conv)
                self._dispatch_next(conv)
        elif isinstance(output, ChannelTyping):
            transport = self._transports.get((output.channel, output.account_id))
            if transport is not None and transport.supports_typing and self._nursery is not None:
                self._nursery.start_soon(self._typing, transport, output.target, output.run_id)

    async def _typing(self, transport: Transport, target: str, run_id: str) -> None:
        with trio.move_on_after(TYPING_MAX_S):
            while True:
                run = self.app.runs.get(run_id)
                if run is not None and not run.active:
                    return
                await transport.typing(target)
                await trio.sleep(TYPING_EVERY_S)

    # ------------------------------------------------------------------ effects

    def handles(self, effect: Any) -> bool:
        return isinstance(effect, ChannelCall | ChannelProbe | ChannelControl | AwaitDelivery)

    async def perform(self, effect: Any) -> Any:
        if self.store is None:
            raise EffectFailed("storage", "the channel store is not open")
        if isinstance(effect, ChannelCall):
            if effect.method == "bootstrap_owner":
                return await self._bootstrap_owner(*effect.args)
            try:
                result = await self.store.call(effect.method, *effect.args, **effect.kwargs)
            except Exception as exc:  # noqa: BLE001 - sqlite errors go back into the job
                raise EffectFailed("storage", f"channel store error: {type(exc).__name__}", str(exc)) from None
            if effect.method in ("ingress_done", "outbox_put"):
                items = effect.kwargs.get("items") if effect.method == "ingress_done" else effect.args[0]
                for key in {(i.channel, i.account_id) for i in items or ()}:
                    self._ensure_worker(*key)
                    self._wake_worker(key)
            return result
        if isinstance(effect, ChannelProbe):
            return await self.probe(effect.targets, effect.timeout_ms)
        if isinstance(effect, ChannelControl):
            return await self.control(effect.action, effect.channel, effect.account_id)
        if isinstance(effect, AwaitDelivery):
            return await self._await_delivery(list(effect.keys), effect.timeout_s)
        raise EffectFailed("unsupported", f"{type(effect).__name__} is not a channel effect")

    async def _await_delivery(self, keys: list[str], timeout_s: float) -> dict[str, Any]:
        assert self.store is not None
        rows: dict[str, Any] = {}
        with trio.move_on_after(timeout_s):
            while True:
                settled = self._settled
                rows = await self.store.call("outbox_get", keys)
                if all(rows.get(k, {}).get("state") in SETTLED for k in keys):
                    return rows
                await settled.wait()
        return rows

    async def _bootstrap_owner(self, channel: str, sender_id: str) -> str:
        """Make the approved sender the first command owner when none exists (config write)."""
        path = self.gw.settings.paths.config_path

        def work() -> str:
            return bootstrap_owner_file(path, owner_entry(channel, sender_id))

        try:
            return await trio.to_thread.run_sync(work)
        except OSError:
            return "unavailable"

    # ------------------------------------------------------------------ outbox workers

    def _ensure_worker(self, channel: str, account_id: str) -> None:
        key = (channel, account_id)
        if key in self._workers or self._nursery is None:
            return
        self._workers.add(key)
        self._nursery.start_soon(self._deliver, key)

    def _wake_worker(self, key: tuple[str, str]) -> None:
        event = self._wake.pop(key, None)
        if event is not None:
            event.set()

    async def _wait_wake(self, key: tuple[str, str], until_ms: int | None) -> None:
        event = self._wake.setdefault(key, trio.Event())
        timeout = 60.0 if until_ms is None else max(0.0, (until_ms - _runtime.wall_ms()) / 1000)
        with trio.move_on_after(timeout):
            await event.wait()

    async def _deliver(self, key: tuple[str, str]) -> None:
        """Send the account's queued messages in order, one attempt at a time."""
        assert self.store is not None
        channel, account_id = key
        rules = self.state.rules.get(channel)
        while True:
            transport = self._transports.get(key)
            if transport is None:
                event = self._transport_events.setdefault(key, trio.Event())
                await event.wait()
                continue
            row = await self.store.call("outbox_head", channel, account_id)
            if row is None:
                await self._wait_wake(key, None)
                continue
            now = _runtime.wall_ms()
            if row["next_at"] > now:
                await self._wait_wake(key, row["next_at"])
                continue
            await self.store.call("outbox_sending", row["seq"])
            item = OutboundItem(
                channel=channel, account_id=account_id, target=row["target"], text=row["text"], key=row["key"], kind=row["kind"],
                group=row["grp"], index=row["idx"], count=row["cnt"], reply_to=row["reply_to"], thread_id=row["thread_id"],
                parse_mode=row["parse_mode"],
            )
            try:
                outcome = await transport.send(item)
            except Exception as exc:  # noqa: BLE001 - a transport bug is an ambiguous attempt
                outcome = D.Outcome(kind="ambiguous", detail=f"{type(exc).__name__}: {exc}")
            now = _runtime.wall_ms()
            decision = D.decide(outcome, attempts=row["attempts"] + 1, created_ms=row["created_at"], now_ms=now)
            notice = self._notice_for(row, rules) if decision.notice and row["kind"] != "notice" else None
            await self.store.call("outbox_settle", row["seq"], decision, outcome.message_id, notice)
            if decision.state == "sent":
                self.state.patch(channel, account_id, {"lastOutboundAt": now})
            elif decision.state in ("failed", "unknown"):
                self.log.warn(channel, f"[{account_id}] send {row['key']} {decision.state}: {decision.error}")
            if outcome.kind == "rate_limited":
                self.log.info(channel, f"[{account_id}] rate limited; retrying in {outcome.retry_after_s or 0:g}s")
            settled, self._settled = self._settled, trio.Event()
            settled.set()

    def _notice_for(self, row: dict[str, Any], rules: Any = None) -> OutboundItem:
        rules = rules or self.state.rules.get(row["channel"])
        text = D.UNCONFIRMED_NOTICE
        if rules is not None:
            chunks = rules.render(text, row["target"], {})
            text = chunks[0] if chunks else text
        return OutboundItem(
            channel=row["channel"], account_id=row["account_id"], target=row["target"], text=text,
            key=f"notice:{row['key']}", kind="notice", thread_id=row.get("thread_id"),
            parse_mode=rules.parse_mode if rules is not None else None,
        )

    async def _pruner(self) -> None:
        assert self.store is not None
        while True:
            try:
                await self.store.call("prune")
            except Exception as exc:  # noqa: BLE001 - pruning is housekeeping
                self.log.warn("channels", f"queue pruning failed: {exc}")
            await trio.sleep(PRUNE_EVERY_S)


def _describe_failure(exc: BaseException) -> tuple[str, bool]:
    """``(message, fatal)`` of a runtime's failure; a nursery's group is reduced to the failure inside."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = []

        def walk(e: BaseException) -> None:
            if isinstance(e, BaseExceptionGroup):
                for sub in e.exceptions:
                    walk(sub)
            elif not isinstance(e, trio.Cancelled):
                leaves.append(e)

        walk(exc)
        failure = next((e for e in leaves if isinstance(e, ChannelFailure)), leaves[0] if leaves else exc)
        if failure is not exc:
            return _describe_failure(failure)
    if isinstance(exc, ChannelFailure):
        return exc.message, exc.fatal
    return f"{type(exc).__name__}: {exc}", False


def bootstrap_owner_file(path: Path, entry: str) -> str:
    """Set ``commands.ownerAllowFrom`` to ``[entry]`` in the config file when no owner exists.

    Returns the published status: ``configured`` or ``already-configured``. The file is rewritten
    as plain JSON (atomically, the old one kept as ``.bak``), as the published CLI does.
    """
    from ..runtime import settings
    from ..state import atomic_write

    cfg = settings.load_config(path) or {}
    commands = cfg.get("commands") if isinstance(cfg.get("commands"), dict) else {}
    owners = [x for x in commands.get("ownerAllowFrom") or () if isinstance(x, str | int) and str(x).strip()]
    if owners:
        return "already-configured"
    cfg["commands"] = {**commands, "ownerAllowFrom": [entry]}
    if path.exists():
        atomic_write(path.with_name(path.name + ".bak"), path.read_bytes())
    atomic_write(path, (json.dumps(cfg, indent=2, ensure_ascii=False) + "\n").encode())
    return "configured"


__all__ = ["ChannelManager", "bootstrap_owner_file", "skip_channels"]
