"""The channel manager in process, on Trio's MockClock, with a third-party channel plugin.

The plugin (``memchat``) is loaded the way a package would be — through an ``openclaw.channels``
entry point — and talks to the test through memory: what it "receives" the test scripts, what the
gateway sends through its transport the test reads. Covered: supervision (restart with backoff,
fatal stops), the status truth, the whole pipeline through the host (durable ingress → offline
agent → outbox → transport), outbox retries honouring ``retry_after``, ``channels.stop|start``,
live config changes (access settings do not restart, connection settings do), and plugin loading.
"""

from __future__ import annotations

import io
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from shell_harness import TOKEN, client, next_frame, request
from test_host_inprocess import AUTOJUMP_S

from gateway_core import Admission
from gateway_core.channels.delivery import Outcome
from gateway_core.channels.inbound import Inbound, OutboundItem
from gateway_core.channels.rules import ChannelRules
from gateway_core.channels.status import ChannelMeta
from gateway_trio.app import Gateway
from gateway_trio.channels import AccountContext, ChannelFailure, ChannelPlugin, Transport, registry
from gateway_trio.runtime import FileLog, GatewaySettings, Paths


class MemRules(ChannelRules):
    meta = ChannelMeta(id="memchat", label="MemChat", detail_label="Memory chat", liveness_ms=60_000)


class MemTransport(Transport):
    def __init__(self, plugin: MemChat) -> None:
        self.plugin = plugin

    async def send(self, item: OutboundItem) -> Outcome:
        self.plugin.attempts.append((trio.current_time(), item))
        if self.plugin.send_script:
            return self.plugin.send_script.pop(0)
        self.plugin.delivered.append(item)
        return Outcome(kind="delivered", message_id=str(len(self.plugin.delivered)))


class MemChat(ChannelPlugin):
    rules = MemRules()
    restart_backoff_s = (1.0, 2.0, 4.0)

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.failures: list[ChannelFailure] = []
        self.inbox: trio.MemorySendChannel[Inbound]
        self.outlet: trio.MemoryReceiveChannel[Inbound]
        self.inbox, self.outlet = trio.open_memory_channel[Inbound](100)
        self.attempts: list[tuple[float, OutboundItem]] = []
        self.delivered: list[OutboundItem] = []
        self.send_script: list[Outcome] = []
        self.running = trio.Event()

    def inspect(self, config: dict[str, Any] | None, account_id: str, env: dict[str, str]) -> dict[str, Any]:
        return {"configured": True, "mode": "memory"}

    async def run_account(self, ctx: AccountContext) -> None:
        self.starts.append(trio.current_time())
        if self.failures:
            raise self.failures.pop(0)
        ctx.set_transport(MemTransport(self))
        ctx.set_status(connected=True, lastConnectedAt=ctx.now_ms(), lastError=None, lifecycle="ready")
        self.running.set()
        async for msg in self.outlet:
            await ctx.submit([msg])
            ctx.set_status(lastInboundAt=ctx.now_ms(), lastTransportActivityAt=ctx.now_ms())


PLUGIN: MemChat | None = None


def make_plugin() -> MemChat:
    assert PLUGIN is not None
    return PLUGIN


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> MemChat:
    global PLUGIN
    PLUGIN = MemChat()
    eps = [EntryPoint("memchat", f"{__name__}:make_plugin", registry.GROUP)]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == registry.GROUP else [])
    return PLUGIN


def dm(text: str, n: int) -> Inbound:
    return Inbound(channel="memchat", account_id="default", event_id=str(n), chat_type="direct", peer_id="u1", sender_id="u1",
                   text=text, reply_target="u1")


CONFIG = {"channels": {"memchat": {"dmPolicy": "open", "allowFrom": ["*"], "server": "a"}}}


class InProcessClient:
    """An admitted operator session in process (the shared shell harness) with a ``call`` helper."""

    def __init__(self, session: Any, transport: Any) -> None:
        self.session = session
        self.transport = transport
        self._n = 0

    async def call(self, method: str, params: Any = None, rid: str | None = None) -> dict[str, Any]:
        self._n += 1
        rid = rid or f"r-{method}-{self._n}"
        request(self.session, rid, method, params)
        return await next_frame(self.transport, lambda f: f.get("type") == "res" and f.get("id") == rid)


def _run(tmp_path: Path, config: dict[str, Any], body: Any) -> None:
    async def main() -> None:
        paths = Paths(None, tmp_path, tmp_path / "openclaw.json")
        settings = GatewaySettings(paths, config, 1, "--port", "loopback", ["127.0.0.1"], "token", TOKEN, None)
        gw = Gateway(settings, FileLog(tmp_path / "gw.log", console=io.StringIO(), console_enabled=False))
        with trio.fail_after(300):
            async with trio.open_nursery() as nursery:
                await nursery.start(gw.serve)
                gw.services.phase = Admission.ACCEPTING
                async with client(gw) as (session, transport):
                    await body(gw, InProcessClient(session, transport))
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=AUTOJUMP_S))


async def _until(pred: Any, step: float = 0.5) -> None:
    while not pred():
        await trio.sleep(step)


def _account(gw: Gateway) -> dict[str, Any]:
    return gw.app.parts["channels"].snapshot(gw.app.config, "memchat", "default", 0)


