"""What the gateway does not do before it is ready (issue 11: cold start and idle RSS).

* With no channel configured that is not built in, the ``openclaw.channels`` entry points are not
  scanned at start-up; the first channel method scans them (once), so an installed plugin is still
  known to it.
* With no channel configured and no channel store on disk, the store is neither created nor held
  at start-up; it opens at the first need (a channel store call, a channel added to the config).
  A call issued before it is open waits for it, and a write is kept, never refused or dropped.
* The same for the session store: it opens at start when its file exists (recovery), else at the
  first session store call, which waits for it.
* After ``ready`` (the real start path, in a fresh interpreter and state dir), the modules only
  some requests or configurations need are not loaded: the built-in channels' shells, the HTTP
  client and providers, the OpenAI renderers, the Control UI, anyio's Trio backend (the config
  watcher needs none) and sqlite3 (no store exists yet).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from shell_harness import TOKEN, client, next_frame, request
from test_host_inprocess import AUTOJUMP_S

from gateway_core import Admission
from gateway_core.channels.effects import ChannelCall
from gateway_core.channels.inbound import OutboundItem
from gateway_trio.app import Gateway
from gateway_trio.channels import registry
from gateway_trio.runtime import FileLog, GatewaySettings, Paths

REPO = Path(__file__).resolve().parents[2]


def _gateway(tmp_path: Path, config: dict[str, Any]) -> Gateway:
    paths = Paths(None, tmp_path, tmp_path / "openclaw.json")
    settings = GatewaySettings(paths, config, 1, "--port", "loopback", ["127.0.0.1"], "token", TOKEN, None)
    return Gateway(settings, FileLog(tmp_path / "gw.log", console=io.StringIO(), console_enabled=False))


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every entry-point scan the registry makes (none are installed)."""
    calls: list[str] = []

    def entry_points(group: str) -> list[Any]:
        calls.append(group)
        return []

    monkeypatch.setattr(registry, "entry_points", entry_points)
    return calls


def test_entry_points_are_scanned_at_the_first_channel_method_not_at_start(tmp_path: Path, scans: list[str]) -> None:
    async def main() -> None:
        gw = _gateway(tmp_path, {"channels": {"telegram": {"enabled": False}}})
        with trio.fail_after(300):
            async with trio.open_nursery() as nursery:
                await nursery.start(gw.serve)
                await gw.channels.opened.wait()
                gw.services.phase = Admission.ACCEPTING
                await trio.testing.wait_all_tasks_blocked()
                assert scans == []  # a built-in channel is configured: nothing to look for
                async with client(gw) as (session, transport):
                    request(session, "h", "health", {})
                    await next_frame(transport, lambda f: f.get("id") == "h")
                    assert scans == []
                    request(session, "s", "channels.status", {})
                    status = await next_frame(transport, lambda f: f.get("id") == "s")
                    assert status["ok"] and scans == [registry.GROUP]
                    request(session, "s2", "channels.status", {"channel": "nochat"})
                    refused = await next_frame(transport, lambda f: f.get("id") == "s2")
                    assert refused["ok"] is False and scans == [registry.GROUP]  # once
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=AUTOJUMP_S))


def test_a_configured_channel_that_is_not_built_in_is_looked_for_at_start(tmp_path: Path, scans: list[str]) -> None:
    async def main() -> None:
        gw = _gateway(tmp_path, {"channels": {"mychat": {"server": "a"}}})
        assert scans == [registry.GROUP] and "mychat" not in gw.channels.plugins
        gw.channels.config_changed({"channels": {"otherchat": {}}})
        assert scans == [registry.GROUP]

    trio.run(main)


def test_plugins_resolve_builtins_on_first_use(scans: list[str]) -> None:
    plugins = registry.Plugins()
    assert "telegram" in plugins and "irc" in plugins and scans == []
    assert plugins["irc"].id == "irc" and plugins["irc"] is plugins["irc"] and scans == []
    assert plugins.get("nochat") is None and scans == [registry.GROUP]
    assert list(plugins) == ["telegram", "irc"] and scans == [registry.GROUP]


