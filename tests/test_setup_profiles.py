"""Setup and profiles without friction (issue 9 items 8 and 9).

``setup`` asks nothing, so it runs without a terminal; ``onboard`` exists (non-interactive with
``--non-interactive --mode local|remote``, guided on a terminal); next-step hints keep the profile;
the runbook's two-gateway example is told the exact command that creates its config; each profile
logs to its own file name.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from pathlib import Path

import pytest
from gateway_proc import GatewayProcess, free_port, make_home, openclaw

from openclaw_cli.setup_cmd import Answers, SetupError, ask_answers


def test_dev_setup_runs_without_a_terminal_and_keeps_the_profile_in_its_hint(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    done = openclaw(home, "--dev", "setup")
    assert done.returncode == 0, done.stderr
    cfg = json.loads((home / ".openclaw-dev" / "openclaw.json").read_text())
    assert cfg["gateway"]["mode"] == "local" and cfg["gateway"]["auth"]["token"]
    assert "Next: openclaw --dev gateway run" in done.stdout
    named = openclaw(home, "--profile", "work", "setup")
    assert "Next: openclaw --profile work gateway run" in named.stdout


def test_onboard_non_interactive_local_and_remote(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    local = openclaw(home, "onboard", "--non-interactive", "--accept-risk", "--mode", "local", "--gateway-port", "19876")
    assert local.returncode == 0, local.stderr
    path = home / ".openclaw" / "openclaw.json"
    cfg = json.loads(path.read_text())
    assert cfg["gateway"]["mode"] == "local" and cfg["gateway"]["port"] == 19876
    remote = openclaw(
        home, "--profile", "laptop", "onboard", "--mode", "remote", "--remote-url", "ws://127.0.0.1:1", "--remote-token", "t"
    )
    assert remote.returncode == 0, remote.stderr
    cfg = json.loads((home / ".openclaw-laptop" / "openclaw.json").read_text())
    assert cfg["gateway"]["mode"] == "remote" and cfg["gateway"]["remote"] == {"url": "ws://127.0.0.1:1", "token": "t"}
    assert "Next: openclaw --profile laptop gateway probe" in remote.stdout


def test_onboard_without_a_terminal_says_how_to_automate(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    done = openclaw(home, "--dev", "onboard")
    assert done.returncode == 2
    assert "Use `openclaw --dev onboard --non-interactive --mode local` for automation" in done.stderr
    assert not (home / ".openclaw-dev" / "openclaw.json").exists()


def test_onboard_asks_what_the_flags_leave_open() -> None:
    replies = iter(["remote", "ws://10.0.0.5:18789", "s3cret"])
    answers = ask_answers(Answers(), read=lambda prompt: next(replies))
    assert (answers.mode, answers.remote_url, answers.remote_token) == ("remote", "ws://10.0.0.5:18789", "s3cret")
    replies = iter(["", "19123", "lan"])
    answers = ask_answers(Answers(), read=lambda prompt: next(replies))
    assert (answers.mode, answers.gateway_port, answers.gateway_bind) == ("local", 19123, "lan")
    with pytest.raises(SetupError):
        ask_answers(Answers(), read=lambda prompt: "sideways")


def test_two_gateway_example_gets_the_exact_setup_command(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    port = free_port()
    env = {
        "OPENCLAW_CONFIG_PATH": str(home / ".openclaw" / "a.json"),
        "OPENCLAW_STATE_DIR": str(home / ".openclaw-a"),
        "TMPDIR": str(tmp_path),
    }
    refused = openclaw(home, "gateway", "--port", str(port), env=env)
    assert refused.returncode == 78
    hint = "OPENCLAW_STATE_DIR=~/.openclaw-a OPENCLAW_CONFIG_PATH=~/.openclaw/a.json openclaw setup"
    assert f"Missing config. Run `{hint}`" in refused.stderr, refused.stderr
    # That command, exactly as printed (the environment it names, nothing else), creates that config.
    words = shlex.split(hint.replace("~", str(home)))
    named = dict(w.split("=", 1) for w in words if "=" in w)
    made = openclaw(home, *words[len(named) + 1 :], env={"TMPDIR": str(tmp_path), **named})
    assert made.returncode == 0, made.stderr
    assert json.loads((home / ".openclaw" / "a.json").read_text())["gateway"]["mode"] == "local"
    with GatewayProcess(tmp_path, home, "--port", str(port), env=env) as gw:
        gw.wait_ready(port)


def test_each_profile_logs_to_its_own_file(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    ports = {"dev": free_port(), "work": free_port()}
    dev = GatewayProcess(
        tmp_path, home, "--dev", env={"TMPDIR": str(private_tmp), "OPENCLAW_GATEWAY_PORT": str(ports["dev"])}, name="dev"
    )
    work = GatewayProcess(
        tmp_path,
        home,
        "--profile",
        "work",
        "--allow-unconfigured",
        env={"TMPDIR": str(private_tmp), "OPENCLAW_GATEWAY_PORT": str(ports["work"])},
        name="work",
    )
    with dev, work:
        dev.wait_ready(ports["dev"])
        work.wait_ready(ports["work"])
    day = dt.date.today().isoformat()
    logs = private_tmp / "openclaw"
    for profile, port in ports.items():
        text = (logs / f"openclaw-{profile}-{day}.log").read_text()
        assert f"127.0.0.1:{port}" in text
        other = next(p for name, p in ports.items() if name != profile)
        assert f"127.0.0.1:{other}" not in text
    assert not (logs / f"openclaw-{day}.log").exists()
