"""Logs belong to their gateway (issue 9 items 2 and 5).

Every gateway on a machine writes the same default file, ``<tmp>/openclaw/openclaw-<date>.log``
(as the published ones do). Each record names its owner (``_meta.gateway.stateDir``), and
``logs.tail``, ``openclaw logs`` (also with the gateway down) and ``gateway status``'s
``Last gateway error`` show only the records of this gateway. ``logs.tail`` accepts the runbook's
``sinceMs``.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from gateway_proc import GatewayProcess, free_port, make_home, openclaw

from gateway_trio.runtime import FileLog, owner_key, record_filter, tail

# --------------------------------------------------------------------------- units


def test_records_name_their_gateway_and_the_filter_keeps_one(tmp_path: Path) -> None:
    shared = tmp_path / "shared.log"
    a = FileLog(shared, state_dir=tmp_path / "a", boot_id="boot-a", console_enabled=False)
    b = FileLog(shared, state_dir=tmp_path / "b", profile="work", boot_id="boot-b", console_enabled=False)
    a.info("gateway", "from a")
    b.info("gateway", f"from b, which mentions {tmp_path / 'a'}")
    a.close()
    b.close()
    with open(shared, "a", encoding="utf-8") as fh:
        fh.write('{"0":"{\\"subsystem\\":\\"gateway\\"}","1":"gateway ready","_meta":{"date":"2026-01-01T00:00:00.000Z"}}\n')
        fh.write("not json at all\n")
    owner = json.loads(shared.read_text().splitlines()[1])["_meta"]["gateway"]
    assert owner == {"stateDir": owner_key(tmp_path / "b"), "profile": "work", "boot": "boot-b", "pid": owner["pid"]}
    mine = tail(shared, cursor=None, limit=100, max_bytes=100_000, keep=record_filter(state_dir=tmp_path / "a"))
    assert [json.loads(line)["message"] for line in mine["lines"]] == ["gateway from a"]
    assert mine["cursor"] == shared.stat().st_size  # the cursor still covers every byte read


def test_since_filter_keeps_newer_records(tmp_path: Path) -> None:
    def line(date: str) -> str:
        return json.dumps({"1": date, "message": date, "_meta": {"date": date}})

    path = tmp_path / "x.log"
    path.write_text("\n".join(line(d) for d in ("2026-01-01T00:00:00.000Z", "2026-01-01T00:01:00.000Z")) + "\n")
    cutoff = 1767225630000  # 2026-01-01T00:00:30Z
    out = tail(path, cursor=None, limit=10, max_bytes=10_000, keep=record_filter(since_epoch_ms=cutoff))
    assert [json.loads(x)["message"] for x in out["lines"]] == ["2026-01-01T00:01:00.000Z"]


# --------------------------------------------------------------------------- two real gateways, one file


def test_logs_and_last_error_show_only_this_gateways_records(tmp_path: Path) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    port_a, port_b = free_port(), free_port()
    home_a, home_b = make_home(tmp_path / "a"), make_home(tmp_path / "b")
    env_a = {"OPENCLAW_GATEWAY_PORT": str(port_a), "TMPDIR": str(private_tmp)}
    env_b = {"OPENCLAW_GATEWAY_PORT": str(port_b), "TMPDIR": str(private_tmp)}
    # The README's start for both: no config, a runtime token, the default (shared) log file.
    with (
        GatewayProcess(tmp_path, home_a, "--allow-unconfigured", env=env_a, name="a") as gw_a,
        GatewayProcess(tmp_path, home_b, "--allow-unconfigured", env=env_b, name="b") as gw_b,
    ):
        gw_a.wait_ready(port_a)
        gw_b.wait_ready(port_b)
        logs = openclaw(home_a, "logs", "--plain", env=env_a)
        assert logs.returncode == 0, logs.stderr
        assert f"http server listening on 127.0.0.1:{port_a}" in logs.stdout
        assert str(port_b) not in logs.stdout
        rpc = openclaw(home_a, "gateway", "call", "logs.tail", "--params", '{"sinceMs": 60000}', "--json", env=env_a)
        assert rpc.returncode == 0, rpc.stdout + rpc.stderr
        lines = json.loads(rpc.stdout)["lines"]
        assert any(f"127.0.0.1:{port_a}" in x for x in lines)
        assert not any(f"127.0.0.1:{port_b}" in x for x in lines)
        assert all(json.loads(x)["_meta"]["gateway"]["stateDir"] == owner_key(home_a / ".openclaw") for x in lines)
        gw_b.send_signal(signal.SIGTERM)
        assert gw_b.wait(timeout=15) == 0
        # B's next start is refused (config problem): an error record in B's name.
        (home_b / ".openclaw" / "openclaw.json").write_text('{"gateway": {"mode": "remote"}}')
        refused = openclaw(home_b, "gateway", "run", env=env_b)
        assert refused.returncode == 78
        gw_a.send_signal(signal.SIGTERM)
        assert gw_a.wait(timeout=15) == 0
    # A is down: `openclaw logs` reads the file itself, A's records only, and says so.
    down = openclaw(home_a, "logs", "--plain", env=env_a)
    assert down.returncode == 0, down.stderr
    assert "Local Gateway RPC unavailable; reading configured file log instead." in down.stderr
    assert f"http server listening on 127.0.0.1:{port_a}" in down.stdout
    assert str(port_b) not in down.stdout and "current: remote" not in down.stdout
    # B's refusal is the newest error in the shared file, but it is not A's.
    status = openclaw(home_a, "gateway", "status", "--json", "--timeout", "2000", env=env_a)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["lastGatewayError"] is None
    status_b = openclaw(home_b, "gateway", "status", "--json", "--timeout", "2000", env=env_b)
    assert "current: remote" in json.loads(status_b.stdout)["lastGatewayError"]["message"]


def test_logs_with_no_gateway_and_no_credentials_reads_the_file(tmp_path: Path) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    home = make_home(tmp_path)
    env = {"OPENCLAW_GATEWAY_PORT": str(free_port()), "TMPDIR": str(private_tmp)}
    refused = openclaw(home, "gateway", "run", env=env)  # no config: refused, and logged in this state dir's name
    assert refused.returncode == 78
    done = openclaw(home, "logs", "--plain", env=env)
    assert done.returncode == 0, done.stderr
    assert "reading configured file log instead" in done.stderr
    assert "Missing config." in done.stdout
