"""``openclaw devices list|approve|reject`` against our gateway as a real process, with real pending
pairing requests: a device connects with its Ed25519 key pair (``gateway.nodes.pairing.
autoApproveLocal: false``, so even loopback devices wait), is listed, previewed, approved (its next
connect is admitted) or rejected (it stays out). Where the published CLI is installed, it is pointed
at the same gateway and must print what ours prints."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from gateway_proc import TOKEN, Client, GatewayProcess, free_port, local_config, make_home, open_ws, openclaw

from gateway_core.device import DeviceKey
from gateway_trio.client import call_sync
from openclaw_cli.devices_cmd import approval_scopes, approval_state, column_widths


class Gw:
    def __init__(self, port: int, home: Path) -> None:
        self.port = port
        self.home = home
        self.url = f"ws://127.0.0.1:{port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Our CLI, finding the gateway and its token through the config, as a user would."""
        return openclaw(self.home, "devices", *args)

    def rpc(self, method: str, params: dict[str, Any]) -> Any:
        return call_sync(self.url, method, params, token=TOKEN, scopes=["operator.pairing"], timeout=10)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gw]:
    root = tmp_path_factory.mktemp("devices")
    port = free_port()
    home = make_home(root, local_config(port=port, nodes={"pairing": {"autoApproveLocal": False}}))
    with GatewayProcess(root, home) as proc:
        proc.wait_ready(port)
        yield Gw(port, home)


@pytest.fixture(autouse=True)
def no_pending(request: pytest.FixtureRequest) -> None:
    """Each test starts without pending requests (the gateway is shared by the module)."""
    if "gw" in request.fixturenames:
        gw: Gw = request.getfixturevalue("gw")
        for req in gw.rpc("device.pair.list", {})["pending"]:
            gw.rpc("device.pair.reject", {"requestId": req["requestId"]})


def device_connect(port: int, seed: int, *, role: str = "operator", scopes: list[str] | None = None,
                   client_id: str = "cli", mode: str = "cli") -> dict[str, Any]:
    """One device (key from ``seed``) connects with its signed proof; returns the connect answer."""
    key = DeviceKey.from_seed(bytes([seed]) * 32)
    wanted = ["operator.read"] if scopes is None else scopes

    async def run() -> dict[str, Any]:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                ws = await open_ws(nursery, port)
                client = Client(ws)
                challenge = await client.recv()
                nonce, ts = challenge["payload"]["nonce"], challenge["payload"]["ts"]
                proof = key.proof(nonce=nonce, signed_at=ts, client_id=client_id, client_mode=mode, role=role,
                                  scopes=wanted, token=TOKEN, platform="linux")
                params = {
                    "minProtocol": 4, "maxProtocol": 4,
                    "client": {"id": client_id, "version": "1", "platform": "linux", "mode": mode, "displayName": f"box-{seed}"},
                    "role": role, "scopes": wanted, "auth": {"token": TOKEN},
                    "device": {"id": proof.id, "publicKey": proof.public_key, "signature": proof.signature,
                               "signedAt": proof.signed_at, "nonce": proof.nonce},
                }
                await client.send({"type": "req", "id": "c1", "method": "connect", "params": params})
                while True:
                    frame = await client.recv()
                    if frame.get("id") == "c1":
                        await ws.aclose()
                        nursery.cancel_scope.cancel()
                        return frame
        raise AssertionError("unreachable")

    return trio.run(run)


def pending_request(gw: Gw, seed: int, **kw: Any) -> tuple[str, str]:
    """A real pending request: (requestId, deviceId)."""
    answer = device_connect(gw.port, seed, **kw)
    assert answer["ok"] is False and answer["error"]["details"]["code"] == "PAIRING_REQUIRED", answer
    return answer["error"]["details"]["requestId"], answer["error"]["details"]["deviceId"]


