"""The Control UI, measured (a benchmark, not a test): ours served by our gateway, beside the published
gateway serving its own UI.

For each gateway, on the same config (http-openai-observed.md §0.1: one scripted OpenAI-compatible
upstream from tests/upstream.py, so both really chat) and a fresh headless Chromium profile:

* **cold load**: bytes on the wire for every HTTP response of the first page load (Chromium's
  ``encodedDataLength``: headers plus the body as transferred, i.e. compressed when it was) until
  the network is idle, the number of requests, and the WebSocket bytes received in that time;
* **time to connected**: navigation start → the hello-ok frame (both UIs, from Chromium's own
  network timestamps), and for ours also → the overview painting ``connected``;
* **RSS**: the gateway's process tree (sum of ``VmRSS``) idle after start, then with the UI open
  after ``--chats`` chat turns sent through the UI.

    python -m bench.control_ui                  # both gateways (the published one needs its launcher)
    python -m bench.control_ui --only ours
    python -m bench.control_ui --chats 20 --out bench/control_ui_results.md

The published gateway's launcher: ``--reference-bin``, else ``$OPENCLAW_REFERENCE_BIN``. Only
127.0.0.1 and free ports; every process started here is ended by pid (group and descendants).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python bench/control_ui.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import PROCS, REPO, free_port, gateway_env, reference_bin, tree_rss_kb

sys.path.insert(0, str(REPO / "tests"))
from agent_gateways import TOKEN, observed_config  # noqa: E402 - the tests' §0.1 config and upstream
from upstream import ScriptedUpstream  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
OURS, REF = "ours", "reference"


def say(msg: str) -> None:
    print(f"[control-ui bench] {msg}", file=sys.stderr, flush=True)


def rss_mb(pid: int, samples: int = 5) -> float:
    values = []
    for _ in range(samples):
        values.append(tree_rss_kb(pid)[0])
        time.sleep(0.2)
    return statistics.median(values) / 1024


def start_gateway(which: str, work: Path, ref: Path | None, upstream: str) -> tuple[Any, int]:
    port = free_port()
    home = work / which / "home"
    (home / ".openclaw").mkdir(parents=True)
    cfg = observed_config(port, upstream)
    cfg["logging"] = {"file": str(work / which / "gw.log")}
    (home / ".openclaw" / "openclaw.json").write_text(json.dumps(cfg))
    if which == OURS:
        argv = [sys.executable, "-m", "openclaw_cli", "gateway", "run", "--port", str(port)]
    else:
        assert ref is not None
        argv = [str(ref), "gateway", "run", "--port", str(port)]
    proc = PROCS.spawn(argv, env=gateway_env(home), log=work / which / "console.log")
    import httpx

    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{which} gateway exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{which} gateway not ready")
        time.sleep(0.1)
    return proc, port


def cold_load(pw: Any, which: str, port: int, profile: Path, chromium: str) -> tuple[dict[str, Any], Any, Any]:
    """One first visit with a fresh profile: bytes, requests, times. Returns (figures, context, page)."""
    ctx = pw.chromium.launch_persistent_context(
        str(profile), executable_path=chromium, args=CHROMIUM_FLAGS, headless=True, viewport={"width": 1280, "height": 860}
    )
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    http: dict[str, dict[str, Any]] = {}
    ws: dict[str, Any] = {"bytes": 0, "hello_ts": None}
    nav: dict[str, Any] = {}

    def sent(ev: dict[str, Any]) -> None:
        if ev.get("type") == "Document" and "doc_ts" not in nav:
            nav["doc_ts"] = ev["timestamp"]
        http.setdefault(ev["requestId"], {"url": ev["request"]["url"], "bytes": 0})

    def finished(ev: dict[str, Any]) -> None:
        if ev["requestId"] in http:
            http[ev["requestId"]]["bytes"] = ev.get("encodedDataLength", 0)

    def frame(ev: dict[str, Any]) -> None:
        data = ev["response"].get("payloadData", "")
        ws["bytes"] += len(data.encode())
        if ws["hello_ts"] is None and '"hello-ok"' in data:
            ws["hello_ts"] = ev["timestamp"]

    cdp.on("Network.requestWillBeSent", sent)
    cdp.on("Network.loadingFinished", finished)
    cdp.on("Network.webSocketFrameReceived", frame)
    url = f"http://127.0.0.1:{port}/" + ("" if which == OURS else "chat") + f"#token={TOKEN}"
    page.goto(url)
    deadline = time.monotonic() + 60
    while ws["hello_ts"] is None and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    out: dict[str, Any] = {}
    if which == OURS:
        page.wait_for_function("() => window.__openclawControl && window.__openclawControl.connectedAt !== undefined")
        out["to_connected_painted_ms"] = page.evaluate("() => window.__openclawControl.connectedAt")
    page.wait_for_load_state("networkidle", timeout=60_000)
    page.wait_for_timeout(1000)
    out["cold_http_bytes"] = sum(r["bytes"] for r in http.values())
    out["cold_requests"] = len(http)
    out["cold_ws_bytes"] = ws["bytes"]
    out["to_hello_ok_ms"] = (ws["hello_ts"] - nav["doc_ts"]) * 1000 if ws["hello_ts"] and "doc_ts" in nav else None
    return out, ctx, page


def measure(which: str, work: Path, ref: Path | None, chromium: str, chats: int, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with ScriptedUpstream(delta_delay_s=0.01) as up:
        say(f"{which}: starting the gateway")
        proc, port = start_gateway(which, work, ref, up.base_url)
        try:
            time.sleep(3 if which == OURS else 10)  # settle (the published gateway keeps starting sidecars)
            out["idle_rss_mb"] = rss_mb(proc.pid)
            with sync_playwright() as pw:
                loads: list[dict[str, Any]] = []
                ctx = page = None
                for n in range(runs):
                    if ctx is not None:
                        ctx.close()
                    say(f"{which}: cold load {n + 1}/{runs}")
                    figures, ctx, page = cold_load(pw, which, port, work / which / f"profile-{n}", chromium)
                    loads.append(figures)
                for key in loads[0]:
                    values = [f[key] for f in loads if isinstance(f.get(key), int | float)]
                    out[key] = statistics.median(values) if values else None
                out["runs"] = loads
                say(f"{which}: {chats} chat turns through the UI")
                assert page is not None and ctx is not None
                if which == OURS:
                    page.click("#nav-chat")
                    for i in range(chats):
                        page.fill("#chat-input", f"bench message {i}")
                        page.click("#chat-send")
                        page.wait_for_selector(f".msg.assistant.done >> text=bench message {i}", timeout=60_000)
                else:
                    for i in range(chats):
                        box = page.locator("textarea:visible").first
                        box.wait_for(timeout=60_000)
                        box.fill(f"bench message {i}")
                        box.press("Enter")
                        # The reply counter counts every upstream call the gateway makes, not only these.
                        page.wait_for_selector(f"text=/upstream-reply-\\d+: bench message {i}$/", timeout=120_000)
                out["chat_rss_mb"] = rss_mb(proc.pid)
                out["procs"] = tree_rss_kb(proc.pid)[2]
                ctx.close()
        finally:
            PROCS.kill(proc)
    return out


def render(results: dict[str, dict[str, Any]], chats: int, runs: int) -> str:
    def cell(which: str, key: str, fmt: str) -> str:
        value = results.get(which, {}).get(key)
        return fmt.format(value) if isinstance(value, int | float) else "–"

    rows = [
        ("cold load: bytes on the wire (HTTP)", "cold_http_bytes", "{:,.0f} B"),
        ("cold load: HTTP requests", "cold_requests", "{:d}"),
        ("cold load: WebSocket bytes received", "cold_ws_bytes", "{:,.0f} B"),
        ("first visit: navigation → hello-ok", "to_hello_ok_ms", "{:.0f} ms"),
        ("first visit: navigation → overview shows connected", "to_connected_painted_ms", "{:.0f} ms"),
        ("gateway RSS idle (process tree)", "idle_rss_mb", "{:.1f} MB"),
        (f"gateway RSS, UI open after {chats} chats", "chat_rss_mb", "{:.1f} MB"),
    ]
    lines = [
        "# Control UI measurements: ours vs the published gateway serving its own UI",
        "",
        f"Generated by `python -m bench.control_ui` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs "
        f"(loopback, headless Chromium, fresh profile per cold load, median of {runs} cold loads; both gateways on the §0.1 "
        "config with the scripted upstream). See the module docstring for what each figure means.",
        "",
        "| figure | ours (Python, our UI) | published (Node, its UI) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {cell(OURS, key, fmt)} | {cell(REF, key, fmt)} |" for name, key, fmt in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=[OURS, REF])
    ap.add_argument("--chats", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3, help="cold loads per gateway (fresh profile each; median shown)")
    ap.add_argument("--reference-bin")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--out", help="also write the table (markdown) to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, profiles, screenshots)")
    args = ap.parse_args(argv)
    ref = reference_bin(args.reference_bin)
    which = [args.only] if args.only else [OURS, REF]
    if REF in which and ref is None:
        say("no published gateway launcher (--reference-bin / OPENCLAW_REFERENCE_BIN): its column is skipped")
        which = [w for w in which if w != REF]
    results: dict[str, dict[str, Any]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="oc-ui-bench-"))
    try:
        for w in which:
            results[w] = measure(w, tmp, ref, args.chromium, args.chats, args.runs)
            say(f"{w}: {json.dumps(results[w])}")
    finally:
        PROCS.kill_all()
        if args.keep:
            say(f"work directory kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    table = render(results, args.chats, args.runs)
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
