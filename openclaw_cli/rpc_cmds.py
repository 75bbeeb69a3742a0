"""Probing and calling a gateway: ``gateway health|call|status`` and ``health`` (runtime-cli.md §10.2-§10.5, §10.9)."""

from __future__ import annotations

import json
import os
import sys
import time
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


PROBE_NOTES = {
    "loopback": "Loopback-only gateway; only local clients can connect.",
    "lan": "Gateway listens on all interfaces; remote clients need its token or password.",
    "custom": "Gateway listens on a custom address; remote clients need its token or password.",
}


def _cli_version() -> str:
    from .app import _version

    return _version()


def _config_valid(paths: Any) -> bool:
    """As the gateway's ``config.get`` says it (and so ``gateway probe --json``): a missing file is
    valid (defaults apply); unreadable JSON5 or a schema issue is not."""
    from gateway_core.config import validate_config
    from gateway_trio.runtime import StartupError, load_config

    try:
        cfg = load_config(paths.config_path)
    except StartupError:
        return False
    return cfg is None or not validate_config(cfg)


def _log_file(cfg: dict[str, Any], profile: str | None) -> Any:
    """The gateway's file log: ``logging.file`` or today's rolling file for the profile."""
    from pathlib import Path

    from gateway_trio.runtime import rolling_log_path

    configured = (cfg.get("logging") or {}).get("file") if isinstance(cfg.get("logging"), dict) else None
    return Path(configured).expanduser() if isinstance(configured, str) and configured else rolling_log_path(profile)


