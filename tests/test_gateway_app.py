"""The application's tables and broadcasts, in process (tests/shell_harness.py): the presence
table and the run table stay bounded under churn (issue 10 item 6), a broadcast is encoded once,
and storage failures are answered without host paths (item 7)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import trio
from shell_harness import client, make_gateway, request, serving, settle, until

from gateway_core import broadcast as broadcast_mod
from gateway_core.app.presence import DEFAULT_PRESENCE_MAX
from gateway_core.app.runs import DEFAULT_MAX_FINISHED_RUNS, DEFAULT_RUN_TTL_MS
from gateway_trio import effects as effects_mod


def test_presence_table_is_bounded_under_churn(tmp_path: Path) -> None:
    async def main() -> None:
        gw = make_gateway(tmp_path)
        for _ in range(450):  # scope-less token holders: tracked in presence, as the attacker
            async with client(gw, client_id="test", mode="test", scopes=[]):
                pass
        assert len(gw.app.presence) <= DEFAULT_PRESENCE_MAX
        async with client(gw) as (session, transport):
            request(session, "p1", "system-presence")
            await settle()
            (res,) = [f for f in transport.frames() if f.get("id") == "p1"]
            assert len(res["payload"]) <= DEFAULT_PRESENCE_MAX
            assert res["payload"][0]["reason"] == "self"
            request(session, "e1", "system-event", {"text": "hello"})
            await settle()
            frames = list(transport.frames())
            (presence,) = [f for f in frames if f.get("event") == "presence"]
            assert len(presence["payload"]["presence"]) <= DEFAULT_PRESENCE_MAX
            assert presence["payload"]["presence"][1]["text"] == "hello"  # newest first after self

    trio.run(main)


def test_run_table_is_pruned(tmp_path: Path) -> None:
    async def main() -> None:
        gw = make_gateway(tmp_path)
        async with serving(gw), client(gw) as (session, transport):
            total = DEFAULT_MAX_FINISHED_RUNS + 200
            finals: list[dict] = []

            def all_final() -> bool:
                finals.extend(f for f in transport.frames() if f.get("type") == "res" and (f.get("payload") or {}).get("status") == "ok")
                return len(finals) >= total

            for i in range(total):
                request(session, f"a{i}", "agent", {"message": "hi", "idempotencyKey": f"k{i}"})
                if i % 100 == 99:  # stay well under the in-flight cap (256): wait for the batch
                    await until(lambda n=i + 1: all_final() or len(finals) >= n)
            await until(all_final)  # every run ran and ended (the offline default answers)
            runs = gw.app.runs
            assert len(runs) == DEFAULT_MAX_FINISHED_RUNS
            assert runs.get("k0") is None and runs.get(f"k{total - 1}") is not None
            later = max(r.ended_at or 0 for r in (runs.get(f"k{i}") for i in range(200, total)) if r)
            runs.prune(later + DEFAULT_RUN_TTL_MS + 1)  # all finished long ago
            assert len(runs) == 0

    trio.run(main)


def test_broadcast_payload_is_encoded_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = {"n": 0}
    real = broadcast_mod.encode_bytes  # what EncodedEvent encodes a broadcast's payload with

    def counting(obj, *a, **kw):  # type: ignore[no-untyped-def]
        if isinstance(obj, dict) and "presence" in obj:
            calls["n"] += 1
        return real(obj, *a, **kw)

    async def main() -> None:
        gw = make_gateway(tmp_path)
        async with client(gw) as (a, ta), client(gw) as (b, tb), client(gw) as (c, tc):
            monkeypatch.setattr(broadcast_mod, "encode_bytes", counting)
            request(a, "e1", "system-event", {"text": "fan-out"})
            await settle()
            monkeypatch.setattr(broadcast_mod, "encode_bytes", real)
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
            monkeypatch.setattr(effects_mod, "atomic_write", read_only)
            request(session, "s1", "config.set", {"raw": '{"gateway":{"mode":"local"}}'})
            got: list[dict] = []
            await until(lambda: got.extend(f for f in transport.frames() if f.get("id") == "s1") or bool(got))
            (res,) = got
            assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE", res
            assert secret_dir not in str(res) and "Errno" not in str(res)
            assert (
                res["error"]["message"] == "config write failed: read-only file system; retry when storage is writable"
            )
            monkeypatch.undo()
            request(session, "s2", "config.set", {"raw": '{"gateway":{"mode":"local"}}'})
            got.clear()
            await until(lambda: got.extend(f for f in transport.frames() if f.get("id") == "s2") or bool(got))
            (res,) = got
            assert res["ok"] is True, res  # recovered: the next write goes through

    trio.run(main)
    records = [json.loads(line) for line in (tmp_path / "gw.log").read_text().splitlines()]
    causes = [r["message"] for r in records if "write failed: [Errno 30]" in r.get("message", "")]
    assert len(causes) == 1 and secret_dir in causes[0]  # the cause once, with its path, in the log only


def test_allowed_origins_are_seeded_for_non_loopback_binds(tmp_path: Path) -> None:
    """runtime-cli.md §5.4: a lan/custom/auto/tailnet bind without allowedOrigins gets the local
    origins for this runtime (logged once, never written to the config)."""

    async def main() -> None:
        lan = make_gateway(tmp_path / "lan", bind="lan")
        assert lan.policy.allowed_origins == ("http://localhost:18789", "http://127.0.0.1:18789")
        custom = make_gateway(tmp_path / "custom", {"gateway": {"customBindHost": "10.1.2.3"}}, bind="custom")
        assert custom.policy.allowed_origins[-1] == "http://10.1.2.3:18789"
        configured = make_gateway(
            tmp_path / "configured", {"gateway": {"controlUi": {"allowedOrigins": ["https://ui.example"]}}}, bind="lan"
        )
        assert configured.policy.allowed_origins == ("https://ui.example",)
        assert make_gateway(tmp_path / "loopback").policy.allowed_origins == ()

    trio.run(main)
    messages = [json.loads(line)["message"] for line in (tmp_path / "lan" / "gw.log").read_text().splitlines()]
    want = 'seeded gateway.controlUi.allowedOrigins ["http://localhost:18789","http://127.0.0.1:18789"] for bind=lan'
    assert any(want in m for m in messages), messages
    configured_log = tmp_path / "configured" / "gw.log"  # nothing was logged there at all
    assert not configured_log.exists() or "seeded" not in configured_log.read_text()
