"""The conformance suite against a user's gateway leaves it as it was (issue 9 item 4).

The README's "useful next" command runs the live suite against a gateway started the README's way
(no config file, a runtime token). Cases that need a config file (38 reads its redacted secret,
39/40 would write one where none exists) check that precondition on the gateway and skip with the
reason; the run ends with 0 failed and the config file (absent, or its exact bytes) unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gateway_proc import TOKEN, GatewayProcess, free_port, local_config, make_home

from conformance.__main__ import facts_from_config

REPO = Path(__file__).resolve().parent.parent


def _suite(port: int, token: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "--url", f"ws://127.0.0.1:{port}", f"--token={token}", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.stdout.strip(), f"the suite printed no result (rc {done.returncode}): {done.stderr[-4000:]}"
    doc = json.loads(done.stdout)
    failed = [r for r in doc["results"] if r["status"] == "failed"]
    assert failed == [], json.dumps(failed, indent=2)
    assert done.returncode == 0
    assert done.stderr.strip().endswith(f"{doc['passed']} passed, 0 failed, {doc['skipped']} skipped")
    return {r["case"]: r for r in doc["results"]}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("openclaw.json*")) if p.is_file()}


def test_readme_start_then_readme_conformance_command(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    port = free_port()
    env = {"OPENCLAW_GATEWAY_PORT": str(port), "TMPDIR": str(private_tmp)}
    state = home / ".openclaw"
    with GatewayProcess(tmp_path, home, "--allow-unconfigured", env=env) as gw:
        gw.wait_ready(port)
        token = (state / "gateway.runtime-token").read_text().strip()
        results = _suite(port, token)
        for case in ("38", "39", "40"):
            assert results[case]["status"] == "skipped", results[case]
            assert "config file" in results[case]["detail"]
        assert not (state / "openclaw.json").exists(), "the suite created a config file"
        assert _files(state) == {}
        assert gw.poll() is None


def test_existing_config_is_byte_identical_after_the_suite(tmp_path: Path) -> None:
    home = make_home(tmp_path, local_config())
    path = home / ".openclaw" / "openclaw.json"
    path.write_text("// the user's own file, comments and all\n" + path.read_text() + "\n", encoding="utf-8")
    before = _files(home / ".openclaw")
    port = free_port()
    with GatewayProcess(tmp_path, home, "--port", str(port)) as gw:
        gw.wait_ready(port)
        results = _suite(port, TOKEN)
        for case in ("38", "39", "40"):
            assert results[case]["status"] == "passed", results[case]
    assert _files(home / ".openclaw") == before


@pytest.mark.parametrize(
    ("state", "file_met", "secret_met"),
    [
        ({"exists": False, "path": "/x/openclaw.json"}, False, False),
        ({"exists": True, "raw": '{"gateway":{"mode":"local"}}'}, True, False),
        ({"exists": True, "raw": '{"gateway":{"auth":{"token":"__OPENCLAW_REDACTED__"}}}'}, True, True),
    ],
)
def test_config_preconditions_from_config_get(state: dict[str, Any], file_met: bool, secret_met: bool) -> None:
    facts = facts_from_config(state)
    assert (facts["config-file"] is None, facts["config-secret"] is None) == (file_met, secret_met)
