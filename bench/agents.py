"""Agent-run benchmark: our gateway vs the published one, side by side, with an upstream that answers at once.

    python -m bench.agents                  # both gateways (several minutes: the published one is slow)
    python -m bench.agents --quick          # fewer runs
    python -m bench.agents --only ours      # one column

For each gateway, in one run, on the http-openai-observed.md §0.1 config pointed at the scripted
upstream (tests/upstream.py, in its own process, replies in 4 deltas with no delay):

- **gateway overhead**: ``chat.send`` → the run's ``chat`` final, minus the upstream's own time for
  that call (from the upstream's log), p50/p99 over sequential runs (a fresh session each time);
- **runs/s** with 1, 8 and 64 concurrent sessions (one connection each, closed loop);
- **sessions.list over 10,000 sessions**: the sessions are created through the gateway
  (``sessions.patch``), then ``sessions.list {limit: 100}`` is timed (median of 20), plus
  ``{limit: 10000}``.

Writes ``bench/RESULTS-agents.md`` (``--no-write`` to only print). Every process runs in its own
process group and is killed by pid on every exit path; only 127.0.0.1 and free ports are used.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import trio
from trio_websocket import connect_websocket_url

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = Path.home() / ".cache" / "openclaw-reference" / "openclaw-2026.9.6"
TOKEN = "bench-agents-token-0123456789"
SCOPES = ["operator.read", "operator.write", "operator.admin"]
sys.path.insert(0, str(REPO / "tests"))


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 18789:
            return port


class Procs:
    def __init__(self) -> None:
        self.live: list[subprocess.Popen[Any]] = []

    def spawn(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[Any]:
        with open(log, "ab") as fh:
            p = subprocess.Popen(argv, env=env, stdout=fh, stderr=fh, stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        self.live.append(p)
        return p

    def kill(self, p: subprocess.Popen[Any]) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        if p in self.live:
            self.live.remove(p)

    def kill_all(self) -> None:
        for p in list(self.live):
            self.kill(p)


def connect_frame() -> str:
    return json.dumps(
        {"type": "req", "id": "c", "method": "connect", "params": {
            "minProtocol": 4, "maxProtocol": 4, "role": "operator", "scopes": SCOPES, "auth": {"token": TOKEN},
            "client": {"id": "cli", "version": "bench", "platform": "linux", "mode": "cli"}}}
    )


class Conn:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def hello(self) -> None:
        while json.loads(await self.ws.get_message()).get("event") != "connect.challenge":
            pass
        await self.ws.send_message(connect_frame())
        while True:
            frame = json.loads(await self.ws.get_message())
            if frame.get("type") == "res":
                assert frame["ok"], frame
                return

    async def call(self, method: str, params: Any) -> dict[str, Any]:
        rid = uuid.uuid4().hex
        await self.ws.send_message(json.dumps({"type": "req", "id": rid, "method": method, "params": params}))
        while True:
            frame = json.loads(await self.ws.get_message())
            if frame.get("type") == "res" and frame.get("id") == rid:
                return frame

    async def turn(self, session: str, text: str) -> float:
        """One chat.send run to its final; seconds from send to the final event."""
        key = uuid.uuid4().hex
        t0 = time.perf_counter()
        await self.ws.send_message(json.dumps({"type": "req", "id": key, "method": "chat.send",
                                               "params": {"sessionKey": session, "message": text, "idempotencyKey": key}}))
        while True:
            text = await self.ws.get_message()
            # Every run's events reach every connection: parse only what can be this run's end.
            if key not in text or '"state"' not in text:
                continue
            frame = json.loads(text)
            p = frame.get("payload") or {}
            if frame.get("event") == "chat" and p.get("runId") == key and p.get("state") in ("final", "error", "aborted"):
                assert p["state"] == "final", p
                return time.perf_counter() - t0


async def open_conn(nursery: trio.Nursery, port: int) -> Conn:
    ws = await connect_websocket_url(nursery, f"ws://127.0.0.1:{port}/", max_message_size=64 * 1024 * 1024)
    conn = Conn(ws)
    await conn.hello()
    return conn


def upstream_times(log: Path) -> list[float]:
    """Per chat call, the upstream's own seconds (request received → response done), in order."""
    out: list[float] = []
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "response" and rec.get("status") == 200 and rec.get("mode") in ("normal", "toolcall", "text"):
            out.append(float(rec.get("elapsed_s") or 0.0))
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


