"""Probing and calling a gateway: ``gateway health|call|status`` and ``health`` (runtime-cli.md §10.2-§10.5, §10.9)."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

from cyclopts import Parameter

from .target import CliFailure, Target, request_failure, resolve_target, transport_failure

Url = Annotated[str | None, Parameter(help="Gateway WebSocket URL (needs --token or --password).")]
Port = Annotated[int | None, Parameter(help="Local loopback port (not with --url).")]
Token = Annotated[str | None, Parameter(help="Gateway token.")]
Password = Annotated[str | None, Parameter(help="Gateway password.")]
Timeout = Annotated[int, Parameter(help="Timeout in milliseconds.")]
Json = Annotated[bool, Parameter(name="--json", help="Machine-readable output.")]

CAPABILITY = [("operator.admin", "admin_capable"), ("operator.write", "write_capable"), ("operator.read", "read_only")]


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
    print("Gateway Health")
    print(f"OK ({int((time.monotonic() - started) * 1000)}ms)")
    return 0


def health(*, json_: Json = False, timeout: Timeout = 60000, verbose: bool = False) -> int:
    """Health of the local gateway: agents, heartbeat, session store (``--verbose`` runs a live probe)."""
    try:
        target = resolve_target(url=None, port=None, token=None, password=None, method="health")
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
        print(f"Gateway call: {method}")
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
    from gateway_trio.filelog import rolling_log_path
    from gateway_trio.force import listeners

    if require_rpc and no_probe:
        print(
            "Gateway status failed: --require-rpc needs probing enabled. Remove --no-probe or drop --require-rpc.",
            file=sys.stderr,
        )
        return 1
    try:
        target = resolve_target(url=url, port=port, token=token, password=password, method="status")
    except CliFailure as fail:
        return fail.report(json_)
    rpc: dict[str, Any] = {"ok": False, "kind": "read" if require_rpc else "connect", "url": target.url}
    error = None
    if not no_probe:
        try:
            hello = _rpc(target, None, None, scopes=["operator.read"], timeout_ms=timeout)
            scopes = (hello.get("auth") or {}).get("scopes") or []
            capability = next((cap for scope, cap in CAPABILITY if scope in scopes), "connected_no_operator_scope")
            rpc.update(
                ok=True,
                capability=capability,
                auth={"role": (hello.get("auth") or {}).get("role"), "scopes": scopes, "capability": capability},
                server=hello.get("server"),
            )
            if require_rpc:
                _rpc(target, "status", {}, scopes=["operator.read"], timeout_ms=timeout)
        except CliFailure as fail:
            error = fail.envelope["error"].get("reason") or fail.envelope["error"].get("message")
            rpc.update(ok=False, error=error, capability="unknown")
    listening = (
        [] if target.port is None else [{"pid": pid, "commandLine": cmd} for pid, cmd in listeners(target.port).items()]
    )
    doc = {
        "logFile": str(rolling_log_path(None)),
        "service": {
            "loaded": False,
            "targetRole": "diagnostic-only",
            "runtime": {"status": "unknown", "detail": "no supported service manager detected"},
        },
        "config": {"cli": {"path": target.config_path}},
        "gateway": {
            "probeUrl": target.url,
            "urlSource": target.source,
            "bindMode": target.bind,
            "port": target.port,
            "version": (rpc.get("server") or {}).get("version"),
        },
        "port": {"port": target.port, "status": "busy" if listening else "free", "listeners": listening},
        "rpc": rpc if not no_probe else None,
    }
    failed = not no_probe and not rpc["ok"]
    if json_:
        print(json.dumps(doc, indent=2))
    else:
        label = "Read probe" if require_rpc else "Connectivity probe"
        print("Service: no supported service manager detected (diagnostic only, not the probe target)")
        print(f"File logs: {doc['logFile']}")
        print()
        print(f"Config (cli): {target.config_path}")
        print()
        print(f"Probe target: {target.url}")
        if doc["gateway"]["version"]:
            print(f"Gateway version: {doc['gateway']['version']}")
        print()
        print("Runtime: unknown (diagnostic only, not the probe target)")
        if not no_probe:
            if rpc["ok"]:
                print(f"{label}: ok")
                print(f"Capability: {rpc['capability'].replace('_', '-')}")
            else:
                print("Capability: unknown")
                print(f"{label}: failed\nProbe target: {target.url}\n  {error}", file=sys.stderr)
        for item in listening:
            print(f"Listening: pid {item['pid']} ({item['commandLine'][:60]}) on port {target.port}")
    return 1 if (failed and require_rpc) else 0
