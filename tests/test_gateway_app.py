"""The application's tables and broadcasts, in process (tests/shell_harness.py): the presence
table and the run table stay bounded under churn (issue 10 item 6), a broadcast is encoded once,
and storage failures are answered without host paths (item 7)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import trio
from shell_harness import client, make_gateway, request, settle

from gateway_trio import app as app_mod


def test_presence_table_is_bounded_under_churn(tmp_path: Path) -> None:
    async def main() -> None:
        gw = make_gateway(tmp_path)
        for _ in range(450):  # scope-less token holders: tracked in presence, as the attacker
            async with client(gw, client_id="test", mode="test", scopes=[]):
                pass
        assert len(gw.presence) <= app_mod.PRESENCE_MAX
        async with client(gw) as (session, transport):
            request(session, "p1", "system-presence")
            await settle()
            (res,) = [f for f in transport.frames() if f.get("id") == "p1"]
            assert len(res["payload"]) <= app_mod.PRESENCE_MAX
            assert res["payload"][0]["reason"] == "self"
            request(session, "e1", "system-event", {"text": "hello"})
            await settle()
            frames = list(transport.frames())
            (presence,) = [f for f in frames if f.get("event") == "presence"]
            assert len(presence["payload"]["presence"]) <= app_mod.PRESENCE_MAX
            assert presence["payload"]["presence"][1]["text"] == "hello"  # newest first after self

    trio.run(main)


def test_run_table_is_pruned(tmp_path: Path) -> None:
    async def main() -> None:
        gw = make_gateway(tmp_path)
        async with client(gw) as (session, transport):
            total = app_mod.RUNS_MAX + 200
            for i in range(total):
                request(session, f"a{i}", "agent", {"message": "hi", "idempotencyKey": f"k{i}"})
                if i % 50 == 49:
                    await settle()  # the runs finish (no model provider: at once, with an error)
            await settle()
            finals = [f for f in transport.frames() if f.get("type") == "res" and f["payload"].get("status") == "error"]
            assert len(finals) == total  # every run ran and ended
            assert len(gw.runs) == app_mod.RUNS_MAX
            assert "k0" not in gw.runs and f"k{total - 1}" in gw.runs
            for run in gw.runs.values():  # all finished long ago
                run.ended_at = (run.ended_at or 0) - app_mod.RUN_TTL_MS - 1
            request(session, "late", "agent", {"message": "hi", "idempotencyKey": "late"})
            await settle()
            assert list(gw.runs) == ["late"]

    trio.run(main)


def test_broadcast_payload_is_encoded_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = {"n": 0}
    real = app_mod.msgspec.json.encode

    def counting(obj, *a, **kw):  # type: ignore[no-untyped-def]
        if isinstance(obj, dict) and "presence" in obj:
            calls["n"] += 1
        return real(obj, *a, **kw)

    async def main() -> None:
        gw = make_gateway(tmp_path)
        async with client(gw) as (a, ta), client(gw) as (b, tb), client(gw) as (c, tc):
            monkeypatch.setattr(app_mod.msgspec.json, "encode", counting)
            request(a, "e1", "system-event", {"text": "fan-out"})
            await settle()
            monkeypatch.setattr(app_mod.msgspec.json, "encode", real)
            for t in (ta, tb, tc):
                events = [f for f in t.frames() if f.get("event") == "presence"]
                assert events and events[-1]["payload"]["presence"][1]["text"] == "fan-out"

    trio.run(main)
    assert calls["n"] == 1


def test_config_write_failure_is_answered_without_paths(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    secret_dir = str(tmp_path)

    def read_only(path, data, mode=0o600):  # type: ignore[no-untyped-def]
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    async def main() -> None:
        gw = make_gateway(tmp_path)
        async with client(gw) as (session, transport):
            monkeypatch.setattr(app_mod, "atomic_write", read_only)
            request(session, "s1", "config.set", {"raw": '{"gateway":{"mode":"local"}}'})
            await settle()
            (res,) = [f for f in transport.frames() if f.get("id") == "s1"]
            assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE", res
            assert secret_dir not in str(res) and "Errno" not in str(res)
            assert (
                res["error"]["message"] == "config write failed: read-only file system; retry when storage is writable"
            )
            monkeypatch.undo()
            request(session, "s2", "config.set", {"raw": '{"gateway":{"mode":"local"}}'})
            await settle()
            (res,) = [f for f in transport.frames() if f.get("id") == "s2"]
            assert res["ok"] is True, res  # recovered: the next write goes through

    trio.run(main)
    records = [json.loads(line) for line in (tmp_path / "gw.log").read_text().splitlines()]
    causes = [r["message"] for r in records if "write failed: [Errno 30]" in r.get("message", "")]
    assert len(causes) == 1 and secret_dir in causes[0]  # the cause once, with its path, in the log only