async def _worker(c: Conn, session: str, stop_at: float, done: list[int]) -> None:
    """Closed loop: one run after another in ``session`` until ``stop_at``."""
    n = 0
    while trio.current_time() < stop_at:
        await c.turn(session, f"run {n}")
        done[0] += 1
        n += 1


async def measure(port: int, up_log: Path, quick: bool) -> dict[str, Any]:
    res: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        conn = await open_conn(nursery, port)
        for i in range(3 if quick else 10):
            await conn.turn(f"warm-{i}", "warm up")
        before = len(upstream_times(up_log))
        totals = [await conn.turn(f"lat-{i}-{uuid.uuid4().hex[:6]}", "latency probe") for i in range(20 if quick else 100)]
        await trio.sleep(0.5)
        ups = upstream_times(up_log)[before : before + len(totals)]
        overhead = [max(0.0, t - u) for t, u in zip(totals, ups, strict=False)]
        res["latency"] = {
            "runs": len(totals), "total_p50_ms": pct(totals, 50) * 1000, "total_p99_ms": pct(totals, 99) * 1000,
            "upstream_p50_ms": pct(ups, 50) * 1000 if ups else None,
            "overhead_p50_ms": pct(overhead, 50) * 1000 if overhead else None,
            "overhead_p99_ms": pct(overhead, 99) * 1000 if overhead else None,
        }
        res["throughput"] = {}
        for concurrency in (1, 8, 64):
            # The phase's connections live in their own nursery, cancelled at the end (no closing
            # handshake: trio-websocket fails on a ping that arrives while it is closing).
            async with trio.open_nursery() as phase:
                conns = [await open_conn(phase, port) for _ in range(concurrency)]
                done = [0]
                window = 3.0 if quick else 8.0

                t0 = trio.current_time()
                async with trio.open_nursery() as workers:
                    for idx, c in enumerate(conns):
                        workers.start_soon(_worker, c, f"tp-{concurrency}-{idx}", t0 + window, done)
                elapsed = trio.current_time() - t0
                res["throughput"][concurrency] = done[0] / elapsed
                phase.cancel_scope.cancel()
        # sessions.list over 10,000 sessions (created through the gateway)
        target = 2_000 if quick else 10_000
        t0 = time.perf_counter()
        seeders = [await open_conn(nursery, port) for _ in range(8)]
        created = [0]
        deadline = time.perf_counter() + 900

        async def seed(c: Conn, start: int) -> None:
            for i in range(start, target, len(seeders)):
                if time.perf_counter() > deadline:
                    return
                ok = await c.call("sessions.patch", {"key": f"agent:main:bench-{i:05d}", "label": f"bench {i}"})
                if ok.get("ok"):
                    created[0] += 1

        async with trio.open_nursery() as seeding:
            for j, c in enumerate(seeders):
                seeding.start_soon(seed, c, j)
        res["seed"] = {"sessions": created[0], "seconds": time.perf_counter() - t0}
        conn = await open_conn(nursery, port)  # a fresh one: the published gateway may drop the long-idle first
        times = []
        total_count = None
        for _ in range(5 if quick else 20):
            t1 = time.perf_counter()
            got = await conn.call("sessions.list", {"limit": 100})
            times.append(time.perf_counter() - t1)
            total_count = (got.get("payload") or {}).get("totalCount")
        t1 = time.perf_counter()
        full = await conn.call("sessions.list", {"limit": 10_000})
        res["sessions_list"] = {
            "totalCount": total_count, "limit100_p50_ms": statistics.median(times) * 1000,
            "limit10000_ms": (time.perf_counter() - t1) * 1000, "rows_full": len((full.get("payload") or {}).get("sessions") or []),
        }
        if not (got.get("ok") and full.get("ok")):  # a refusal is not a timing: report it instead
            res["sessions_list"] = {"error": (got.get("error") or full.get("error") or {}), "rows_full": 0}
        nursery.cancel_scope.cancel()
    return res


def config(port: int, upstream: str) -> dict[str, Any]:
    from agent_gateways import observed_config

    cfg = observed_config(port, upstream)
    cfg["gateway"]["auth"]["token"] = TOKEN
    return cfg