def _service_view() -> dict[str, Any]:
    """The native service as ``gateway status`` shows it (diagnostic only; never the probe target)."""
    none = {
        "loaded": False,
        "targetRole": "diagnostic-only",
        "summary": "no supported service manager detected (diagnostic only, not the probe target)",
        "runtime": {"status": "unknown", "detail": "no supported service manager detected"},
        "runtimeText": "unknown (diagnostic only, not the probe target)",
        "lines": [],
    }
    try:
        from .service import Ctx

        ctx = Ctx.current()
    except Exception:  # noqa: BLE001 - the service view is diagnostic; never fail status over it
        return none
    backend = ctx.backend
    if backend is None:
        return none
    view: dict[str, Any] = {
        "label": backend.name,
        "kind": backend.kind,
        "file": str(backend.definition_path),
        "loadedText": backend.loaded_text,
        "notLoadedText": backend.not_loaded_text,
        "targetRole": "diagnostic-only",
    }
    if not backend.installed():
        view.update(
            loaded=False,
            summary=f"{backend.kind} {backend.name} not installed",
            runtime={"status": "unknown", "detail": "service unit not found"},
            runtimeText="unknown (no service installed; diagnostic only)",
            lines=["Service unit not found.", f"Run: {ctx.cli('gateway install')}"],
        )
        return view
    try:
        st = backend.status()
    except Exception as exc:  # noqa: BLE001
        st = None
        detail = str(exc)
    else:
        detail = st.detail
    loaded = bool(st and st.loaded)
    state = st.state if st else "unknown"
    parts = [f"pid {st.pid}" if st and st.pid else None, f"state {detail}" if detail else None]
    runtime_text = state + (f" ({', '.join(p for p in parts if p)})" if any(parts) else "")
    lines = [f"Service file: {backend.definition_path}"]
    if loaded and state == "stopped":
        lines.append("Service is loaded but not running (likely exited immediately).")
    if backend.kind == "systemd":
        lines.append(f"Logs: journalctl --user -u {backend.name} -n 200 --no-pager")
    view.update(
        loaded=loaded,
        summary=f"{backend.kind} ({backend.loaded_text if loaded else backend.not_loaded_text})",
        runtime={"status": state, "pid": st.pid if st else None, "detail": detail},
        runtimeText=runtime_text,
        lines=lines,
        configPath=str(ctx.config_path),
    )
    return view


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
    from gateway_trio.runtime import last_error as last_error_in
    from gateway_trio.runtime import listeners, listening_addresses

    from .target import local_port_and_source, read_config, section

    if require_rpc and no_probe:
        print(
            "Gateway status failed: --require-rpc needs probing enabled. Remove --no-probe or drop --require-rpc.",
            file=sys.stderr,
        )
        return 2
    try:
        target = resolve_target(url=url, port=port, token=token, password=password, method="status")
        missing_credentials = None
    except CliFailure as fail:
        if url or fail.envelope["error"].get("type") != "gateway_credentials_required":
            return fail.report(json_)
        # No credentials for the local gateway: still show the service, config and listeners.
        from .target import Target, local_port, read_config, section

        paths, cfg = read_config()
        gw = section(cfg, "gateway")
        local = port or local_port(paths, gw)
        bind = gw.get("bind") if isinstance(gw.get("bind"), str) else "loopback"
        target = Target(f"ws://127.0.0.1:{local}", "local loopback", None, None, str(paths.config_path), bind, local)
        missing_credentials = fail.envelope["error"]["message"].splitlines()[0]
    rpc: dict[str, Any] = {"ok": False, "kind": "read" if require_rpc else "connect", "url": target.url}
    error = None
    if missing_credentials and not no_probe:
        error = missing_credentials
        rpc.update(error=error, capability="unknown", connectFailure={"kind": "credentials"})
    elif not no_probe:
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
    addresses = [] if target.port is None else listening_addresses(target.port)
    extra: list[dict[str, Any]] = []
    if deep:
        from pathlib import Path

        from gateway_trio.runtime import owner_key

        from .local_gateways import gateway_processes
        from .target import read_config as _paths_and_config

        here = owner_key(_paths_and_config()[0].state_dir)
        extra = [
            {"kind": "process", "pid": g.pid, "commandLine": g.command, "stateDir": str(g.state_dir), "ports": g.ports}
            for g in gateway_processes(any_home=True)
            if owner_key(g.state_dir) != here  # this gateway is not "another" service
        ]
        for unit_dir in (
            Path("/etc/systemd/system"),
            Path("/lib/systemd/system"),
            Path.home() / ".config/systemd/user",
        ):
            if unit_dir.is_dir():
                extra += [
                    {"kind": "systemd-unit", "path": str(u)} for u in sorted(unit_dir.glob("openclaw-gateway*.service"))
                ]
    paths, cfg = read_config()
    gw_cfg = section(cfg, "gateway")
    bind_host = {"loopback": "127.0.0.1", "lan": "0.0.0.0", "auto": "127.0.0.1", "tailnet": "127.0.0.1"}.get(
        target.bind, _s(gw_cfg.get("customBindHost")) or target.bind
    )
    log_file = _log_file(cfg, paths.profile)
    service = _service_view()
    failed = not no_probe and not rpc["ok"]
    last_error = None
    if failed:
        from gateway_trio.runtime import rolling_log_path

        # This gateway's records only: the file may be shared by every gateway on the machine.
        found = [
            e
            for e in (last_error_in(f, state_dir=paths.state_dir) for f in {log_file, rolling_log_path(paths.profile)})
            if e
        ]
        last_error = max(found, key=lambda e: e["time"], default=None)
    local = target.source == "local loopback"
    http_url = target.url.replace("ws", "http", 1).rstrip("/") + "/"
    doc = {
        "cli": {"version": _cli_version(), "entrypoint": sys.argv[0]},
        "extraServices": extra,
        "logFile": str(log_file),
        "service": service,
        "config": {
            "cli": {"path": target.config_path, "exists": paths.config_path.exists(), "valid": _config_valid(paths)}
        },
        "gateway": {
            "bindMode": target.bind,
            "bindHost": bind_host,
            "port": target.port,
            "portSource": "--port" if port else (local_port_and_source(paths, gw_cfg)[1] if local else None),
            "probeUrl": target.url,
            "urlSource": target.source,
            "controlUiLinks": {"httpUrl": http_url, "wsUrl": target.url},
            "probeNote": PROBE_NOTES.get(target.bind) if local else None,
            "version": (rpc.get("server") or {}).get("version"),
        },
        "port": {
            "port": target.port,
            "status": "busy" if addresses else "free",
            "listeners": [dict(item, address=a) for item in listening for a in addresses[:1]] or listening,
            "addresses": addresses,
        },
        "rpc": rpc if not no_probe else None,
        "lastGatewayError": last_error,
    }
    if json_:
        print(json.dumps(doc, indent=2))
        return 1 if (failed and require_rpc) else 0
    st = Style.for_stdout()
    label = "Read probe" if require_rpc else "Connectivity probe"
    print(f"Service: {service['summary']}")
    print(f"File logs: {log_file}")
    print()
    print(f"Config (cli): {target.config_path}")
    if service.get("configPath"):
        print(f"Config (service): {service['configPath']}")
    print()
    if local:
        print(f"Gateway: bind={target.bind} ({bind_host}), port={target.port} ({doc['gateway']['portSource']})")
    print(f"Probe target: {target.url}")
    print(f"Dashboard: {http_url}")
    if doc["gateway"]["probeNote"]:
        print(f"Probe note: {doc['gateway']['probeNote']}")
    print()
    print(f"CLI version: {_cli_version()} ({sys.argv[0]})")
    if doc["gateway"]["version"]:
        print(f"Gateway version: {doc['gateway']['version']}")
    print()
    for line in service.get("lines", []):
        print(line)
    print(f"Runtime: {service['runtimeText']}")
    if not no_probe:
        if rpc["ok"]:
            print(f"{label}: {st.ok('ok')}")
            print(f"Capability: {rpc['capability'].replace('_', '-')}")
        else:
            print("Capability: unknown")
            est = Style.for_stream(sys.stderr)
            print(f"{label}: {est.error('failed')}\nProbe target: {target.url}\n  {error}", file=sys.stderr)
    if last_error:
        print(f"Last gateway error: {last_error['time']} {last_error['message']}")
    print()
    for address in addresses:
        print(f"Listening: {address}")
    if deep:
        if extra:
            print("Other gateway-like services detected (best effort):")
            for item in extra:
                print(f"  - {item.get('path') or 'pid ' + str(item['pid']) + ' ' + item['commandLine'][:70]}")
        else:
            print("No other gateway-like services detected.")
    print("Troubles: run openclaw status")
    print("Troubleshooting: https://docs.openclaw.ai/troubleshooting")
    return 1 if (failed and require_rpc) else 0


