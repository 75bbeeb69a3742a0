"""Discovery: the pure rules (gateway_core.discovery), the advertiser's never-fatal promise, and a
real advertise → ``gateway discover`` → hot reload round trip.

The round trip runs inside a private network namespace (``unshare -n``) whose only interface is
its own loopback, so no multicast can leave this machine; it is skipped where namespaces are not
permitted.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from gateway_core import discovery as rules
from gateway_trio import discovery as adv
from gateway_trio.runtime import FileLog, GatewaySettings, Paths
from tests.gateway_proc import REPO, free_port, local_config, make_home

# --------------------------------------------------------------------------- the rules table

DECISIONS = [
    # mode, env, plugin, platform, container -> enabled, why contains
    (None, None, None, "linux", False, False, "off by default"),
    (None, None, None, "darwin", False, True, "mode minimal"),
    ("minimal", None, None, "linux", False, True, "mode minimal"),
    ("full", None, None, "linux", False, True, "mode full"),
    (None, None, True, "linux", False, True, "mode minimal"),
    ("full", "1", True, "darwin", False, False, "OPENCLAW_DISABLE_BONJOUR"),
    ("off", "0", True, "darwin", False, False, "discovery.mdns.mode is off"),
    ("full", None, False, "darwin", False, False, "plugins.entries.bonjour.enabled is false"),
    ("full", None, None, "linux", True, False, "container detected"),
    ("full", "0", None, "linux", True, True, "mode full"),
    ("full", "maybe", None, "linux", True, False, "container detected"),
]


@pytest.mark.parametrize(("mode", "env", "plugin", "platform", "container", "enabled", "why"), DECISIONS)
def test_decide(mode: str | None, env: str | None, plugin: bool | None, platform: str, container: bool, enabled: bool, why: str) -> None:
    d = rules.decide(mode=mode, disable_env=env, plugin_enabled=plugin, platform=platform, in_container=container)
    assert (d.enabled, why in d.why) == (enabled, True), d
    assert d.minimal is (mode != "full") or not d.enabled


def test_txt_matches_the_published_records() -> None:
    """Key order and values as the published gateway 2026.9.6 advertised them (recorded with a
    zeroconf browser in a private network namespace), minimal on loopback and full on lan."""
    minimal = rules.gateway_txt(hostname="vm", gateway_port=19877, minimal=True, direct_reachable=False, cli_path="/x/openclaw")
    assert list(minimal.items()) == [
        ("role", "gateway"), ("gatewayPort", "19877"), ("lanHost", "vm.local"), ("displayName", "vm"),
        ("transport", "gateway"),
    ]  # fmt: skip
    full = rules.gateway_txt(hostname="vm", gateway_port=19877, minimal=False, direct_reachable=True, cli_path="/x/openclaw")
    assert list(full.items()) == [
        ("role", "gateway"), ("gatewayPort", "19877"), ("lanHost", "vm.local"), ("displayName", "vm"),
        ("gatewayDirectReachable", "1"), ("cliPath", "/x/openclaw"), ("transport", "gateway"), ("sshPort", "22"),
    ]  # fmt: skip
    tls = rules.gateway_txt(
        hostname="h", gateway_port=1, minimal=False, direct_reachable=False, tls=True, tls_sha256="AB", ssh_port=2222, tailnet_dns="h.ts.net"
    )
    assert list(tls) == ["role", "gatewayPort", "lanHost", "displayName", "gatewayTls", "gatewayTlsSha256", "tailnetDns", "transport", "sshPort"]
    assert tls["sshPort"] == "2222"
    assert rules.instance_name("vm") == "vm (OpenClaw)"


@pytest.mark.parametrize(
    ("system", "override", "expected"),
    [
        ("vm", None, "vm"),
        ("box.example.com", None, "box"),
        ("Box.local", None, "Box"),
        ("under_score", None, "openclaw"),
        ("", None, "openclaw"),
        ("vm", "studio.local", "studio"),
        ("a" * 70, None, "openclaw"),  # not a valid label (longer than 63)
        ("vm", "b" * 70, "b" * 63),
    ],
)
def test_mdns_hostname(system: str, override: str | None, expected: str) -> None:
    assert rules.mdns_hostname(system, override) == expected


def test_beacon_url_comes_from_resolved_records_not_txt() -> None:
    txt = {"role": "gateway", "gatewayPort": "1", "lanHost": "evil.example", "displayName": "vm", "transport": "gateway"}
    b = rules.beacon(
        service_name="vm (OpenClaw)._openclaw-gw._tcp.local.", server="vm.local.", port=19555,
        addresses=["fe80::1", "10.0.0.5"], txt=txt,
    )  # fmt: skip
    assert b["instanceName"] == "vm (OpenClaw)" and b["displayName"] == "vm" and b["host"] == "vm.local"
    assert b["wsUrl"] == "ws://10.0.0.5:19555"  # IPv4 first, SRV port, never lanHost/gatewayPort
    assert b["gatewayPort"] == 1 and b["lanHost"] == "evil.example"
    v6 = rules.beacon(service_name="x._openclaw-gw._tcp.local.", server="x.local.", port=2, addresses=["::1"], txt={"gatewayTls": "1"})
    assert v6["wsUrl"] == "wss://[::1]:2" and v6["gatewayTls"] is True and v6["displayName"] == "x"
    bare = rules.beacon(service_name="y._openclaw-gw._tcp.local.", server="y.local.", port=3, addresses=[], txt={})
    assert bare["wsUrl"] == "ws://y.local:3" and "txt" not in bare
    assert rules.dedupe([bare, dict(bare), v6]) == [v6, bare]


# --------------------------------------------------------------------------- never fatal


def _settings(tmp_path: Path, config: dict[str, Any]) -> GatewaySettings:
    paths = Paths(None, tmp_path, tmp_path / "openclaw.json")
    return GatewaySettings(paths, config, 1, "--port", "loopback", ["127.0.0.1"], "token", "t", None)


def test_advertiser_failure_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zeroconf

    class Broken:
        def __init__(self, *a: object, **k: object) -> None:
            raise OSError("no multicast interface")

    monkeypatch.setattr(zeroconf, "Zeroconf", Broken)
    monkeypatch.setenv("OPENCLAW_DISABLE_BONJOUR", "0")
    log = FileLog(tmp_path / "gw.log", console=io.StringIO())
    advertiser = adv.Advertiser(log)

    async def main() -> None:
        with trio.fail_after(10):
            await run()

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(advertiser.run)
            advertiser.want(_settings(tmp_path, {"discovery": {"mdns": {"mode": "minimal"}}}), 4242)
            for _ in range(200):
                await trio.sleep(0.01)
                if (tmp_path / "gw.log").exists() and "advertising failed" in (tmp_path / "gw.log").read_text():
                    break
            nursery.cancel_scope.cancel()

    trio.run(main)
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "gw.log").read_text().splitlines()]
    warned = [r for r in lines if "advertising failed" in json.dumps(r)]
    assert warned and "OSError: no multicast interface" in json.dumps(warned[0])
    assert advertiser.registered_name is None


def test_advert_follows_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCLAW_DISABLE_BONJOUR", "0")
    monkeypatch.setenv("OPENCLAW_MDNS_HOSTNAME", "studio")
    on = adv.advert_for(_settings(tmp_path, {"discovery": {"mdns": {"mode": "minimal"}}}), 4242)
    assert on is not None and on.instance == "studio (OpenClaw)" and on.port == 4242
    assert dict(on.txt)["gatewayPort"] == "4242" and "gatewayDirectReachable" not in dict(on.txt)
    assert adv.advert_for(_settings(tmp_path, {"discovery": {"mdns": {"mode": "off"}}}), 4242) is None
    monkeypatch.setenv("OPENCLAW_DISABLE_BONJOUR", "1")
    assert adv.advert_for(_settings(tmp_path, {"discovery": {"mdns": {"mode": "full"}}}), 4242) is None


# --------------------------------------------------------------------------- the real thing, in a private netns


def _netns_problem() -> str | None:
    if not sys.platform.startswith("linux") or not shutil.which("unshare") or not shutil.which("ip"):
        return "needs Linux with unshare and ip (iproute2)"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10, check=False)
    if probe.returncode != 0:
        return f"network namespaces not permitted here: {probe.stderr.decode().strip()}"
    return None


DRIVER = r"""
set -u
ip link set lo up
cleanup() { kill -KILL "$GW" 2>/dev/null; }
trap cleanup EXIT
"$PY" -m openclaw_cli gateway run --port "$PORT" > "$OUT/gw.out" 2> "$OUT/gw.err" &
GW=$!
"$PY" - <<EOF
import socket, time
for _ in range(200):
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", $PORT)) == 0:
            break
    time.sleep(0.05)
