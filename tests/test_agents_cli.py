"""``openclaw agent`` / ``sessions`` / ``models list``: ours against ours, and across implementations.

- The README start (no config) and ``openclaw agent --message hi``: the offline default answers and
  says how to configure a provider.
- The published CLI (fresh HOME, ``OPENCLAW_GATEWAY_URL``/``OPENCLAW_GATEWAY_TOKEN``) against our
  gateway with a scripted upstream prints the upstream's reply, and ``--json`` its JSON; our CLI
  against the published gateway does too (both need ``OPENCLAW_REFERENCE_BIN``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from agent_gateways import KINDS, REFERENCE, TOKEN, agent_gateway
from gateway_proc import REPO, GatewayProcess, child_env, free_port, make_home


def _ours(home: Path, env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openclaw_cli", *args], cwd=REPO, env=child_env(home, env),
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def test_offline_default_answers_through_our_cli(tmp_path: Path) -> None:
    port = free_port()
    home = make_home(tmp_path)
    env = {"OPENCLAW_GATEWAY_PORT": str(port)}
    with GatewayProcess(tmp_path, home, "--allow-unconfigured", env=env) as gw:
        gw.wait_ready(port)
        out = _ours(home, env, "agent", "--message", "hi")
        assert out.returncode == 0, out.stderr
        assert 'You said: "hi"' in out.stdout
        assert "No model provider is configured" in out.stdout and "models.providers" in out.stdout
        assert "openclaw setup --provider-base-url" in out.stdout
        listed = _ours(home, env, "sessions", "--json")
        rows = json.loads(listed.stdout)["sessions"]
        assert [r["key"] for r in rows] == ["agent:main:main"] and rows[0]["model"] == "echo"
        models = json.loads(_ours(home, env, "models", "list", "--json").stdout)["models"]
        assert [(m["provider"], m["id"]) for m in models] == [("offline", "echo")]
        bad = _ours(home, env, "agent", "--agent", "nope", "--message", "x", "--json")
        assert bad.returncode == 1
        assert json.loads(bad.stdout) == {"ok": False, "error": {"type": "cli_error", "message": 'invalid agent params: unknown agent id "nope"'}}


@pytest.mark.skipif(not REFERENCE, reason="OPENCLAW_REFERENCE_BIN is not set (the published CLI)")
def test_published_cli_against_our_gateway(tmp_path: Path) -> None:
    with agent_gateway("ours", tmp_path) as (port, _up):
        cli_home = tmp_path / "cli-home"
        cli_home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
        env.update(HOME=str(cli_home), OPENCLAW_GATEWAY_URL=f"ws://127.0.0.1:{port}", OPENCLAW_GATEWAY_TOKEN=TOKEN)
        plain = subprocess.run([REFERENCE or "", "agent", "--message", "hi"], env=env, capture_output=True, text=True, timeout=180)
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.strip().endswith(": hi") and plain.stdout.startswith("upstream-reply-")
        as_json = subprocess.run([REFERENCE or "", "agent", "--message", "hi json", "--json"], env=env, capture_output=True, text=True, timeout=180)
        assert as_json.returncode == 0, as_json.stderr
        final = json.loads(as_json.stdout)
        assert final["status"] == "ok" and final["result"]["payloads"][0]["text"].endswith(": hi json")


@pytest.mark.parametrize("kind", KINDS)
def test_our_cli_against_each_gateway(kind: str, tmp_path: Path) -> None:
    with agent_gateway(kind, tmp_path) as (port, _up):
        cli_home = tmp_path / "cli-home"
        cli_home.mkdir()
        env = {"OPENCLAW_GATEWAY_URL": f"ws://127.0.0.1:{port}", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
        plain = _ours(cli_home, env, "agent", "--message", "hi there")
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.strip().endswith(": hi there") and plain.stdout.startswith("upstream-reply-")
        as_json = _ours(cli_home, env, "agent", "--message", "hi json", "--json")
        assert as_json.returncode == 0, as_json.stderr
        final = json.loads(as_json.stdout)
        assert final["status"] == "ok" and final["result"]["payloads"][0]["text"].endswith(": hi json")
        keyed = _ours(cli_home, env, "agent", "--session-key", "cli-key", "--message", "keyed", "--json")
        assert json.loads(keyed.stdout)["result"]["meta"]["agentMeta"]["sessionFile"] == "agent:main:cli-key"