LABELS = {
    "admin_capable": "admin-capable",
    "write_capable": "write-capable",
    "read_only": "read-only",
    "connected_no_operator_scope": "connect-only",
    "unknown": "unknown",
}
READS = [("health", {}), ("status", {}), ("system-presence", {}), ("config.get", {})]


def _probe_target(
    target_id: str, kind: str, url: str, token: str | None, password: str | None, timeout_s: float
) -> dict[str, Any]:
    import trio

    from gateway_trio.client import RpcError, exchange

    out: dict[str, Any] = {"id": target_id, "kind": kind, "url": url, "active": True, "tunnel": None}
    started = time.monotonic()
    try:
        hello, results = trio.run(
            lambda: exchange(url, READS, token=token, password=password, scopes=["operator.read"], timeout=timeout_s)
        )
    except RpcError as exc:
        out["connect"] = {
            "ok": False,
            "rpcOk": False,
            "scopeLimited": False,
            "latencyMs": int((time.monotonic() - started) * 1000),
            "error": str(exc),
            "close": None,
        }
        out["auth"] = {"capability": "pairing_pending" if exc.code == "NOT_PAIRED" else "unknown"}
        return out
    latency = int((time.monotonic() - started) * 1000)
    scopes = (hello.get("auth") or {}).get("scopes") or []
    capability = next((cap for scope, cap in CAPABILITY if scope in scopes), "connected_no_operator_scope")
    errors = [r[2] for r in results if not r[0]]
    missing = next((e for e in errors if (e.get("details") or {}).get("code") == "MISSING_SCOPE"), None)
    out["connect"] = {
        "ok": True,
        "rpcOk": not errors,
        "scopeLimited": missing is not None,
        "latencyMs": latency,
        "error": errors[0]["message"] if errors else None,
        "close": None,
    }
    out["auth"] = {"role": (hello.get("auth") or {}).get("role"), "scopes": scopes, "capability": capability}
    out["server"] = hello.get("server")
    (health_ok, health, _), (_, status, _), (presence_ok, presence, _), (_, config, _) = results
    self_row = (
        next((r for r in presence or [] if isinstance(r, dict) and r.get("mode") == "gateway"), None)
        if presence_ok
        else None
    )
    if self_row:
        out["self"] = {k: self_row.get(k) for k in ("host", "ip", "version", "platform", "instanceId")}
    out["health"] = health if health_ok else None
    out["summary"] = status
    out["presence"] = presence if presence_ok else None
    out["config"] = (
        {
            "path": (config or {}).get("path"),
            "exists": (config or {}).get("exists"),
            "valid": (config or {}).get("valid"),
        }
        if config
        else None
    )
    return out