def test_list_approve_and_the_device_gets_in(gw: Gw) -> None:
    assert gw.cli("list").stdout == "No device pairing entries.\n"
    request_id, device_id = pending_request(gw, 11, scopes=["operator.read", "operator.write"])
    doc = json.loads(gw.cli("list", "--json").stdout)
    (row,) = doc["pending"]
    assert row["requestId"] == request_id and row["deviceId"] == device_id and row["displayName"] == "box-11"
    human = gw.cli("list")
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0] == "Pending (1)" and lines[1].startswith("┌") and lines[-1].startswith("└")
    assert [c.strip() for c in lines[2].strip("│").split("│")] == ["Request", "Device", "Requested", "Approved", "Age", "Status"]
    assert request_id in lines[4] and "box-11 ·" in lines[4] and "new pairing" in lines[4]
    column = [line.strip("│").split("│") for line in lines[4:-1]]  # a wrapped cell continues below
    assert " ".join(" ".join(row[1].split()) for row in column).strip() == "box-11 · 127.0.0.1"
    assert " ".join(" ".join(row[2].split()) for row in column).strip() == "roles: operator; scopes: operator.read, operator.write"
    assert all(len(line) <= 120 for line in lines)

    done = gw.cli("approve", request_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Approved {device_id} ({request_id})\n"
    again = device_connect(gw.port, 11, scopes=["operator.read", "operator.write"])
    assert again["ok"] is True, again
    paired = gw.cli("list").stdout.splitlines()
    assert paired[0] == "Paired (1)" and paired[-2] == "Full device IDs" and paired[-1] == f"  {device_id}  box-11"
    assert gw.cli("approve", request_id).stderr == (
        f"No pending device request matches {request_id}. Run `openclaw devices list` and retry with the current request ID.\n"
    )


def test_an_upgrade_shows_what_is_approved_and_what_is_asked(gw: Gw) -> None:
    first, _ = pending_request(gw, 12, scopes=["operator.read"])
    assert gw.cli("approve", first, "--json").returncode == 0
    upgrade, device_id = pending_request(gw, 12, scopes=["operator.admin"])
    preview = gw.cli("approve", "--latest")
    assert preview.returncode == 1
    assert preview.stdout.splitlines() == [
        f"Selected pending device request {upgrade}",
        "  Device: box-12",
        "  Requested: roles: operator; scopes: operator.admin, operator.read, operator.write",
        "  Approved: roles: operator; scopes: operator.read",
        "  IP:     127.0.0.1",
        "  Note:   Already paired. Requested scopes exceed the current approval, so reconnect stays blocked until you approve this upgrade.",
    ]
    assert preview.stderr == f"Approve this exact request with: openclaw devices approve {upgrade}\n"
    assert "scope upgrade" in gw.cli("list").stdout
    approved = json.loads(gw.cli("approve", upgrade, "--json").stdout)
    assert approved["requestId"] == upgrade and approved["device"]["deviceId"] == device_id
    assert "operator.admin" in approved["device"]["scopes"]


def test_the_preview_keeps_the_connection_flags_but_never_the_secret(gw: Gw) -> None:
    none = gw.cli("approve")
    assert none.returncode == 1 and none.stderr == "No pending device pairing requests to approve\n"
    request_id, _ = pending_request(gw, 13, role="node", scopes=[], client_id="node-host", mode="node")
    out = gw.cli("approve", "--url", gw.url, "--token", TOKEN, "--timeout", "5000", "--json")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["selected"]["requestId"] == request_id
    assert doc["approvalState"] == {"kind": "new-pairing", "requested": {"roles": ["node"], "scopes": []}, "approved": None}
    assert doc["approveCommand"] == f"openclaw devices approve {request_id} --url {gw.url} --timeout 5000 --json"
    assert doc["requiresAuthFlags"] == {"token": True, "password": False}
    human = gw.cli("approve", "--latest", "--url", gw.url, "--token", TOKEN)
    assert TOKEN not in human.stdout + human.stderr
    assert human.stderr.splitlines() == [
        f"Approve this exact request with: openclaw devices approve {request_id} --url {gw.url}",
        "Reuse the same --token option when rerunning.",
    ]
    assert gw.rpc("device.pair.list", {})["pending"], "a preview approves nothing"
    assert gw.cli("approve", request_id).returncode == 0  # a node role: approved with operator.admin


def test_reject_keeps_the_device_out(gw: Gw) -> None:
    request_id, device_id = pending_request(gw, 14)
    out = gw.cli("reject", request_id)
    assert out.returncode == 0 and out.stdout == f"Rejected {device_id}\n"
    assert gw.rpc("device.pair.list", {})["pending"] == []
    again = device_connect(gw.port, 14)
    assert again["ok"] is False and again["error"]["details"]["requestId"] != request_id
    unknown = gw.cli("reject", request_id, "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout) == {"ok": False, "error": {"type": "cli_error", "message": "unknown requestId"}}
    assert unknown.stderr.splitlines()[:2] == ["[openclaw] The CLI command failed.", "[openclaw] Reason: unknown requestId"]
    blank = gw.cli("reject", " ")
    assert blank.returncode == 1 and blank.stderr.startswith("requestId is required.")


def test_no_gateway(tmp_path: Path) -> None:
    home = make_home(tmp_path, local_config(port=free_port()), log_file=False)
    out = openclaw(home, "devices", "list")
    assert out.returncode == 1 and out.stderr.startswith("Gateway not reachable at ws://127.0.0.1:")
    js = openclaw(home, "devices", "list", "--json")
    assert js.returncode == 1 and json.loads(js.stdout)["error"]["type"] == "gateway_transport_error"
    bare = openclaw(make_home(tmp_path / "bare"), "devices", "list")
    assert bare.returncode == 1 and "requires credentials" in bare.stderr


def test_approval_asks_for_no_more_than_the_request_needs() -> None:
    op = {"role": "operator", "scopes": ["operator.read"]}
    assert approval_scopes(op, None) == ["operator.pairing", "operator.read"]
    assert approval_scopes({"role": "operator", "scopes": ["operator.write"]}, None) == [
        "operator.pairing", "operator.read", "operator.write"]
    assert approval_scopes({"role": "operator", "scopes": ["operator.admin"]}, None) == ["operator.admin"]
    assert approval_scopes({"role": "operator", "scopes": []}, {"scopes": ["operator.read"]}) == ["operator.pairing", "operator.read"]
    assert approval_scopes({"role": "node", "scopes": []}, None) == ["operator.admin"]
    assert approval_scopes(None, None) == ["operator.admin"]
    paired = {"roles": ["operator"], "scopes": ["operator.read"], "tokens": [{"role": "operator", "revokedAtMs": 5}]}
    assert approval_state(op, paired)["kind"] == "role-upgrade"  # its only token was revoked
    assert approval_state(op, {**paired, "tokens": []})["kind"] == "role-upgrade"
    assert approval_state(op, {"roles": ["operator"], "scopes": ["operator.write"]})["kind"] == "re-approval"


def test_tables_fit_by_shrinking_the_flexible_columns_only() -> None:
    cols = [("Request", 10, False), ("Device", 16, True), ("Requested", 20, True)]
    rows = [["x" * 36, "d" * 40, "r" * 60]]
    assert column_widths(cols, rows, 1000) == [38, 42, 62]
    fitted = column_widths(cols, rows, 80)
    assert fitted[0] == 38 and sum(fitted) + 4 == 80 and fitted[1] >= 16 and fitted[2] >= 20
    assert column_widths(cols, rows, 10) == [38, 8, 11]  # never below the header


def _published(gw: Gw, *args: str) -> subprocess.CompletedProcess[str]:
    binary = os.environ.get("OPENCLAW_REFERENCE_BIN")
    if not binary:
        pytest.skip("OPENCLAW_REFERENCE_BIN is not set: install the published gateway with ../shared/tools/install-reference.sh")
    home = gw.home.parent / "published-home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env.update(HOME=str(home), NO_COLOR="1", OPENCLAW_GATEWAY_PORT=str(gw.port), OPENCLAW_GATEWAY_TOKEN=TOKEN)
    return subprocess.run([binary, "devices", *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_published_cli_prints_what_ours_prints(gw: Gw) -> None:
    request_id, device_id = pending_request(gw, 15, scopes=["operator.read"])
    theirs = _published(gw, "list", "--json")
    assert theirs.returncode == 0, theirs.stderr
    assert json.loads(theirs.stdout) == json.loads(gw.cli("list", "--json").stdout)
    ours_preview, their_preview = gw.cli("approve", "--latest"), _published(gw, "approve", "--latest")
    assert (ours_preview.returncode, ours_preview.stdout, ours_preview.stderr) == (
        their_preview.returncode, their_preview.stdout, their_preview.stderr)
    ours_json, their_json = gw.cli("approve", "--json"), _published(gw, "approve", "--json")
    assert json.loads(ours_json.stdout) == json.loads(their_json.stdout)
    # The tables: same heading, columns and cells (word wrapping inside a cell may differ, and
    # so may the widths: the age column reads "just now", then "1m ago").
    ours_list, their_list = gw.cli("list").stdout, _published(gw, "list").stdout
    assert [" ".join(ours_list.splitlines()[i].split()) for i in (0, 2)] == [
        " ".join(their_list.splitlines()[i].split()) for i in (0, 2)]
    assert [line[:40] for line in ours_list.splitlines()[3:5]] == [line[:40] for line in their_list.splitlines()[3:5]]
    # The same words, but ours quotes the command (so every command a message names can be checked).
    missing = _published(gw, "approve", "nosuch")
    assert missing.stderr.replace("openclaw devices list", "`openclaw devices list`") == gw.cli("approve", "nosuch").stderr
    done = _published(gw, "approve", request_id)
    assert done.returncode == 0 and done.stdout == f"Approved {device_id} ({request_id})\n"
    assert _published(gw, "list", "--json").stdout and json.loads(_published(gw, "list", "--json").stdout) == json.loads(
        gw.cli("list", "--json").stdout)
    assert gw.cli("list").stdout.splitlines()[:3] == _published(gw, "list").stdout.splitlines()[:3]  # no age column
