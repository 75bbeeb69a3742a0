"""Consistent exit codes and labels (issue 9 item 12).

One rule everywhere: usage errors 2, configuration refusals 78, runtime failures 1 (listed in
``--help``). ``gateway status`` names the port's source (``default`` when it is the default),
``gateway status --json`` and ``gateway probe --json`` agree on ``config.valid``, and ``doctor``
right after the README's start passes: a missing config is a hint when the gateway runs with
``--allow-unconfigured``, and only this user's gateway processes count, this state dir's apart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gateway_proc import GatewayProcess, free_port, local_config, make_home, openclaw


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["gateway", "run", "--port", "0"], 2),
        (["gateway", "run", "--bind", "everywhere"], 2),
        (["gateway", "run", "--ws-log", "loud"], 2),
        (["gateway", "status", "--require-rpc", "--no-probe"], 2),
        (["gateway", "call", "health", "--params", "{nope"], 2),
        (["logs", "--limit", "0"], 2),
        (["gateway", "status", "--bogus"], 2),
        (["gateway", "run"], 78),  # no config
    ],
)
def test_one_exit_code_rule(tmp_path: Path, args: list[str], code: int) -> None:
    done = openclaw(make_home(tmp_path), *args, env={"OPENCLAW_GATEWAY_PORT": str(free_port())})
    assert done.returncode == code, done.stdout + done.stderr


def test_configured_bad_port_is_a_configuration_refusal(tmp_path: Path) -> None:
    done = openclaw(make_home(tmp_path, {"gateway": {"mode": "local", "port": 70000}}), "gateway", "run")
    assert done.returncode == 78


def test_gateway_status_names_the_port_source(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    default = openclaw(home, "gateway", "status", "--no-probe")
    assert "Gateway: bind=loopback (127.0.0.1), port=18789 (default)" in default.stdout, default.stdout
    profile = openclaw(home, "--profile", "foo", "gateway", "status", "--no-probe")
    assert "port=47223 (profile)" in profile.stdout
    env = openclaw(home, "gateway", "status", "--no-probe", env={"OPENCLAW_GATEWAY_PORT": "19555"})
    assert "port=19555 (env/config)" in env.stdout


def test_status_and_probe_agree_on_config_valid(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    port = free_port()
    env = {"OPENCLAW_GATEWAY_PORT": str(port), "TMPDIR": str(tmp_path)}
    with GatewayProcess(tmp_path, home, "--allow-unconfigured", env=env) as gw:
        gw.wait_ready(port)
        for expected in (True, False):
            status = json.loads(openclaw(home, "gateway", "status", "--json", env=env).stdout)
            probe = json.loads(openclaw(home, "gateway", "probe", "--json", env=env).stdout)
            local = next(t for t in probe["targets"] if t["kind"] == "localLoopback")
            assert status["config"]["cli"]["valid"] is expected
            assert local["config"]["valid"] is expected, local["config"]
            # Now a config the gateway refuses (an unknown key): both must say it is invalid.
            (home / ".openclaw" / "openclaw.json").write_text('{"gateway": {"mode": "local", "bogus": 1}}')


def _sleeper_as(uid: int, home: Path) -> subprocess.Popen[bytes]:
    """A process owned by ``uid`` whose command line looks like a gateway's (it only sleeps)."""
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "-m", "openclaw_cli", "gateway", "run"]
    prefix = [] if uid == os.getuid() else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    return subprocess.Popen(
        [*prefix, *argv],
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "")},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_doctor_after_the_readme_start(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    (home / ".openclaw-b").mkdir()
    (home / ".openclaw-b" / "openclaw.json").write_text(json.dumps(local_config()))  # another profile, same HOME
    port, other_port = free_port(), free_port()
    env = {"OPENCLAW_GATEWAY_PORT": str(port), "TMPDIR": str(tmp_path)}
    strangers = []
    if os.getuid() == 0 and shutil.which("setpriv"):
        strangers.append(_sleeper_as(65534, tmp_path))  # another user's gateway-looking process
    try:
        with (
            GatewayProcess(tmp_path, home, "--allow-unconfigured", env=env, name="mine") as gw,
            GatewayProcess(
                tmp_path, home, "--profile", "b", "--port", str(other_port), env={"TMPDIR": str(tmp_path)}, name="b"
            ) as b,
        ):
            gw.wait_ready(port)
            b.wait_ready(other_port)
            deadline = time.monotonic() + 10
            while strangers and time.monotonic() < deadline and b"sleep" not in Path(f"/proc/{strangers[0].pid}/cmdline").read_bytes():
                time.sleep(0.05)  # setpriv has exec'd the sleeper
            for stranger in strangers:
                assert stranger.poll() is None and b"gateway" in Path(f"/proc/{stranger.pid}/cmdline").read_bytes()
                assert Path(f"/proc/{stranger.pid}").stat().st_uid == 65534
            done = openclaw(home, "doctor", "--json", env=env)
            report = json.loads(done.stdout)
            checks = {c["check"]: c for c in report["checks"]}
            assert done.returncode == 0, json.dumps(report, indent=2)
            assert checks["config"]["ok"] and "--allow-unconfigured" in checks["config"]["message"]
            assert checks["config"]["hint"].startswith("to keep settings across restarts")
            assert checks["processes"]["message"].startswith("1 gateway process(es) for ")
            assert f"pid {b.pid} " in checks["other-gateways"]["message"]
            for stranger in strangers:
                assert f"pid {stranger.pid}" not in done.stdout
            human = openclaw(home, "doctor", env=env)
            assert human.returncode == 0 and "No problems found." in human.stdout
    finally:
        for stranger in strangers:
            os.killpg(stranger.pid, signal.SIGKILL)
            stranger.wait(timeout=10)