def test_supervision_restarts_with_backoff_then_the_pipeline_answers(tmp_path: Path, plugin: MemChat) -> None:
    plugin.failures = [ChannelFailure("server said no"), ChannelFailure("still no")]

    async def body(gw: Gateway, client: InProcessClient) -> None:
        await plugin.running.wait()
        gaps = [round(b - a, 1) for a, b in zip(plugin.starts, plugin.starts[1:], strict=False)]
        assert gaps == [1.0, 2.0], plugin.starts  # the plugin's backoff, on virtual time
        snap = _account(gw)
        assert snap["running"] and snap["connected"] and snap["lastError"] is None and snap["reconnectAttempts"] == 2
        await plugin.inbox.send(dm("hello from memchat", 1))
        await _until(lambda: plugin.delivered)
        assert plugin.delivered[0].text.startswith('You said: "hello from memchat"') and plugin.delivered[0].target == "u1"
        snap = _account(gw)
        assert isinstance(snap["lastInboundAt"], int) and isinstance(snap["lastOutboundAt"], int)
        status = await client.call("channels.status", {})
        (account,) = status["payload"]["channelAccounts"]["memchat"]
        assert account["healthState"] == "healthy" and status["payload"]["channelLabels"] == {"memchat": "MemChat"}

    _run(tmp_path, CONFIG, body)


def test_fatal_failure_stops_for_good(tmp_path: Path, plugin: MemChat) -> None:
    plugin.failures = [ChannelFailure("bad token", fatal=True)]

    async def body(gw: Gateway, client: InProcessClient) -> None:
        await _until(lambda: _account(gw).get("terminal"))
        await trio.sleep(30)
        assert len(plugin.starts) == 1
        snap = _account(gw)
        assert snap["running"] is False and snap["lastError"] == "bad token" and snap["healthState"] == "terminal-disconnect"

    _run(tmp_path, CONFIG, body)


def test_outbox_honours_retry_after_and_stop_start(tmp_path: Path, plugin: MemChat) -> None:
    plugin.send_script = [Outcome(kind="rate_limited", retry_after_s=5), Outcome(kind="refused", detail="down")]

    async def body(gw: Gateway, client: InProcessClient) -> None:
        await plugin.running.wait()
        await plugin.inbox.send(dm("first", 1))
        await _until(lambda: plugin.delivered)
        times = [t for t, _ in plugin.attempts]
        assert len(times) == 3 and round(times[1] - times[0]) == 5 and round(times[2] - times[1]) == 2  # retry_after, then backoff 2 s
        assert [i.key for _, i in plugin.attempts] == [plugin.attempts[0][1].key] * 3
        res = await client.call("send", {"to": "u1", "message": "operator says hi", "channel": "memchat", "idempotencyKey": "k1"})
        assert res["ok"] and res["payload"]["messageId"] == "2", res
        again = await client.call("send", {"to": "u1", "message": "operator says hi", "channel": "memchat", "idempotencyKey": "k1"}, "r2")
        assert again["payload"] == res["payload"] and len(plugin.delivered) == 2  # idempotent: delivered once
        stopped = await client.call("channels.stop", {"channel": "memchat"})
        assert stopped["payload"] == {"channel": "memchat", "accountId": "default", "stopped": True}
        assert _account(gw)["running"] is False
        started = await client.call("channels.start", {"channel": "memchat"})
        assert started["payload"]["outcome"] == {"status": "handed-off"} and started["payload"]["started"] is True
        await _until(lambda: _account(gw)["running"] and _account(gw)["connected"])
        unknown = await client.call("channels.start", {"channel": "nope"})
        assert unknown["error"]["message"] == "unknown channel: nope"

    _run(tmp_path, CONFIG, body)


def test_config_changes_apply_live_or_restart_the_account(tmp_path: Path, plugin: MemChat) -> None:
    async def body(gw: Gateway, client: InProcessClient) -> None:
        await plugin.running.wait()
        cfg = {"channels": {"memchat": {**CONFIG["channels"]["memchat"], "dmPolicy": "disabled"}}}
        gw.apply_hot({"channels.memchat.dmPolicy"}, cfg)
        await trio.sleep(5)
        assert len(plugin.starts) == 1  # an access setting: no reconnect
        await plugin.inbox.send(dm("nobody may talk now", 2))
        await trio.sleep(5)
        assert not plugin.attempts
        gw.apply_hot({"channels.memchat.server"}, {"channels": {"memchat": {**cfg["channels"]["memchat"], "server": "b"}}})
        await _until(lambda: len(plugin.starts) == 2)
        gw.apply_hot({"channels.memchat.enabled"}, {"channels": {"memchat": {"enabled": False}}})
        await _until(lambda: _account(gw)["running"] is False)

    _run(tmp_path, CONFIG, body)


def test_entry_points_broken_and_colliding_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    class Log:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def warn(self, sub: str, msg: str) -> None:
            self.lines.append(msg)

        info = warn

    global PLUGIN
    PLUGIN = MemChat()
    eps = [EntryPoint("broken", "no_such_module_here:Thing", registry.GROUP),
           EntryPoint("fake-telegram", "gateway_trio.channels.telegram:TelegramChannel", registry.GROUP),
           EntryPoint("memchat", f"{__name__}:make_plugin", registry.GROUP)]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    log = Log()
    plugins = registry.load(log)
    assert set(plugins) == {"telegram", "irc", "memchat"} and plugins["memchat"] is PLUGIN
    assert any("broken" in line and "failed to load" in line for line in log.lines)
    assert any("channel id 'telegram' is built in" in line for line in log.lines)
