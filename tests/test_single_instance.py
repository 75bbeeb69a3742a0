"""A refused second start leaves the running gateway exactly as it was (issue 9 item 1).

Two real processes on one state dir: the first is started the README's way (no config, a runtime
token), the second is refused by the state-dir lock. Nothing under the state dir may change, and
the local CLI must keep working with the first gateway's token.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gateway_proc import GatewayProcess, free_port, make_home, openclaw


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (directories as empty entries)."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel + ("/" if path.is_dir() else "")] = b"" if path.is_dir() else path.read_bytes()
    return out


@pytest.mark.parametrize(
    ("first", "second", "state"),
    [
        (["--allow-unconfigured"], ["--allow-unconfigured"], ".openclaw"),
        (["--dev"], ["--dev", "--reset"], ".openclaw-dev"),
    ],
    ids=["readme-start", "dev-reset"],
)
def test_refused_second_start_changes_nothing(tmp_path: Path, first: list[str], second: list[str], state: str) -> None:
    home = make_home(tmp_path)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    port = free_port()
    env = {"OPENCLAW_GATEWAY_PORT": str(port), "TMPDIR": str(private_tmp)}
    with GatewayProcess(tmp_path, home, *first, env=env, name="first") as gw:
        gw.wait_ready(port)
        before = _snapshot(home / state)
        assert before, "the first gateway wrote its state"
        with GatewayProcess(tmp_path, home, *second, env=env, name="second") as again:
            assert again.wait(timeout=30) == 1, again.output()
        assert f"gateway already running (pid {gw.pid})" in again.stderr
        assert _snapshot(home / state) == before, "the refused start changed the state dir"
        assert gw.poll() is None
        # The local CLI still talks to the first gateway with its (unchanged) runtime token.
        cli_env = env if state == ".openclaw" else {**env, "OPENCLAW_PROFILE": "dev"}
        call = openclaw(home, "gateway", "call", "health", "--json", env=cli_env)
        assert call.returncode == 0, call.stdout + call.stderr