NO_GATEWAY = (
    "No gateway answered any probe and Bonjour discovery returned no local gateways. Run `openclaw gateway status "
    "--deep --require-rpc` to inspect service state, config paths, listener owners, and logs; include `ss -ltnp` or "
    "`lsof -nP -iTCP:{port} -sTCP:LISTEN` for the configured port when filing a report."
)
TARGET_NAMES = {"explicit": "URL (explicit)", "sshTunnel": "SSH tunnel", "localLoopback": "Local loopback"}
CAPABILITY_ORDER = [
    "admin_capable",
    "write_capable",
    "read_only",
    "connected_no_operator_scope",
    "pairing_pending",
    "unknown",
]


def _discovery(budget_ms: int) -> dict[str, Any]:
    """The probe's ``discovery`` section: a Bonjour browse of ``budget_ms`` (skipped when disabled)."""
    from gateway_core.discovery import env_flag

    out: dict[str, Any] = {"timeoutMs": budget_ms, "count": 0, "beacons": []}
    if env_flag(os.environ.get("OPENCLAW_DISABLE_BONJOUR")):
        out["skipped"] = "OPENCLAW_DISABLE_BONJOUR is set"
        return out
    from .discover_cmd import browse

    try:
        beacons = browse(budget_ms)
    except (OSError, ImportError) as exc:
        out["error"] = str(exc)
        return out
    out.update(count=len(beacons), beacons=beacons)
    return out


