"""Probing and calling a gateway: ``gateway health|call|status|probe``, ``health`` and ``status`` (runtime-cli.md §10.2-§10.5, §10.9).

``gateway status`` and ``gateway probe`` collect and render in :mod:`.gateway_status` and
:mod:`.gateway_probe`; the commands here parse the flags and hand over.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Annotated, Any

from cyclopts import Parameter

from .style import Style
from .target import CliFailure, Target, request_failure, resolve_target, transport_failure

Url = Annotated[str | None, Parameter(help="Gateway WebSocket URL (needs --token or --password).")]
Port = Annotated[int | None, Parameter(help="Local loopback port (not with --url).")]
Token = Annotated[str | None, Parameter(help="Gateway token.")]
Password = Annotated[str | None, Parameter(help="Gateway password.")]
Timeout = Annotated[int, Parameter(help="Timeout in milliseconds.")]
Json = Annotated[bool, Parameter(name="--json", help="Machine-readable output.")]

def _rpc(
    target: Target,
    method: str | None,
    params: Any,
    *,
    scopes: list[str],
    timeout_ms: int,
    expect_final: bool = False,
    prefix: str = "",
) -> Any:
    from gateway_trio.client import RpcError, call_sync

    try:
        return call_sync(
            target.url,
            method,
            params,
            token=target.token,
            password=target.password,
            scopes=scopes,
            timeout=timeout_ms / 1000,
            expect_final=expect_final,
        )
    except RpcError as exc:
        if exc.kind == "transport":
            raise transport_failure(target, str(exc), "timeout" if "within" in str(exc) else "closed") from None
        raise request_failure(prefix, exc.code, str(exc)) from None


def gateway_health(
    *,
    url: Url = None,
    port: Port = None,
    token: Token = None,
    password: Password = None,
    timeout: Timeout = 10000,
    expect_final: bool = False,
    json_: Json = False,
) -> int:
    """Call ``health`` on the gateway and print OK (or the snapshot with --json)."""
    try:
        target = resolve_target(url=url, port=port, token=token, password=password, method="health")
        started = time.monotonic()
        payload = _rpc(
            target, "health", {}, scopes=["operator.read"], timeout_ms=timeout, prefix="Gateway health failed: "
        )
    except CliFailure as fail:
        return fail.report(json_)
    if json_:
        print(json.dumps(payload, indent=2))
        return 0
    st = Style.for_stdout()
    print(st.heading("Gateway Health"))
    print(f"{st.ok('OK')} ({int((time.monotonic() - started) * 1000)}ms)")
    return 0


def health(
    *,
    url: Url = None,
    port: Port = None,
    token: Token = None,
    password: Password = None,
    timeout: Timeout = 60000,
    verbose: Annotated[bool, Parameter(help="Ask for a live probe and print the connection details.")] = False,
    json_: Json = False,
) -> int:
    """Health of the gateway: agents, heartbeat, session store (``--verbose`` runs a live probe)."""
    try:
        target = resolve_target(url=url, port=port, token=token, password=password, method="health")
        payload = _rpc(
            target, "health", {"probe": True} if verbose else {}, scopes=["operator.read"], timeout_ms=timeout
        )
    except CliFailure as fail:
        return fail.report(json_)
    if json_:
        print(json.dumps(payload, indent=2))
        return 0
    print(f"Gateway probe duration: {payload.get('durationMs', 0)}ms")
    agents = payload.get("agents") or []
    if agents:
        print("Agents: " + ", ".join(f"{a['agentId']}{' (default)' if a.get('isDefault') else ''}" for a in agents))
        for a in agents:
            hb = a.get("heartbeat") or {}
            if hb.get("enabled"):
                print(f"Heartbeat interval: {hb.get('every')} ({a['agentId']})")
            sess = a.get("sessions") or {}
            print(f"Session store ({a['agentId']}): {sess.get('path')} ({sess.get('count', 0)} entries)")
    if verbose:
        print(f"Gateway target: {target.url} ({target.source})")
    return 0


def gateway_call(
    method: str,
    *,
    params: Annotated[str, Parameter(help="JSON params (default {}).")] = "{}",
    url: Url = None,
    port: Port = None,
    token: Token = None,
    password: Password = None,
    timeout: Timeout = 10000,
    expect_final: Annotated[bool, Parameter(help="Wait for the final answer of two-stage methods (agent).")] = False,
    json_: Json = False,
) -> int:
    """Call any gateway method and print its payload."""
    try:
        parsed = json.loads(params)
    except json.JSONDecodeError:
        return CliFailure(
            "Gateway call failed: --params must be valid JSON.",
            {"ok": False, "error": {"type": "cli_error", "message": "--params must be valid JSON."}},
            2,
        ).report(json_)
    try:
        target = resolve_target(url=url, port=port, token=token, password=password, method=method)
        scopes = ["operator.read", "operator.write", "operator.admin"]
        payload = _rpc(
            target,
            method,
            parsed,
            scopes=scopes,
            timeout_ms=timeout,
            expect_final=expect_final,
            prefix="Gateway call failed: ",
        )
    except CliFailure as fail:
        return fail.report(json_)
    if json_:
        print(json.dumps(payload, indent=2))
    else:
        print(Style.for_stdout().heading(f"Gateway call: {method}"))
        print(json.dumps(payload, indent=2))
    return 0


def gateway_status(
    *,
    url: Url = None,
    port: Port = None,
    token: Token = None,
    password: Password = None,
    timeout: Timeout = 10000,
    no_probe: Annotated[bool, Parameter(help="Service view only.")] = False,
    require_rpc: Annotated[bool, Parameter(help="Also call status; exit 1 if it fails.")] = False,
    deep: Annotated[bool, Parameter(help="Also scan for other gateway-like processes.")] = False,
    json_: Json = False,
) -> int:
    """Service, config and connectivity status of a gateway (exit 0 even if the probe fails, unless --require-rpc)."""
    from . import gateway_status as report

    if require_rpc and no_probe:
        print(
            "Gateway status failed: --require-rpc needs probing enabled. Remove --no-probe or drop --require-rpc.",
            file=sys.stderr,
        )
        return 2
    try:
        target, missing_credentials = report.resolve_status_target(url=url, port=port, token=token, password=password)
    except CliFailure as fail:
        return fail.report(json_)
    status = report.collect(
        target,
        missing_credentials=missing_credentials,
        port_flag=port,
        timeout_ms=timeout,
        no_probe=no_probe,
        require_rpc=require_rpc,
        deep=deep,
    )
    return report.render(status, json_=json_, require_rpc=require_rpc, deep=deep)


def gateway_probe(
    *,
    url: Annotated[str | None, Parameter(help="An explicit gateway URL, probed in addition to localhost.")] = None,
    port: Annotated[int | None, Parameter(help="Local loopback port, and the remote port of the SSH tunnel.")] = None,
    token: Annotated[str | None, Parameter(help="Gateway token (applies to every target).")] = None,
    password: Annotated[str | None, Parameter(help="Gateway password (applies to every target).")] = None,
    timeout: Annotated[int, Parameter(help="Overall budget in milliseconds.")] = 3000,
    ssh: Annotated[
        str | None, Parameter(help="user@host[:port]: also probe through an `ssh -N -L` tunnel to that host.")
    ] = None,
    ssh_identity: Annotated[str | None, Parameter(help="SSH identity file for --ssh.")] = None,
    ssh_auto: Annotated[bool, Parameter(help="Derive the SSH target from Bonjour discovery.")] = False,
    json_: Json = False,
) -> int:
    """Probe every gateway this CLI can reach: the explicit --url, an SSH tunnel (--ssh, or
    gateway.remote.sshTarget), the configured remote (gateway.remote.url), the local loopback
    gateway, and this user's other gateways on this host (other profiles' state dirs and lock
    files, listening gateway processes; each with its own state dir's credentials unless
    --token/--password). For each: connect, derive the capability, run the read RPCs. Warns when
    several distinct gateways answer. Also browses Bonjour for gateways on this network. Exit 1
    only when no target is reachable."""
    from . import gateway_probe as report

    try:
        probe = report.collect(
            url=url,
            port=port,
            token=token,
            password=password,
            timeout=timeout,
            ssh=ssh,
            ssh_identity=ssh_identity,
            ssh_auto=ssh_auto,
        )
    except CliFailure as fail:
        return fail.report(json_)
    return report.render(probe, json_=json_)


def status(
    *,
    json_: Json = False,
    timeout: Timeout = 10000,
    url: Url = None,
    token: Token = None,
    password: Password = None,
) -> int:
    """Overview of the local OpenClaw: the gateway (reachable? auth), agents, heartbeat, channels, sessions.

    Exit 0 even when the gateway is unreachable.
    """
    try:
        target = resolve_target(url=url, port=None, token=token, password=password, method="status")
    except CliFailure as fail:
        return fail.report(json_)
    return render_overview(collect_overview(target, timeout_ms=timeout), json_=json_)


@dataclass
class Overview:
    """What ``status`` shows: the gateway's ``status`` payload (empty when unreachable), this OS,
    and how the gateway was reached."""

    payload: dict[str, Any]
    os: dict[str, str]
    gateway: dict[str, Any]
    #: How the CLI authenticated: ``token``, ``password`` or ``none``.
    auth: str

    def document(self) -> dict[str, Any]:
        """The ``--json`` document: the payload with ``os`` and ``gateway`` added."""
        return {**self.payload, "os": self.os, "gateway": self.gateway}


def collect_overview(target: Target, *, timeout_ms: int) -> Overview:
    """Call ``status`` on ``target``; an unreachable gateway is reported, not raised."""
    import platform as _platform

    started = time.monotonic()
    gateway: dict[str, Any] = {"mode": "local", "url": target.url, "urlSource": target.source, "reachable": False}
    payload: dict[str, Any] = {}
    try:
        payload = _rpc(target, "status", {}, scopes=["operator.read"], timeout_ms=timeout_ms) or {}
        gateway.update(reachable=True, connectLatencyMs=int((time.monotonic() - started) * 1000))
    except CliFailure as fail:
        gateway["error"] = fail.envelope["error"].get("message")
    auth = "token" if target.token else "password" if target.password else "none"
    return Overview(payload, {"platform": sys.platform, "release": _platform.release()}, gateway, auth)


def render_overview(overview: Overview, *, json_: bool = False) -> int:
    """Print the overview (``--json``: the document); always exit 0."""
    if json_:
        print(json.dumps(overview.document(), indent=2))
        return 0
    payload, gateway = overview.payload, overview.gateway
    st = Style.for_stdout()
    print(st.heading("OpenClaw status"))
    print()
    print(st.heading("Overview"))
    print(f"  OS              {overview.os['platform']} {overview.os['release']}")
    if gateway["reachable"]:
        print(
            f"  Gateway         local · {gateway['url']} ({gateway['urlSource']}) · reachable {gateway['connectLatencyMs']}ms · auth {overview.auth}"
        )
        hb = payload.get("heartbeat") or {}
        agents = [a.get("agentId") for a in hb.get("agents") or []]
        print(f"  Agents          {', '.join(agents) or 'none'}")
        print(
            "  Heartbeat       "
            + (
                ", ".join(f"{a.get('every')} ({a.get('agentId')})" for a in hb.get("agents") or [] if a.get("enabled"))
                or "off"
            )
        )
        print(f"  Sessions        {(payload.get('sessions') or {}).get('count', 0)}")
        print(f"  Channels        {len(payload.get('channelSummary') or [])}")
    else:
        print(f"  Gateway         local · {gateway['url']} ({gateway['urlSource']}) · unreachable")
    print()
    print("Next steps:")
    print("  Need to debug live? openclaw logs --follow")
    print("  Fix reachability first: openclaw gateway probe")
    return 0
