"""Channel pipeline benchmark: our gateway vs the published one, side by side, over Telegram.

    python -m bench.channels                # both gateways (several minutes: the published one is slow)
    python -m bench.channels --quick        # fewer messages
    python -m bench.channels --only ours    # one column

Each gateway, in one run, gets the http-openai-observed.md §0.1 config pointed at the scripted
upstream (tests/upstream.py in its own process, replying at once) plus ``channels.telegram``
pointed at the Bot-API-shaped server (tests/botapi.py, in this process) with ``dmPolicy: open``
and one session per sender. Our gateway is measured twice: with that upstream, and with no
provider at all (the built-in offline echo model) — the path with nothing outside the gateway.

- **inbound → reply latency**: one DM at a time, from the update being queued at the Bot API
  server to the ``sendMessage`` carrying its reply arriving there (includes the long poll's
  wake-up, the durable queues, the agent turn and the model call); p50/p99;
- **messages/s**: a burst of DMs, each from a different sender (the published channel merges a
  sender's rapid messages into one turn, which would hide messages), queued at once;
  messages / (first queued → last reply), with the latency of each message under that load;
- **memory per connected account**: the gateway's process-tree RSS with 1 and with 21 polling
  Telegram accounts (distinct tokens on the same server), ``(RSS₂₁ − RSS₁) / 20``.

Writes ``bench/RESULTS-channels.md`` (``--no-write`` to only print). Every process runs in its own
process group and is killed by pid on every exit path; only 127.0.0.1 and free ports are used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .agents import DEFAULT_REFERENCE, REPO, TOKEN, Procs, free_port, pct

sys.path.insert(0, str(REPO / "tests"))

from botapi import BotApi, Call  # noqa: E402

SENDERS = 20
MARKER = re.compile(r"(?:seq|burst)\d{4}")


def _rss_tree(pid: int) -> int:
    """KiB of VmRSS over ``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Clock:
    """Records when each reply reached the Bot API server (keyed by the message it answers)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.replies: dict[str, float] = {}
        self.event = threading.Event()

    def __call__(self, call: Call) -> None:
        if call.method == "sendMessage" and call.status == 200:
            found = MARKER.search(str(call.body.get("text", "")))
            if found is None:
                return
            with self.lock:
                self.replies.setdefault(found.group(0), time.monotonic())
            self.event.set()

    def wait(self, markers: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if all(m in self.replies for m in markers):
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.event.wait(min(left, 0.2))
            self.event.clear()


def config(port: int, upstream: str | None, api: BotApi, accounts: int = 1) -> dict[str, Any]:
    tg: dict[str, Any] = {"apiRoot": api.api_root, "dmPolicy": "open", "allowFrom": ["*"]}
    if accounts == 1:
        tg["botToken"] = api.token
    else:
        tokens = [api.token, *sorted(api.extra_tokens)][:accounts]
        tg["accounts"] = {f"a{i:02d}": {"botToken": t} for i, t in enumerate(tokens)}
    cfg: dict[str, Any] = {
        "gateway": {"mode": "local", "port": port, "bind": "loopback", "auth": {"mode": "token", "token": TOKEN}},
        "agents": {"defaults": {"heartbeat": {"every": "0m"}}},
        "session": {"dmScope": "per-peer"},
        "channels": {"telegram": tg},
    }
    if upstream:
        from agent_gateways import observed_config

        base = observed_config(port, upstream)
        base["gateway"]["auth"]["token"] = TOKEN
        base["session"], base["channels"] = cfg["session"], cfg["channels"]
        cfg = base
    return cfg


def start(which: str, work: Path, cfg: dict[str, Any], ref: Path | None, procs: Procs) -> Any:
    home = work / "home"
    (home / ".openclaw").mkdir(parents=True, exist_ok=True)
    cfg = json.loads(json.dumps(cfg))
    cfg.setdefault("logging", {})["file"] = str(work / "gw.log")
    (home / ".openclaw" / "openclaw.json").write_text(json.dumps(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_") and k != "TELEGRAM_BOT_TOKEN"}
    env.update(HOME=str(home), OPENCLAW_DISABLE_BONJOUR="1", PYTHONPATH=str(REPO))
    port = cfg["gateway"]["port"]
    if which == "reference":
        assert ref is not None
        return procs.spawn([str(ref), "gateway", "run", "--port", str(port)], env, work / "stdout.log")
    return procs.spawn([sys.executable, "-m", "openclaw_cli", "gateway", "run"], env, work / "stdout.log")


def wait_polling(api: BotApi, n: int, timeout: float) -> None:
    if not api.wait_for(lambda a: len(a.calls_of("getUpdates")) >= n, timeout):
        raise RuntimeError("the gateway never polled the Bot API")


def measure_pipeline(which: str, work: Path, ref: Path | None, upstream_url: str | None, quick: bool, procs: Procs) -> dict[str, Any]:
    clock = Clock()
    with BotApi(log=clock) as api:
        port = free_port()
        proc = start(which, work, config(port, upstream_url, api), ref, procs)
        try:
            t0 = time.monotonic()
            wait_polling(api, 2, 180)
            ready_s = time.monotonic() - t0
            seq = 10 if quick else 40
            pushed: dict[str, float] = {}
            for i in range(5 + seq):  # 5 warm-up messages first
                marker = f"seq{i:04d}"
                pushed[marker] = time.monotonic()
                api.dm(1000 + i % SENDERS, f"hello {marker}")
                if not clock.wait([marker], 120):
                    raise RuntimeError(f"no reply to {marker}")
            lat = [clock.replies[m] - pushed[m] for m in list(pushed)[5:]]
            burst = 60 if quick else 300
            markers = [f"burst{i:04d}" for i in range(burst)]
            t1 = time.monotonic()
            for i, marker in enumerate(markers):
                pushed[marker] = time.monotonic()
                api.dm(100_000 + i, f"load {marker}")  # one sender each: the published channel batches a sender's bursts
            ok = clock.wait(markers, 600)
            elapsed = max(clock.replies[m] for m in markers if m in clock.replies) - t1
            under = [clock.replies[m] - pushed[m] for m in markers if m in clock.replies]
            return {
                "ready_s": ready_s,
                "latency_ms": {"p50": pct(lat, 50) * 1000, "p99": pct(lat, 99) * 1000, "n": len(lat)},
                "burst": {"messages": burst, "answered": len(under), "complete": ok, "seconds": elapsed,
                          "msgs_per_s": len(under) / elapsed if elapsed > 0 else 0.0,
                          "p50_ms": pct(under, 50) * 1000, "p99_ms": pct(under, 99) * 1000},
                "rss_mib": _rss_tree(proc.pid) / 1024,
            }
        finally:
            procs.kill(proc)


def measure_memory(which: str, work: Path, ref: Path | None, upstream_url: str | None, procs: Procs, n: int = 21) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tokens = tuple(f"{700000 + i}:bench-token-{i:02d}" for i in range(1, n))
    for accounts in (1, n):
        with BotApi(extra_tokens=tokens) as api:
            port = free_port()
            sub = work / f"mem-{accounts}"
            sub.mkdir(parents=True, exist_ok=True)
            proc = start(which, sub, config(port, upstream_url, api, accounts), ref, procs)
            try:
                wait_polling(api, 2 * accounts, 240)
                time.sleep(8)
                samples = []
                for _ in range(5):
                    samples.append(_rss_tree(proc.pid))
                    time.sleep(0.5)
                out[accounts] = statistics.median(samples)
            finally:
                procs.kill(proc)
    out["per_account_kib"] = (out[n] - out[1]) / (n - 1)
    return out


def run(which: str, ref: Path | None, quick: bool, offline: bool = False) -> dict[str, Any]:
    procs = Procs()
    work = Path(tempfile.mkdtemp(prefix=f"openclaw-bench-channels-{which}-"))
    try:
        upstream_url = None
        if not offline:
            up_port = free_port()
            procs.spawn([sys.executable, str(REPO / "tests" / "upstream.py"), "--port", str(up_port), "--delay", "0", "--log", str(work / "upstream.jsonl")],
                        dict(os.environ), work / "upstream.log")
            upstream_url = f"http://127.0.0.1:{up_port}/v1"
            time.sleep(1.0)
        res = measure_pipeline(which, work / "pipeline", ref, upstream_url, quick, procs)
        if not offline:
            res["memory"] = measure_memory(which, work / "memory", ref, upstream_url, procs)
        return res
    finally:
        procs.kill_all()


def render(res: dict[str, dict[str, Any]]) -> str:
    cols = list(res)
    head = "| figure | " + " | ".join(cols) + " |"
    lines = [head, "|---|" + "---|" * len(cols)]

    def row(name: str, fn: Any) -> None:
        cells = []
        for c in cols:
            try:
                cells.append(fn(res[c]))
            except (KeyError, TypeError):
                cells.append("—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    row("inbound → reply p50 / p99 (one at a time)", lambda r: f"{r['latency_ms']['p50']:.0f} / {r['latency_ms']['p99']:.0f} ms")
    row("messages/s (burst, one sender each)", lambda r: f"{r['burst']['msgs_per_s']:.1f} ({r['burst']['answered']}/{r['burst']['messages']})")
    row("latency under the burst p50 / p99", lambda r: f"{r['burst']['p50_ms']:.0f} / {r['burst']['p99_ms']:.0f} ms")
    row("gateway RSS after the run", lambda r: f"{r['rss_mib']:.0f} MiB")
    row("memory per connected Telegram account", lambda r: f"{r['memory']['per_account_kib']:.0f} KiB")
    row("RSS with 1 / 21 accounts", lambda r: f"{r['memory'][1] / 1024:.0f} / {r['memory'][21] / 1024:.0f} MiB")
    row("start to first poll", lambda r: f"{r['ready_s']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["ours", "reference"])
    parser.add_argument("--reference-bin", default=os.environ.get("OPENCLAW_REFERENCE_BIN") or str(DEFAULT_REFERENCE))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    ref = Path(args.reference_bin) if Path(args.reference_bin).exists() else None
    res: dict[str, dict[str, Any]] = {}
    if args.only in (None, "ours"):
        res["ours (upstream)"] = run("ours", None, args.quick)
        res["ours (offline echo)"] = run("ours", None, args.quick, offline=True)
    if args.only in (None, "reference") and ref is not None:
        res["published (upstream)"] = run("reference", ref, args.quick)
    table = render(res)
    print(table)
    report = (
        "# Channel benchmark: our gateway vs the published one (Telegram, test Bot API server)\n\n"
        f"Machine: {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}. "
        f"Date: {time.strftime('%Y-%m-%d')}. {'Quick run.' if args.quick else ''}\n\n"
        "See bench/channels.py for what each figure measures.\n\n" + table + "\n\n## Details\n\n```json\n"
        + json.dumps(res, indent=2, default=str) + "\n```\n"
    )
    if not args.no_write:
        (REPO / "bench" / "RESULTS-channels.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