def run_one(which: str, work: Path, ref: Path | None, quick: bool, procs: Procs) -> dict[str, Any]:
    up_port, gw_port = free_port(), free_port()
    up_log = work / f"{which}-upstream.jsonl"
    up_log.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    up = procs.spawn([sys.executable, str(REPO / "tests" / "upstream.py"), "--port", str(up_port), "--log", str(up_log),
                      "--api-key", "sk-upstream-test-key", "--delay", "0"], env, work / f"{which}-upstream.out")
    home = work / f"{which}-home"
    (home / ".openclaw").mkdir(parents=True)
    (home / ".openclaw" / "openclaw.json").write_text(json.dumps(config(gw_port, f"http://127.0.0.1:{up_port}/v1")))
    genv = {**env, "HOME": str(home), "OPENCLAW_DISABLE_BONJOUR": "1", "PYTHONPATH": str(REPO)}
    argv = ([sys.executable, "-m", "openclaw_cli", "gateway", "run"] if which == "ours" else [str(ref), "gateway", "run"])
    gw = procs.spawn([*argv, "--port", str(gw_port)], genv, work / f"{which}-gateway.out")
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with socket.create_connection(("127.0.0.1", gw_port), timeout=1) as s:
                    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if b" 200 " in s.recv(200):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or gw.poll() is not None:
                raise RuntimeError(f"{which} gateway not ready; see {work}/{which}-gateway.out")
            time.sleep(0.2)
        print(f"[bench.agents] {which}: ready, measuring", file=sys.stderr)
        return trio.run(measure, gw_port, up_log, quick)
    finally:
        procs.kill(gw)
        procs.kill(up)


def render(res: dict[str, dict[str, Any]]) -> str:
    cols = [c for c in ("ours", "reference") if c in res]
    label = {"ours": "ours (Python)", "reference": "published (Node)"}

    def cell(c: str, path: list[Any], fmt: str) -> str:
        node: Any = res[c]
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        return format(node, fmt) if isinstance(node, int | float) else "—"

    rows = [
        ("gateway overhead p50 (ms)", ["latency", "overhead_p50_ms"], ".1f"),
        ("gateway overhead p99 (ms)", ["latency", "overhead_p99_ms"], ".1f"),
        ("chat.send → final p50 (ms)", ["latency", "total_p50_ms"], ".1f"),
        ("upstream's own time p50 (ms)", ["latency", "upstream_p50_ms"], ".1f"),
        ("runs/s, 1 session", ["throughput", 1], ".1f"),
        ("runs/s, 8 sessions", ["throughput", 8], ".1f"),
        ("runs/s, 64 sessions", ["throughput", 64], ".1f"),
        ("sessions created for the list test", ["seed", "sessions"], "d"),
        ("sessions.list {limit:100} p50 (ms)", ["sessions_list", "limit100_p50_ms"], ".1f"),
        ("sessions.list {limit:10000} (ms)", ["sessions_list", "limit10000_ms"], ".1f"),
        ("sessions.list {limit:10000}: rows returned", ["sessions_list", "rows_full"], "d"),
    ]
    out = ["| figure | " + " | ".join(label[c] for c in cols) + (" | ratio |" if len(cols) == 2 else " |"),
           "|---|" + "---|" * len(cols) + ("---|" if len(cols) == 2 else "")]
    for name, path, fmt in rows:
        cells = [cell(c, path, fmt) for c in cols]
        ratio = ""
        if len(cols) == 2:
            try:
                a, b = float(cells[0]), float(cells[1])
                ratio = f" {b / a:.1f}× |" if "runs/s" not in name and "created" not in name else f" {a / b:.1f}× |"
            except (ValueError, ZeroDivisionError):
                ratio = " — |"
        out.append(f"| {name} | " + " | ".join(cells) + (" |" + ratio if len(cols) == 2 else " |"))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["ours", "reference"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reference-bin", default=os.environ.get("OPENCLAW_REFERENCE_BIN") or str(DEFAULT_REFERENCE))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    ref = Path(args.reference_bin) if Path(args.reference_bin).exists() else None
    which = [args.only] if args.only else ["ours", *(["reference"] if ref else [])]
    procs = Procs()
    res: dict[str, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp:
            for w in which:
                res[w] = run_one(w, Path(tmp), ref, args.quick, procs)
    finally:
        procs.kill_all()
    table = render(res)
    report = (
        "# Agent runs: ours vs the published gateway\n\n"
        f"`python -m bench.agents{' --quick' if args.quick else ''}`, one run, "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs. Ratios: how many times better ours is.\n\n"
        f"{table}\n\n<details><summary>raw</summary>\n\n```json\n{json.dumps(res, indent=2)}\n```\n</details>\n"
    )
    print(report)
    if not args.no_write:
        (REPO / "bench" / "RESULTS-agents.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
