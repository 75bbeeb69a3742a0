"""``gateway probe`` finds this user's other gateways on this host (issue 9 item 10).

Two gateways on one host, different profiles and ports, neither configured as a remote: the probe
from one profile finds the other without the network (its state dir's lock file and its process),
probes it with that state dir's own credentials, and gives the runbook's "multiple reachable
gateways" warning.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway_proc import TOKEN, GatewayProcess, free_port, make_home, openclaw

from openclaw_cli.local_gateways import is_gateway_server


def test_probe_finds_the_other_profiles_gateway(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    work_state = home / ".openclaw-work"
    work_state.mkdir()
    (work_state / "openclaw.json").write_text(
        json.dumps({"gateway": {"mode": "local", "auth": {"mode": "token", "token": TOKEN}}})
    )
    port, work_port = free_port(), free_port()
    base = {"TMPDIR": str(tmp_path)}
    with (
        GatewayProcess(tmp_path, home, "--allow-unconfigured", env={**base, "OPENCLAW_GATEWAY_PORT": str(port)}) as gw,
        GatewayProcess(
            tmp_path, home, "--profile", "work", env={**base, "OPENCLAW_GATEWAY_PORT": str(work_port)}, name="work"
        ) as work,
    ):
        gw.wait_ready(port)
        work.wait_ready(work_port)
        env = {**base, "OPENCLAW_GATEWAY_PORT": str(port)}
        done = openclaw(home, "gateway", "probe", "--json", env=env)
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        # Gateways of this user under other HOMEs (a parallel test run) are a separate setup and are
        # not probed; the assertions stay on this HOME's anyway.
        urls = {t["url"]: t for t in doc["targets"]}
        assert {f"ws://127.0.0.1:{port}", f"ws://127.0.0.1:{work_port}"} <= set(urls)
        assert urls[f"ws://127.0.0.1:{port}"]["kind"] == "localLoopback"
        other = urls[f"ws://127.0.0.1:{work_port}"]
        assert other["kind"] == "localOther" and other["connect"]["ok"] and other["connect"]["rpcOk"], other
        assert "multiple_gateways" in [w["code"] for w in doc["warnings"]]
        found = [f for f in doc["discovery"]["local"] if f["stateDir"].startswith(str(home))]
        assert [f["profile"] for f in found] == ["work"] and found[0]["pid"] == work.pid
        assert {"lock file", "process"} == set(found[0]["sources"])
        human = openclaw(home, "gateway", "probe", env=env)
        assert "Unconventional setup: multiple reachable gateway identities detected." in human.stdout
        assert f"Local (profile work, {work_state}, pid {work.pid}) ws://127.0.0.1:{work_port}" in human.stdout


def test_only_gateway_servers_count() -> None:
    assert is_gateway_server(["python", "-m", "openclaw_cli", "gateway", "run", "--port", "1"])
    assert is_gateway_server(["/usr/bin/python3", "/usr/local/bin/openclaw", "gateway"])
    assert is_gateway_server(["openclaw-gateway"])
    assert not is_gateway_server(["python", "-m", "openclaw_cli", "gateway", "status"])
    assert not is_gateway_server(["python", "-m", "pytest", "tests/test_gateway_process.py"])
    assert not is_gateway_server(["vim", "gateway"])
