"""Our ``openclaw`` CLI probing and calling gateways: ours always, the published one when installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_proc import REPO, GatewayProcess, child_env, free_port, local_config, make_home, openclaw, stop_process

TOKEN = "T0123"


def cli(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return openclaw(home, *args, timeout=timeout)


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("ours")
    port = free_port()
    home = make_home(root, local_config(port=port))
    with GatewayProcess(root, home) as gw:
        gw.wait_ready(port)
        yield f"ws://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = os.environ.get("OPENCLAW_REFERENCE_BIN")
    if not binary:
        pytest.skip(
            "OPENCLAW_REFERENCE_BIN is not set: install the published gateway with ../shared/tools/install-reference.sh"
        )
    sys.path.insert(0, str(Path(__file__).parent))
    from test_reference_interop import _start  # noqa: PLC0415 - shared start of the reference

    root = tmp_path_factory.mktemp("ref")
    proc, port = _start(root, {"mode": "token", "token": TOKEN})
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture(params=["ours", "reference"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


def test_status_require_rpc_json(url: str, tmp_path: Path) -> None:
    out = cli(tmp_path, "gateway", "status", "--url", url, "--token", TOKEN, "--require-rpc", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["rpc"]["ok"] is True and doc["rpc"]["capability"] == "read_only"
    assert doc["gateway"]["probeUrl"] == url


def test_health(url: str, tmp_path: Path) -> None:
    out = cli(tmp_path, "gateway", "health", "--url", url, "--token", TOKEN)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:1] == ["Gateway Health"] and out.stdout.splitlines()[1].startswith("OK (")


def test_call_status_json(url: str, tmp_path: Path) -> None:
    out = cli(tmp_path, "gateway", "call", "status", "--url", url, "--token", TOKEN, "--json")
    assert out.returncode == 0, out.stderr
    assert "runtimeVersion" in json.loads(out.stdout)
    bad = cli(tmp_path, "gateway", "call", "no.such.method", "--url", url, "--token", TOKEN)
    assert bad.returncode == 1 and "Gateway call failed: unknown method: no.such.method" in bad.stderr


def test_status_against_a_closed_port(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    plain = cli(tmp_path, "gateway", "status", "--url", url, "--token", TOKEN)
    assert plain.returncode == 0
    assert "Connectivity probe: failed" in plain.stderr and "ECONNREFUSED" in plain.stderr
    strict = cli(tmp_path, "gateway", "status", "--url", url, "--token", TOKEN, "--require-rpc")
    assert strict.returncode == 1 and "Read probe: failed" in strict.stderr
    refused = cli(tmp_path, "gateway", "status", "--no-probe", "--require-rpc")
    assert refused.returncode == 2 and "--require-rpc needs probing enabled" in refused.stderr


def test_url_needs_explicit_credentials(tmp_path: Path) -> None:
    out = cli(tmp_path, "gateway", "health", "--url", "ws://127.0.0.1:9")
    assert out.returncode == 1 and out.stderr.startswith("gateway url override requires explicit credentials")


def test_probe_json(url: str, tmp_path: Path) -> None:
    out = cli(tmp_path, "gateway", "probe", "--url", url, "--token", TOKEN, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True
    explicit = next(t for t in doc["targets"] if t["id"] == "explicit")
    assert explicit["connect"]["ok"] is True and explicit["connect"]["rpcOk"] is True
    assert explicit["connect"]["scopeLimited"] is False and explicit["auth"]["capability"] == "read_only"


def test_probe_nothing_reachable(tmp_path: Path) -> None:
    out = cli(
        tmp_path,
        "gateway",
        "probe",
        "--url",
        f"ws://127.0.0.1:{free_port()}",
        "--token",
        TOKEN,
        "--port",
        str(free_port()),
    )
    assert out.returncode == 1
    assert "Reachable: no" in out.stdout and "ECONNREFUSED" in out.stdout


def test_logs_limit(url: str, tmp_path: Path) -> None:
    out = cli(tmp_path, "logs", "--url", url, "--token", TOKEN, "--limit", "5", "--plain")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("Log file: ") and 1 <= len(lines) - 1 <= 5
    js = cli(tmp_path, "logs", "--url", url, "--token", TOKEN, "--limit", "2", "--json")
    records = [json.loads(line) for line in js.stdout.splitlines()]
    assert records[0]["type"] == "meta" and any(r["type"] in ("log", "raw") for r in records)


def test_channels_status_probe(url: str, tmp_path: Path) -> None:
    out = cli(tmp_path, "channels", "status", "--probe", "--url", url, "--token", TOKEN)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Checking channel status (probe)…\nGateway reachable.\n")
    assert "- no configured chat channels (run `openclaw channels list --all` to see installable channels)" in out.stdout


def test_status_overview(url: str, tmp_path: Path) -> None:
    out = cli(tmp_path, "--no-color", "status", "--url", url, "--token", TOKEN, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["gateway"]["reachable"] is True and "runtimeVersion" in doc
    down = cli(tmp_path, "status", "--url", f"ws://127.0.0.1:{free_port()}", "--token", TOKEN)
    assert down.returncode == 0 and "unreachable" in down.stdout


def test_status_deep_lists_gateway_processes(ours: str, tmp_path: Path) -> None:
    out = cli(tmp_path, "gateway", "status", "--url", ours, "--token", TOKEN, "--deep", "--json")
    assert out.returncode == 0, out.stderr
    extra = json.loads(out.stdout)["extraServices"]
    assert any(e["kind"] == "process" and "gateway run" in e["commandLine"] for e in extra)


def test_status_human_lines(ours: str, tmp_path: Path) -> None:
    """The lines a health check greps for, in their published form."""
    port = int(ours.rsplit(":", 1)[1])
    home = make_home(tmp_path, local_config(port=port))
    out = cli(home, "gateway", "status", "--require-rpc")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert f"Gateway: bind=loopback (127.0.0.1), port={port} (env/config)" in lines
    assert f"Probe target: ws://127.0.0.1:{port}" in lines and f"Dashboard: http://127.0.0.1:{port}/" in lines
    assert "Read probe: ok" in lines and "Capability: read-only" in lines
    assert f"Listening: 127.0.0.1:{port}" in lines
    assert lines[-1] == "Troubleshooting: https://docs.openclaw.ai/troubleshooting"
    assert "\x1b[" not in out.stdout  # not a terminal: no styling


def test_status_shows_the_last_gateway_error(tmp_path: Path) -> None:
    """A gateway that refuses to start leaves its reason in the file log; status shows it while the
    port is closed."""
    port = free_port()
    config = local_config(port=port)
    config["gateway"]["auth"]["token"] = {"source": "env", "provider": "default", "id": "OPENCLAW_TEST_MISSING_VAR"}
    home = make_home(tmp_path, config)
    # A private temp dir: the rolling log under <tmp>/openclaw is shared with every other gateway here.
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = child_env(home) | {"TMPDIR": str(private_tmp)}

    def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "openclaw_cli", *args], cwd=REPO, env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    run = run_cli("gateway", "run")
    assert run.returncode == 78, run.stderr
    out = run_cli("gateway", "status", "--port", str(port), "--token", TOKEN, "--json")
    doc = json.loads(out.stdout)
    assert doc["rpc"]["ok"] is False
    assert "OPENCLAW_TEST_MISSING_VAR" in doc["lastGatewayError"]["message"]
    human = run_cli("gateway", "status", "--port", str(port), "--token", TOKEN)
    line = next(x for x in human.stdout.splitlines() if x.startswith("Last gateway error: "))
    assert "Gateway failed to start: SecretRef env:default:OPENCLAW_TEST_MISSING_VAR" in line


def test_probe_includes_the_configured_remote(ours: str, tmp_path: Path) -> None:
    """gateway.remote.url is probed as "Remote (configured, inactive)" while the mode is local."""
    port = free_port()
    config = local_config(port=port)
    config["gateway"]["remote"] = {"url": ours, "token": TOKEN}
    home = make_home(tmp_path, config)
    out = cli(home, "gateway", "probe", "--json")
    doc = json.loads(out.stdout)
    assert out.returncode == 0, out.stdout
    remote = next(t for t in doc["targets"] if t["id"] == "configRemote")
    assert remote["active"] is False and remote["connect"]["ok"] is True and remote["connect"]["rpcOk"] is True
    assert doc["primaryTargetId"] == "configRemote"
    assert [t["id"] for t in doc["targets"]] == ["configRemote", "localLoopback"]
    human = cli(home, "gateway", "probe")
    assert f"Remote (configured, inactive) {ours}" in human.stdout.splitlines()