def test_a_channel_write_issued_before_the_store_opens_waits_and_is_kept(tmp_path: Path) -> None:
    item = OutboundItem(channel="telegram", account_id="default", target="42", text="hello", key="k-early", kind="send")
    answers: list[Any] = []

    async def main() -> None:
        gw = _gateway(tmp_path, {})
        with trio.fail_after(300):
            async with trio.open_nursery() as nursery:

                async def early() -> None:
                    answers.append(await gw.channels.perform(ChannelCall("outbox_put", ([item],))))

                nursery.start_soon(early)
                await trio.testing.wait_all_tasks_blocked()
                assert answers == [] and gw.channels.store is None  # waiting, not refused
                await nursery.start(gw.serve)
                await gw.channels.opened.wait()
                while not answers:
                    await trio.sleep(0.01)
                assert gw.channels.store is not None
                rows = await gw.channels.store.call("outbox_get", ["k-early"])
                assert rows["k-early"]["state"] == "pending"
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=AUTOJUMP_S))
    assert answers == [1]


def _serving(tmp_path: Path, body: Any) -> None:
    """Serve a gateway with no config on a fresh state dir, run ``body(gw)`` once it is idle."""

    async def main() -> None:
        gw = _gateway(tmp_path, {})
        with trio.fail_after(300):
            async with trio.open_nursery() as nursery:
                await nursery.start(gw.serve)
                await trio.testing.wait_all_tasks_blocked()
                await body(gw)
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=AUTOJUMP_S))


def test_no_channel_store_until_a_channel_needs_it(tmp_path: Path) -> None:
    from gateway_trio.channels.store import pairing_path, queue_path

    async def body(gw: Gateway) -> None:
        assert gw.channels.store is None and not gw.channels.opened.is_set()
        assert not queue_path(tmp_path).exists() and not pairing_path(tmp_path).exists()
        gw.channels.config_changed({"channels": {"telegram": {"enabled": False}}})
        await gw.channels.opened.wait()
        assert gw.channels.store is not None and queue_path(tmp_path).exists()

    _serving(tmp_path, body)


def test_a_session_store_call_before_the_store_exists_opens_it_and_is_kept(tmp_path: Path) -> None:
    from gateway_core.agents.effects import StoreCall
    from gateway_trio.runtime import session_store_path

    async def body(gw: Gateway) -> None:
        assert gw.agents.store is None and not session_store_path(tmp_path).exists()
        link = {"id": "resp_1", "sessionKey": "agent:main:x", "ts": 1}
        await gw.agents.perform(StoreCall("save_link", ("responses", link), {"max_entries": 10, "oldest_ms": 0}), 0)
        assert session_store_path(tmp_path).exists()
        loaded = await gw.agents.perform(StoreCall("load_links", ("responses", 0)), 0)
        assert [r["id"] for r in loaded] == ["resp_1"]

    _serving(tmp_path, body)


#: Loaded only by the requests or configurations that need them.
ON_DEMAND = (
    "gateway_trio.channels.telegram",
    "gateway_trio.channels.irc",
    "gateway_trio.providers.hub",
    "gateway_trio.providers.client",
    "gateway_core.providers.sse",
    "gateway_trio.web.openai",
    "gateway_trio.control_ui.assets",
    "httpx",
    "anyio._backends._trio",
    "sqlite3",
)

_PROBE = """
import json, socket, sys, trio
from gateway_trio.runtime import FileLog, Paths, resolve
from gateway_trio.server import run_gateway
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
settings = resolve(paths=Paths.resolve(None), port=port)
log = FileLog(settings.paths.state_dir / "gw.log", console_enabled=False)
async def main():
    async with trio.open_nursery() as nursery:
        control = await nursery.start(lambda task_status: run_gateway(
            settings, log, handle_signals=False, resolve_again=lambda: settings, task_status=task_status))
        await trio.sleep(0.2)
        print(json.dumps({m: m in sys.modules for m in sys.argv[1:]}))
        control.stop()
trio.run(main)
"""


def test_after_ready_the_on_demand_modules_are_not_loaded(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".openclaw").mkdir(parents=True)
    (home / ".openclaw" / "openclaw.json").write_text(json.dumps({"gateway": {"mode": "local", "bind": "loopback",
                                                                              "auth": {"mode": "token", "token": TOKEN}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", _PROBE, *ON_DEMAND], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not any(loaded.values()), loaded
