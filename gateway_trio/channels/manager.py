"""The channel manager: runs every configured account, its durable queues and its outbox, under Trio.

One per gateway run (``Gateway.channels``), started in the gateway's job nursery before the
listeners. It

* opens the durable store and recovers: accepted-but-unanswered inbound messages are handed to the
  pipeline again (replays), outbox attempts a crash cut short are marked ambiguous (no blind
  replay; the unconfirmed-reply notice is queued for that chat);
* starts each account whose channel section exists (unless ``enabled: false``, and not at all
  with ``OPENCLAW_SKIP_CHANNELS=1``) as its own supervised task inside its own cancel scope,
  restarting it with the plugin's backoff when it fails, never when it fails fatally;
* queues inbound messages durably and hands them to the pure pipeline one conversation
  message at a time (:class:`~.ingress.Ingress`);
* runs one outbox worker per account (:class:`~.outbox.Outbox`): strict order, one attempt at a
  time, each attempt marked before it goes out, the pure retry decision applied after;
* performs the channel effects the pure side yields, and re-plans accounts on config changes
  (access settings apply live; connection settings restart just that account).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from gateway_core.app import EffectFailed
from gateway_core.app.handlers.channels import ROUTES as CHANNEL_ROUTES
from gateway_core.channels import accounts as A
from gateway_core.channels.effects import (
    AwaitDelivery,
    ChannelCall,
    ChannelControl,
    ChannelProbe,
    ChannelTyping,
    IngressAdopted,
)
from gateway_core.channels.inbound import Inbound
from gateway_core.channels.pairing import owner_entry
from gateway_core.channels.state import channels_state

from .. import _runtime
from ..runtime.paths import channel_pairing_path, channel_queue_path
from . import registry
from .base import AccountContext, ChannelFailure, ChannelPlugin, Transport
from .ingress import Ingress
from .outbox import Outbox
from .owner import bootstrap_owner_file

if TYPE_CHECKING:
    from ..app import Gateway
    from .store import AsyncChannelStore

#: Account settings that apply to new messages without reconnecting (the pipeline reads them live).
LIVE_KEYS = frozenset({
    "dmPolicy", "allowFrom", "groupPolicy", "groupAllowFrom", "groups", "replyToMode", "textChunkLimit", "streaming",
    "historyLimit", "dmHistoryLimit", "dms", "direct", "name", "healthMonitor", "markdown", "responsePrefix", "errorPolicy",
})
#: The channel family's methods: any of them may ask about an installed channel that is not configured.
CHANNEL_METHODS = frozenset(route.method for route in CHANNEL_ROUTES)
TYPING_EVERY_S = 4.5
TYPING_MAX_S = 600.0
PRUNE_EVERY_S = 3600.0
HEALTHY_AFTER_S = 60.0


def skip_channels() -> bool:
    """Whether ``OPENCLAW_SKIP_CHANNELS`` asks the gateway not to start any channel account."""
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
    """Supervises the configured channel accounts and carries out the channel effects."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.app = gateway.app
        self.log = gateway.log
        self.state = channels_state(self.app)
        #: Resolved on first need; the entry points are scanned only for a channel that is not built in.
        self.plugins = registry.Plugins(self.log, on_found=lambda plugin: self.state.register(plugin.rules))
        self._scan_for(self.config)
        self.skip = skip_channels()
        self.env = dict(os.environ)
        self.store: AsyncChannelStore | None = None
        #: Set once the store's opening has ended (opened or failed).
        self.opened = trio.Event()
        self._wanted = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._accounts: dict[tuple[str, str], _Account] = {}
        self._stopped: set[tuple[str, str]] = set()
        self.ingress = Ingress(self.app, lambda: self.gw.flush())
        self.outbox = Outbox(self.state, self.log)

    # ------------------------------------------------------------------ lifecycle

    @property
    def config(self) -> dict[str, Any]:
        return self.app.config

    async def open(self, state_dir: Path) -> None:
        from .store import AsyncChannelStore, ChannelStore  # sqlite3 loads with the first store

        try:
            store = await trio.to_thread.run_sync(lambda: ChannelStore(state_dir, now_ms=_runtime.wall_ms))
            self._set_store(AsyncChannelStore(store))
        finally:
            self.opened.set()  # effects waiting for the store go on (and fail if it did not open)

    async def aclose(self) -> None:
        if self.store is not None:
            store = self.store
            self._set_store(None)
            await trio.to_thread.run_sync(store.store.close)

    def _set_store(self, store: AsyncChannelStore | None) -> None:
        self.store = self.ingress.store = self.outbox.store = store

    def _store_needed(self, state_dir: Path) -> bool:
        """Whether the store must open at start: a channel is configured, or the store exists (there
        may be queues to recover). Otherwise it opens at the first need (:meth:`want_store`)."""
        if A.configured_channels(self.config):
            return True
        return channel_queue_path(state_dir).exists() or channel_pairing_path(state_dir).exists()

    def want_store(self) -> None:
        """Something needs the store: open it now if it was left for later."""
        self._wanted.set()

    async def run(self, state_dir: Path, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the store, recover, start the accounts and the workers; runs until cancelled with the gateway.

        A gateway with no channel configured and no channel store yet reports started at once and
        opens the store at the first need (a channel store call, a channel added to the config), so
        it neither creates nor holds the store for nothing.
        """
        reported = False
        if not await trio.to_thread.run_sync(self._store_needed, state_dir):
            task_status.started()
            reported = True
            await self._wanted.wait()
            try:
                await self.open(state_dir)
            except Exception as exc:  # noqa: BLE001 - its callers get "not open"; the gateway keeps serving
                self.log.error("channels", f"channel store could not be opened: {exc}")
                return
        else:
            await self.open(state_dir)
        assert self.store is not None
        ambiguous = await self.store.call("outbox_recover")
        for row in ambiguous:
            self.log.warn(row["channel"], f"[{row['account_id']}] reply {row['key']} was being sent when the gateway stopped; "
                          "not resending it (unknown_after_send)")
            await self.store.call("outbox_put", [self.outbox.notice_for(row)])
        replays = await self.store.call("pending_ingress")
        async with trio.open_nursery() as nursery:
            self._nursery = self.outbox.nursery = nursery
            for channel, account in await self.store.call("outbox_accounts"):
                self.outbox.ensure_worker(channel, account)
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
                self.ingress.enqueue(row)
            if replays:
                self.gw.flush()
            nursery.start_soon(self._pruner)
            if not reported:
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
        self._scan_for(config)
        if A.configured_channels(config):
            self.want_store()  # the accounts start once it is open (``run`` plans them)
        self.plan(config)

    def _scan_for(self, config: dict[str, Any] | None) -> None:
        """Scan the entry points now if ``config`` names a channel that is not built in (so the app
        knows its rules before any request asks about it)."""
        if any(channel not in registry.BUILTIN for channel in A.configured_channels(config)):
            self.plugins.scan()

    def before_request(self, method: str) -> None:
        """A channel method may name an installed channel that is not configured: scan first (once)."""
        if method in CHANNEL_METHODS and not self.plugins.scanned:
            self.plugins.scan()

    def _refresh_inspect(self, key: tuple[str, str]) -> None:
        plugin = self.plugins[key[0]]
        self.state.patch(key[0], key[1], plugin.inspect(self.config, key[1], self.env))

    def _start(self, key: tuple[str, str], fingerprint: str | None = None) -> None:
        assert self._nursery is not None
        plugin = self.plugins[key[0]]
        account = _Account(plugin, key[0], key[1], fingerprint or self._fingerprint(*key))
        self._accounts[key] = account
        self._stopped.discard(key)
        self.outbox.ensure_worker(*key)
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
                    self.outbox.set_transport(key, None)
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
            self.outbox.set_transport(key, None)
            patch({"running": False, "connected": False, "lastStopAt": _runtime.wall_ms(), "lifecycle": "stopped"})
            account.done.set()

    def _patcher(self, key: tuple[str, str]) -> Any:
        def patch(fields: dict[str, Any]) -> None:
            self.state.patch(key[0], key[1], fields)

        return patch

    def _context(self, key: tuple[str, str]) -> AccountContext:
        channel, account_id = key

        async def submit(msgs: list[Inbound], offset: tuple[str, str] | None) -> None:
            await self.ingress.submit(channel, account_id, msgs, offset)

        async def get_offset(name: str) -> str | None:
            assert self.store is not None
            return await self.store.call("get_offset", channel, account_id, name)

        return AccountContext(
            channel=channel, account_id=account_id, config=self.config, submit=submit, get_offset=get_offset,
            patch=self._patcher(key), set_transport=lambda t: self.outbox.set_transport(key, t), log=self.log,
            now_ms=_runtime.wall_ms, env=self.env,
        )

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

    # ------------------------------------------------------------------ outputs of the app

    def handles_output(self, output: Any) -> bool:
        return isinstance(output, IngressAdopted | ChannelTyping)

    def output(self, output: Any) -> None:
        """Called from ``Gateway.flush`` (so: no flushing here; spawned jobs go through the outbox)."""
        if isinstance(output, IngressAdopted):
            self.ingress.adopted(output.key)
        elif isinstance(output, ChannelTyping):
            transport = self.outbox.transports.get((output.channel, output.account_id))
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
        if self.store is None and not self.opened.is_set():
            self.want_store()
            await self.opened.wait()  # the store opens at the first need: wait for it, never refuse
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
                self.outbox.queued(items or ())
            return result
        if isinstance(effect, ChannelProbe):
            return await self.probe(effect.targets, effect.timeout_ms)
        if isinstance(effect, ChannelControl):
            return await self.control(effect.action, effect.channel, effect.account_id)
        if isinstance(effect, AwaitDelivery):
            return await self.outbox.await_delivery(list(effect.keys), effect.timeout_s)
        raise EffectFailed("unsupported", f"{type(effect).__name__} is not a channel effect")

    async def _bootstrap_owner(self, channel: str, sender_id: str) -> str:
        """Make the approved sender the first command owner when none exists (config write)."""
        path = self.gw.settings.paths.config_path

        def work() -> str:
            return bootstrap_owner_file(path, owner_entry(channel, sender_id))

        try:
            return await trio.to_thread.run_sync(work)
        except OSError:
            return "unavailable"

    # ------------------------------------------------------------------ housekeeping

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


__all__ = ["ChannelManager", "bootstrap_owner_file", "skip_channels"]
