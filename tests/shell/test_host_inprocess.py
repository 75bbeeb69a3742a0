"""The Trio host in process: sessions over memory transports (tests/shell_harness.py), on MockClock.

No sockets and no wall-clock waits: the MockClock jumps virtual time forward whenever every task
has been blocked for a moment, so a 30 s ``agent.wait`` or a 30 s tick completes at once. (The
threshold is a real interval, not 0, so that work in a worker thread — the session store, a file
effect — finishes before virtual time races ahead.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio
import trio.testing
from shell_harness import client, make_gateway, next_frame, request, serving

#: Real seconds every task must be blocked before virtual time jumps; a jump costs this much.
AUTOJUMP_S = 1.0


def _run(tmp_path: Path, body: Any) -> None:
    async def main() -> None:
        gw = make_gateway(tmp_path)
        async with serving(gw), client(gw) as (session, transport):
            with trio.fail_after(120):  # virtual seconds
                await body(gw, session, transport)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=AUTOJUMP_S))


async def _answer(transport: Any, rid: str, pred: Any = None) -> dict[str, Any]:
    return await next_frame(transport, lambda f: f.get("id") == rid and (pred is None or pred(f)), timeout=110)


def test_agent_wait_for_an_unknown_run_waits_its_timeout_on_virtual_time(tmp_path: Path) -> None:
    async def body(gw: Any, session: Any, transport: Any) -> None:
        t0 = trio.current_time()
        request(session, "w", "agent.wait", {"runId": "nope", "timeoutMs": 30_000})
        res = await _answer(transport, "w")
        assert res["payload"] == {"runId": "nope", "status": "timeout"}
        assert 30 <= trio.current_time() - t0 < 32

    _run(tmp_path, body)


def test_agent_two_stage_and_wait_through_the_host(tmp_path: Path) -> None:
    async def body(gw: Any, session: Any, transport: Any) -> None:
        request(session, "a", "agent", {"message": "hi", "idempotencyKey": "run-1"})
        final = await _answer(transport, "a", lambda f: (f.get("payload") or {}).get("status") != "accepted")
        assert final["ok"] is True and final["payload"]["status"] == "ok"
        text = final["payload"]["result"]["payloads"][0]["text"]
        assert '"hi"' in text and "No model provider is configured" in text  # the offline default
        request(session, "w", "agent.wait", {"runId": "run-1", "timeoutMs": 1000})
        assert (await _answer(transport, "w"))["payload"]["status"] == "ok"

    _run(tmp_path, body)


def test_ticks_come_from_the_app_schedule(tmp_path: Path) -> None:
    async def body(gw: Any, session: Any, transport: Any) -> None:
        t0 = trio.current_time()
        tick = await next_frame(transport, lambda f: f.get("event") == "tick", timeout=110)
        assert 29 <= trio.current_time() - t0 <= 32
        assert isinstance(tick["payload"]["ts"], int)

    _run(tmp_path, body)


def test_config_writes_happen_off_the_loop_and_land_on_disk(tmp_path: Path) -> None:
    async def body(gw: Any, session: Any, transport: Any) -> None:
        request(session, "s", "config.set", {"raw": json.dumps({"gateway": {"mode": "local"}})})
        res = await _answer(transport, "s")
        assert res["ok"], res
        assert json.loads((tmp_path / "openclaw.json").read_text()) == {"gateway": {"mode": "local"}}

    _run(tmp_path, body)


def test_a_storage_failure_is_a_clear_answer(tmp_path: Path) -> None:
    async def body(gw: Any, session: Any, transport: Any) -> None:
        (tmp_path / "openclaw.json").mkdir()  # reading a directory fails with EISDIR
        request(session, "g", "config.get", {})
        res = await _answer(transport, "g")
        assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE"
        assert res["error"]["message"].startswith("config read failed: ")
        assert str(tmp_path) not in json.dumps(res)

    _run(tmp_path, body)