def _ssh_from_beacons(beacons: list[dict[str, Any]]) -> str | None:
    """``--ssh-auto``: the first beacon that offers SSH, as ``$USER@host:sshPort``."""
    import getpass

    for b in beacons:
        host = next(iter(b.get("addresses") or []), None) or b.get("host")
        if host and b.get("sshPort"):
            return f"{getpass.getuser()}@{f'[{host}]' if ':' in host else host}:{b['sshPort']}"
    return None


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
    import contextlib
    from concurrent.futures import ThreadPoolExecutor

    from .ssh_tunnel import SshTarget, TunnelError, open_tunnel
    from .target import local_port, read_config, section

    started = time.monotonic()
    paths, cfg = read_config()
    gw = section(cfg, "gateway")
    remote = section(gw, "remote")
    warnings: list[dict[str, Any]] = []
    plan: list[dict[str, Any]] = []
    env_token, env_password = os.environ.get("OPENCLAW_GATEWAY_TOKEN"), os.environ.get("OPENCLAW_GATEWAY_PASSWORD")
    remote_token = token or (None if password else (_s(remote.get("token")) or env_token))
    remote_password = password or (None if token else (_s(remote.get("password")) or env_password))
    with ThreadPoolExecutor(1) as pool, contextlib.ExitStack() as stack:
        pending = pool.submit(_discovery, min(1200, timeout))
        try:
            if url:
                explicit = resolve_target(url=url, port=None, token=token, password=password, method="probe")
                plan.append(
                    {
                        "id": "explicit",
                        "kind": "explicit",
                        "url": explicit.url,
                        "token": explicit.token,
                        "password": explicit.password,
                        "active": True,
                        "tunnel": None,
                    }
                )
        except CliFailure as fail:
            return fail.report(json_)
        ssh_target = ssh or _s(remote.get("sshTarget"))
        if ssh_target is None and ssh_auto:
            ssh_target = _ssh_from_beacons(pending.result()["beacons"])
        if ssh_target:
            from urllib.parse import urlsplit

            try:
                url_port = urlsplit(_s(remote.get("url")) or "").port
            except ValueError:
                url_port = None
            remote_port = (
                port
                or url_port
                or (gw.get("port") if isinstance(gw.get("port"), int) else None)
                or 18789
            )
            try:
                target = SshTarget.parse(ssh_target)
                local = stack.enter_context(
                    open_tunnel(
                        target,
                        remote_port,
                        identity=ssh_identity or _s(remote.get("sshIdentity")),
                        timeout_ms=min(1500, timeout),
                    )
                )
                plan.append(
                    {
                        "id": "sshTunnel",
                        "kind": "sshTunnel",
                        "url": f"ws://127.0.0.1:{local}",
                        "token": remote_token or _s(section(gw, "auth").get("token")),
                        "password": remote_password or _s(section(gw, "auth").get("password")),
                        "active": True,
                        "tunnel": {"kind": "ssh", "target": ssh_target, "localPort": local, "remotePort": remote_port},
                    }
                )
            except TunnelError as exc:
                warnings.append({"code": "ssh_tunnel_failed", "message": f"SSH tunnel failed: {exc}"})
        if _s(remote.get("url")) and remote.get("url") != url:
            plan.append(
                {
                    "id": "configRemote",
                    "kind": "configRemote",
                    "url": remote["url"],
                    "token": remote_token,
                    "password": remote_password,
                    "active": gw.get("mode") == "remote",
                    "tunnel": None,
                }
            )
        try:
            loop = resolve_target(
                url=None, port=port or local_port(paths, gw), token=token, password=password, method="probe"
            )
            plan.append(
                {
                    "id": "localLoopback",
                    "kind": "localLoopback",
                    "url": loop.url,
                    "token": loop.token,
                    "password": loop.password,
                    "active": True,
                    "tunnel": None,
                }
            )
        except CliFailure as fail:
            if not plan:
                return fail.report(json_)
        local_found = _other_local_gateways(paths, plan, token, password)
        plan += [entry for entry, _ in local_found]
        results = []
        seen: set[str] = set()
        for entry in plan:
            if entry["url"] in seen:
                continue
            seen.add(entry["url"])
            left = max(timeout / 1000 - (time.monotonic() - started), 0.2)
            result = _probe_target(entry["id"], entry["kind"], entry["url"], entry["token"], entry["password"], left)
            result["active"], result["tunnel"] = entry["active"], entry["tunnel"]
            if entry.get("name"):
                result["name"] = entry["name"]
            results.append(result)
        discovery = pending.result()
    reachable = [t for t in results if t["connect"]["ok"]]
    best = min((t["auth"].get("capability", "unknown") for t in results), key=CAPABILITY_ORDER.index, default="unknown")
    identities = {
        (t.get("server") or {}).get("bootId") or (t.get("self") or {}).get("instanceId") or t["url"] for t in reachable
    }
    if len(identities) > 1:
        warnings.append(
            {
                "code": "multiple_gateways",
                "message": "Unconventional setup: multiple reachable gateway identities detected. Usually one gateway "
                "per network is recommended unless you intentionally run isolated profiles, like a rescue bot "
                "(see docs: /gateway#multiple-gateways-same-host).",
                "targetIds": [t["id"] for t in reachable],
            }
        )
    limited = [t["id"] for t in reachable if t["connect"]["scopeLimited"]]
    if limited:
        warnings.append(
            {
                "code": "probe_scope_limited",
                "message": "Read-probe diagnostics are limited by gateway scopes (missing operator.read). Connection "
                "succeeded, but read-only status calls are incomplete. Hint: pair device identity or use credentials "
                "with operator.read.",
                "targetIds": limited,
            }
        )
    if not reachable:
        shown_port = port or local_port(paths, gw)
        warnings.append({"code": "no_gateway_reachable", "message": NO_GATEWAY.format(port=shown_port)})
    doc = {
        "ok": bool(reachable),
        "degraded": bool(warnings),
        "capability": best,
        "ts": int(time.time() * 1000),
        "durationMs": int((time.monotonic() - started) * 1000),
        "timeoutMs": timeout,
        "primaryTargetId": reachable[0]["id"] if reachable else None,
        "warnings": warnings,
        "network": {
            "localLoopbackUrl": next((t["url"] for t in results if t["kind"] == "localLoopback"), None),
            "localTailnetUrl": None,
            "tailnetIPv4": None,
        },
        "discovery": {**discovery, "local": [found for _, found in local_found]},
        "targets": results,
    }
    if json_:
        print(json.dumps(doc, indent=2))
        return 0 if reachable else 1
    st = Style.for_stdout()
    print(st.heading("Gateway Status"))
    print(f"Reachable: {st.status('yes' if reachable else 'no', bool(reachable))}")
    print(f"Capability: {best.replace('_', '-')}")
    print(f"Probe budget: {timeout}ms")
    if warnings:
        print("\n" + st.warn("Warning:"))
        for w in warnings:
            print(f"- {w['message']}")
    print("\n" + st.heading("Discovery (this machine)"))
    if discovery.get("skipped"):
        print(f"Bonjour discovery skipped ({discovery['skipped']})")
    elif discovery.get("error"):
        print(f"Bonjour discovery failed: {discovery['error']}")
    else:
        print(f"Found {discovery['count']} gateways via Bonjour (local.)")
        for b in discovery["beacons"]:
            print(f"- {b.get('displayName') or b['instanceName']} {b.get('wsUrl') or ''}".rstrip())
    if not discovery["count"]:
        print(
            "Tip: if the gateway is remote, mDNS won’t cross networks; use Wide-Area Bonjour (split DNS) or SSH tunnels."
        )
    if local_found:
        print(f"Found {len(local_found)} other gateway(s) of this user on this host (state dirs and processes)")
    print("\n" + st.heading("Targets"))
    for t in results:
        name = t.get("name") or TARGET_NAMES.get(t["kind"]) or (
            "Remote (configured)" if t["active"] else "Remote (configured, inactive)"
        )
        c = t["connect"]
        print(f"{name} {t['url']}")
        if c["ok"]:
            read = (
                "ok" if c["rpcOk"] else (f"limited - {c['error']}" if c["scopeLimited"] else f"failed - {c['error']}")
            )
            label = LABELS.get(t["auth"]["capability"], "unknown")
            print(f"  Connect: {st.ok('ok')} ({c['latencyMs']}ms) · Capability: {label} · Read probe: {read}")
        else:
            print(f"  Connect: {st.error('failed')} - {c['error']}")
    return 0 if reachable else 1


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _other_local_gateways(
    paths: Any, plan: list[dict[str, Any]], token: str | None, password: str | None
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Probe targets for this user's other gateways on this host, found without the network
    (other profiles' state dirs and lock files, listening gateway processes): (plan entry, what was
    found). Each is probed with the credentials its own state dir holds, unless --token/--password
    (which apply to every target)."""
    from gateway_trio.runtime import owner_key

    from .local_gateways import discover_local

    here = owner_key(paths.state_dir)
    planned = {entry["url"] for entry in plan}
    out = []
    for gw in discover_local():
        if owner_key(gw.state_dir) == here or not gw.ports:
            continue
        url = f"ws://127.0.0.1:{gw.ports[0]}"
        if url in planned:
            continue
        planned.add(url)
        own_token, own_password = gw.credentials()
        entry = {
            "id": f"local:{gw.ports[0]}",
            "kind": "localOther",
            "name": f"Local ({gw.label()})",
            "url": url,
            "token": token or (None if password else own_token),
            "password": password or (None if token else own_password),
            "active": True,
            "tunnel": None,
        }
        found = {
            "stateDir": str(gw.state_dir),
            "profile": gw.profile,
            "pid": gw.pid,
            "ports": gw.ports,
            "sources": gw.sources,
            "url": url,
        }
        out.append((entry, found))
    return out


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
    import platform as _platform

    try:
        target = resolve_target(url=url, port=None, token=token, password=password, method="status")
    except CliFailure as fail:
        return fail.report(json_)
    started = time.monotonic()
    gateway: dict[str, Any] = {"mode": "local", "url": target.url, "urlSource": target.source, "reachable": False}
    payload: dict[str, Any] = {}
    try:
        payload = _rpc(target, "status", {}, scopes=["operator.read"], timeout_ms=timeout) or {}
        gateway.update(reachable=True, connectLatencyMs=int((time.monotonic() - started) * 1000))
    except CliFailure as fail:
        gateway["error"] = fail.envelope["error"].get("message")
    doc = {**payload, "os": {"platform": sys.platform, "release": _platform.release()}, "gateway": gateway}
    if json_:
        print(json.dumps(doc, indent=2))
        return 0
    st = Style.for_stdout()
    print(st.heading("OpenClaw status"))
    print()
    print(st.heading("Overview"))
    print(f"  OS              {sys.platform} {_platform.release()}")
    if gateway["reachable"]:
        auth = "token" if target.token else "password" if target.password else "none"
        print(
            f"  Gateway         local · {target.url} ({target.source}) · reachable {gateway['connectLatencyMs']}ms · auth {auth}"
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
        print(f"  Gateway         local · {target.url} ({target.source}) · unreachable")
    print()
    print("Next steps:")
    print("  Need to debug live? openclaw logs --follow")
    print("  Fix reachability first: openclaw gateway probe")
    return 0