EOF
# Give the responder its probe/announce time, then browse as a client would.
for i in 1 2 3 4 5 6 7 8 9 10; do grep -q "bonjour: advertised" "$OUT/gw.log" 2>/dev/null && break; sleep 0.3; done
# Every browse waits a fixed window for the answers (1.5 s for discover, 1.2 s for probe); on a
# loaded machine the responder's answer can miss it. tries OUT PATTERN CMD...: CMD > OUT up to 3
# times, until OUT holds PATTERN (a gateway that never answers still fails all of them).
tries() {
  out=$1; pat=$2; shift 2
  for i in 1 2 3; do "$@" > "$out"; grep -q "$pat" "$out" && return; done
}
tries "$OUT/discover1.json" '"count": 1' "$PY" -m openclaw_cli gateway discover --json --timeout 1500
tries "$OUT/discover1.txt" "Found 1 gateway" "$PY" -m openclaw_cli gateway discover --timeout 1500
tries "$OUT/probe.json" '"count": 1' "$PY" -m openclaw_cli gateway probe --json
# --ssh-auto takes its SSH target from the beacon; no sshd listens, so a found beacon fails the tunnel.
tries "$OUT/probe_auto.json" ssh_tunnel_failed "$PY" -m openclaw_cli gateway probe --ssh-auto --json --timeout 3000
"$PY" - <<EOF
import json, pathlib
p = pathlib.Path("$HOME/.openclaw/openclaw.json")
cfg = json.loads(p.read_text())
cfg["discovery"]["mdns"]["mode"] = "off"
p.write_text(json.dumps(cfg))
EOF
for i in 1 2 3 4 5 6 7 8 9 10; do grep -q "config hot reload\|dynamic reads" "$OUT/gw.log" 2>/dev/null && break; sleep 0.3; done
sleep 0.5
"$PY" -m openclaw_cli gateway discover --json --timeout 1500 > "$OUT/discover2.json"
kill -TERM "$GW"
wait "$GW"
echo $? > "$OUT/gw.rc"
"""


def test_advertise_discover_and_withdraw_in_a_private_netns(tmp_path: Path) -> None:
    why = _netns_problem()
    if why:
        pytest.skip(why)
    port = free_port()
    config = local_config(port=port)
    config["discovery"] = {"mdns": {"mode": "full"}}
    home = make_home(tmp_path, config)
    (tmp_path / "driver.sh").write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env.update(
        HOME=str(home), PY=sys.executable, PORT=str(port), OUT=str(tmp_path), PYTHONPATH=str(REPO),
        OPENCLAW_DISABLE_BONJOUR="0", OPENCLAW_MDNS_HOSTNAME="testbox", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    proc = subprocess.Popen(
        ["unshare", "-n", "sh", str(tmp_path / "driver.sh")], cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        raise AssertionError("the netns driver did not finish within 90 s") from None
    diag = f"driver: {out.decode()[-2000:]}\ngateway stderr: {(tmp_path / 'gw.err').read_text()[-2000:]}"
    first = json.loads((tmp_path / "discover1.json").read_text())
    assert first["count"] == 1, diag
    (b,) = first["beacons"]
    assert b["instanceName"] == "testbox (OpenClaw)" and b["displayName"] == "testbox"
    assert b["wsUrl"] == f"ws://127.0.0.1:{port}" and b["port"] == port and b["gatewayPort"] == port
    assert list(b["txt"]) == ["role", "gatewayPort", "lanHost", "displayName", "cliPath", "transport", "sshPort"]
    assert b["txt"]["lanHost"] == "testbox.local" and b["sshPort"] == 22
    text = (tmp_path / "discover1.txt").read_text()
    assert text.startswith("Gateway Discovery\nFound 1 gateway(s) · domains: local.\n- testbox local.\n"), text
    assert f"  ws: ws://127.0.0.1:{port}\n" in text and "\x1b[" not in text
    probe = json.loads((tmp_path / "probe.json").read_text())
    assert probe["ok"] is True and probe["discovery"]["count"] == 1, probe["discovery"]
    # --ssh-auto takes the SSH target from the beacon (sshPort 22); no sshd listens in the netns.
    auto = json.loads((tmp_path / "probe_auto.json").read_text())
    failed = [w for w in auto["warnings"] if w["code"] == "ssh_tunnel_failed"]
    assert failed and "Connection refused" in failed[0]["message"], auto["warnings"]
    assert auto["ok"] is True
    second = json.loads((tmp_path / "discover2.json").read_text())
    assert second["count"] == 0, (second, diag)
    assert (tmp_path / "gw.rc").read_text().strip() == "0", diag
    log = (tmp_path / "gw.log").read_text()
    assert f"bonjour: advertised gateway fqdn=testbox (OpenClaw)._openclaw-gw._tcp.local. host=testbox.local. port={port}" in log
