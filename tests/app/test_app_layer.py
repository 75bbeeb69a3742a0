"""The pure application layer: router, presence, runs, jobs and handlers, hosted in memory.

Requests go through real ServerConnections and the real handlers (``conformance.core_driver.SimHost``
is the in-memory host); nothing sleeps: virtual time moves only when a test advances it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.core_driver import CONFIG_PATH, SimHost
from gateway_core import ServerPolicy, SharedSecret
from gateway_core import errors as E
from gateway_core.app import LATER, GatewayApp, HostFacts, Refused, Router, Sleep, default_router, routes
from gateway_core.app.presence import PresenceTable
from gateway_core.app.runs import Run, RunTable
from gateway_core.frames import PresenceEntry

ADMIN = ["operator.read", "operator.write", "operator.admin"]


class Client:
    """One in-memory connection to a SimHost, speaking raw frames."""

    def __init__(self, host: SimHost, name: str = "c", scopes: list[str] | None = None) -> None:
        self.host, self.name = host, name
        host.open(name, None, None)
        challenge = self.next_frame()
        assert challenge["event"] == "connect.challenge"
        params = {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
            "role": "operator",
            "scopes": scopes if scopes is not None else ADMIN,
            "auth": {"token": "T"},
        }
        hello = self.call("connect", params)
        assert hello["ok"], hello
        self.n = 0

    def next_frame(self) -> dict[str, Any]:
        box = self.host.inbox[self.name]
        assert box, "nothing received"
        item = box.popleft()
        assert item.kind == "frame", item
        return item.frame

    def frames(self) -> list[dict[str, Any]]:
        box = self.host.inbox[self.name]
        out = [item.frame for item in box if item.kind == "frame"]
        box.clear()
        return out

    def call(self, method: str, params: Any = None, rid: str | None = None) -> dict[str, Any]:
        rid = rid or f"r-{method}"
        frame: dict[str, Any] = {"type": "req", "id": rid, "method": method}
        if params is not None:
            frame["params"] = params
        self.host.deliver(self.name, json.dumps(frame))
        self.host.pump()
        for f in self.frames():
            if f.get("type") == "res" and f.get("id") == rid:
                return f
        raise AssertionError(f"no answer to {method}")


def test_presence_table_stays_bounded_and_lists_newest_first() -> None:
    table = PresenceTable(max_rows=200)
    for i in range(20_000):
        table.upsert(f"c{i}", PresenceEntry(ts=1_000 + i))
    assert len(table) == 200
    rows = table.listing(20_999, PresenceEntry(ts=0, reason="self"))
    assert len(rows) == 200 and rows[0].reason == "self"
    assert [r.ts for r in rows[1:4]] == [20_999, 20_998, 20_997]


def test_presence_rows_expire_oldest_first() -> None:
    table = PresenceTable(ttl_ms=1_000)
    table.upsert("old", PresenceEntry(ts=0))
    table.upsert("new", PresenceEntry(ts=900))
    table.touch("old", 950)  # a pong keeps a row alive
    assert [r.ts for r in table.newest(1_500, 10)] == [950, 900]
    assert table.newest(2_000, 10) == []


def test_run_table_prunes_finished_runs_and_keeps_active_ones() -> None:
    runs = RunTable(ttl_ms=10_000, max_finished=100)
    active = runs.add(Run(run_id="live", session_key="k", started_at=0), 0)
    for i in range(5_000):
        run = runs.add(Run(run_id=f"r{i}", session_key="k", started_at=i), i)
        runs.finish(run, "ok", i)
    assert len(runs) <= 101 and runs.get("live") is active
    assert runs.get("r4999") is not None and runs.get("r0") is None
    runs.prune(1_000_000)
    assert len(runs) == 1


def test_run_seq_is_per_run() -> None:
    a, b = Run(run_id="a", session_key="k", started_at=0), Run(run_id="b", session_key="k", started_at=0)
    assert [a.next_seq(), a.next_seq(), b.next_seq()] == [1, 2, 1]


def test_a_method_is_routed_once() -> None:
    row = routes("x", [("health", lambda ctx, p: None)])
    with pytest.raises(ValueError, match="routed twice"):
        Router(row, routes("y", [("health", lambda ctx, p: None)]))


def test_the_router_is_the_advertised_method_set() -> None:
    host = SimHost("token", "T", "P")
    assert host.app.policy.implemented_methods == default_router().methods


def test_handlers_answer_through_the_host() -> None:
    c = Client(SimHost("token", "T", "P"))
    assert c.call("health")["payload"]["ok"] is True
    assert c.call("set-heartbeats", {"enabled": False})["payload"] == {"ok": True, "enabled": False}
    assert c.call("health")["payload"]["heartbeatSeconds"] == 0


def test_config_set_writes_through_an_effect_and_keeps_a_backup() -> None:
    host = SimHost("token", "T", "P")
    c = Client(host)
    got = c.call("config.get", {})["payload"]
    new = json.dumps({"gateway": {"mode": "local", "auth": {"mode": "token", "token": "T"}}})
    res = c.call("config.set", {"raw": new, "baseHash": got["hash"]})
    assert res["ok"], res
    assert json.loads(host.files[CONFIG_PATH]) == json.loads(new)
    assert host.files[CONFIG_PATH + ".bak"]
    assert res["payload"]["config"]["gateway"]["auth"]["token"] == "__OPENCLAW_REDACTED__"


def test_a_failed_write_is_answered_without_host_paths() -> None:
    host = SimHost("token", "T", "P")
    c = Client(host)
    got = c.call("config.get", {})["payload"]
    host.write_failure = "Read-only file system"
    res = c.call("config.set", {"raw": "{}", "baseHash": got["hash"]})
    assert res["ok"] is False
    assert res["error"]["code"] == "UNAVAILABLE"
    assert res["error"]["message"] == "config write failed: read-only file system; retry when storage is writable"
    assert "/virtual" not in json.dumps(res)
    assert any("config write failed" in line and CONFIG_PATH in line for line in host.log_lines)


def test_a_handler_that_raises_answers_unavailable_and_logs() -> None:
    def broken(ctx: Any, p: Any) -> Any:
        raise RuntimeError("boom")

    host = SimHost("token", "T", "P")
    host.app.router = Router(routes("t", [("health", broken)]))
    c = Client(host)
    res = c.call("health")
    assert res["ok"] is False and res["error"] == {"code": "UNAVAILABLE", "message": "boom"}
    assert any("handler health failed" in line for line in host.log_lines)


def test_generator_handlers_resume_on_virtual_time() -> None:
    def slow(ctx: Any, p: Any) -> Any:
        yield Sleep(5)
        return {"waitedUntil": ctx.now}

    host = SimHost("token", "T", "P")
    host.app.router = Router(routes("t", [("status", slow)]))
    c = Client(host)
    c.host.deliver(c.name, json.dumps({"type": "req", "id": "s", "method": "status"}))
    host.pump()
    assert not [f for f in c.frames() if f.get("id") == "s"]
    host.advance_to(host.now + 5)
    answer = [f for f in c.frames() if f.get("id") == "s"]
    assert answer and answer[0]["payload"]["waitedUntil"] == pytest.approx(5, abs=0.01)


def test_refused_carries_its_payload() -> None:
    def refuse(ctx: Any, p: Any) -> Any:
        raise Refused(E.unavailable("no"), {"runId": "r"})

    host = SimHost("token", "T", "P")
    host.app.router = Router(routes("t", [("status", refuse)]))
    res = Client(host).call("status")
    assert res["ok"] is False and res["payload"] == {"runId": "r"}


def test_later_leaves_the_answer_to_someone_else() -> None:
    host = SimHost("token", "T", "P")
    host.app.router = Router(routes("t", [("status", lambda ctx, p: LATER)]))
    c = Client(host)
    c.host.deliver(c.name, json.dumps({"type": "req", "id": "s", "method": "status"}))
    host.pump()
    assert not [f for f in c.frames() if f.get("id") == "s"]


def test_app_is_constructible_without_a_host() -> None:
    app = GatewayApp(
        router=default_router(),
        facts=HostFacts(version="v", boot_id="b"),
        policy=ServerPolicy(),
        secret=SharedSecret(mode="none"),
        config=None,
        now=0.0,
        wall_ms=0,
    )
    assert app.next_deadline() == 30.0
    app.handle_timer(30.0, 1)
    assert [o.event for o in app.take_outbox()] == ["tick", "health"]


def test_model_chain_is_kept_until_the_config_or_the_keys_change() -> None:
    """A turn's models are resolved once per config (and provider keys), not per turn: the same
    answer while neither changes, the new one after a reload or new keys."""
    from conformance.core_driver import SimHost

    app = SimHost("token", "T", "P").app

    def cfg(primary: str, key: str = "sk-a") -> dict:
        return {"agents": {"defaults": {"model": {"primary": primary}}},
                "models": {"providers": {"up": {"baseUrl": "http://127.0.0.1:9/v1", "apiKey": key,
                                                "models": [{"id": "m1"}, {"id": "m2"}]}}}}  # fmt: skip

    app.apply_config(cfg("up/m1"), {"models"})
    agent = app.roster.get("main")
    first = app.model_chain(agent)
    assert [t.ref for t in first] == ["up/m1"] and app.model_chain(agent) == first
    assert [t.ref for t in app.model_chain(agent, "up/m2")] == ["up/m2"]
    app.apply_config(cfg("up/m2"), {"models"})
    assert [t.ref for t in app.model_chain(app.roster.get("main"))] == ["up/m2"]
    app.apply_config(cfg("up/m2", key="sk-b"), {"models"})
    assert app.model_chain(app.roster.get("main"))[0].api_key == "sk-b"
    app.apply_config(app.config, set(), provider_keys={"up": "sk-from-env"})
    assert app.model_chain(app.roster.get("main"))[0].api_key == "sk-from-env"
