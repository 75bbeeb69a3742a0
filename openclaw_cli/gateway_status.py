"""``gateway status`` in two steps: :func:`collect` gathers the service, config, port and
connectivity facts into a :class:`GatewayStatus`; :func:`render` prints it for a human or as the
``--json`` document (runtime-cli.md §10.3).

Collecting never prints, so another command (doctor, a test) can read the same facts; rendering
never probes, so the human and the JSON views cannot disagree.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec

from .style import Style
from .target import Target, local_port_and_source, read_config, resolve_target, section, str_or_none

CAPABILITY = [("operator.admin", "admin_capable"), ("operator.write", "write_capable"), ("operator.read", "read_only")]
PROBE_NOTES = {
    "loopback": "Loopback-only gateway; only local clients can connect.",
    "lan": "Gateway listens on all interfaces; remote clients need its token or password.",
    "custom": "Gateway listens on a custom address; remote clients need its token or password.",
}
BIND_HOSTS = {"loopback": "127.0.0.1", "lan": "0.0.0.0", "auto": "127.0.0.1", "tailnet": "127.0.0.1"}
#: Where ``--deep`` looks for other gateway units.
UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "~/.config/systemd/user")


class GatewaySection(msgspec.Struct, rename="camel", kw_only=True):
    """How the CLI reaches the gateway: bind, port and where it came from, the probe URL."""

    bind_mode: str
    bind_host: str
    port: int | None
    port_source: str | None
    probe_url: str
    url_source: str
    control_ui_links: dict[str, str]
    probe_note: str | None
    version: Any


class PortSection(msgspec.Struct, kw_only=True):
    """Who listens on the gateway's port."""

    port: int | None
    status: str
    listeners: list[dict[str, Any]]
    addresses: list[str]


class GatewayStatus(msgspec.Struct, rename="camel", kw_only=True):
    """Everything ``gateway status`` reports; the fields in the ``--json`` document's key order."""

    cli: dict[str, Any]
    extra_services: list[dict[str, Any]]
    log_file: str
    service: dict[str, Any]
    config: dict[str, Any]
    gateway: GatewaySection
    port: PortSection
    #: The connectivity probe (None with ``--no-probe``).
    rpc: dict[str, Any] | None
    last_gateway_error: dict[str, str] | None

    @property
    def probe_failed(self) -> bool:
        return self.rpc is not None and not self.rpc["ok"]

    @property
    def local(self) -> bool:
        return self.gateway.url_source == "local loopback"


def cli_version() -> str:
    from .app import _version

    return _version()


def config_valid(paths: Any) -> bool:
    """As the gateway's ``config.get`` says it (and so ``gateway probe --json``): a missing file is
    valid (defaults apply); unreadable JSON5 or a schema issue is not."""
    from gateway_core.config import validate_config
    from gateway_trio.runtime import StartupError, load_config

    try:
        cfg = load_config(paths.config_path)
    except StartupError:
        return False
    return cfg is None or not validate_config(cfg)


def log_file_of(cfg: dict[str, Any], profile: str | None) -> Any:
    """The gateway's file log: ``logging.file`` or today's rolling file for the profile."""
    from pathlib import Path

    from gateway_trio.runtime import rolling_log_path

    configured = (cfg.get("logging") or {}).get("file") if isinstance(cfg.get("logging"), dict) else None
    return Path(configured).expanduser() if isinstance(configured, str) and configured else rolling_log_path(profile)


def service_view() -> dict[str, Any]:
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


def resolve_status_target(
    *, url: str | None, port: int | None, token: str | None, password: str | None
) -> tuple[Target, str | None]:
    """The probe target and, when the local gateway's credentials are missing, why (status still
    shows the service, config and listeners then). Other refusals raise :class:`CliFailure`."""
    from .target import CliFailure, local_port

    try:
        return resolve_target(url=url, port=port, token=token, password=password, method="status"), None
    except CliFailure as fail:
        if url or fail.envelope["error"].get("type") != "gateway_credentials_required":
            raise
        paths, cfg = read_config()
        gw = section(cfg, "gateway")
        local = port or local_port(paths, gw)
        bind = gw.get("bind") if isinstance(gw.get("bind"), str) else "loopback"
        target = Target(f"ws://127.0.0.1:{local}", "local loopback", None, None, str(paths.config_path), bind, local)
        return target, fail.envelope["error"]["message"].splitlines()[0]


def _probe(target: Target, missing_credentials: str | None, *, require_rpc: bool, timeout_ms: int) -> dict[str, Any]:
    """The connectivity probe (``hello``; with ``require_rpc`` also ``status``)."""
    from .rpc_cmds import _rpc
    from .target import CliFailure

    rpc: dict[str, Any] = {"ok": False, "kind": "read" if require_rpc else "connect", "url": target.url}
    if missing_credentials:
        rpc.update(error=missing_credentials, capability="unknown", connectFailure={"kind": "credentials"})
        return rpc
    try:
        hello = _rpc(target, None, None, scopes=["operator.read"], timeout_ms=timeout_ms)
        scopes = (hello.get("auth") or {}).get("scopes") or []
        capability = next((cap for scope, cap in CAPABILITY if scope in scopes), "connected_no_operator_scope")
        rpc.update(
            ok=True,
            capability=capability,
            auth={"role": (hello.get("auth") or {}).get("role"), "scopes": scopes, "capability": capability},
            server=hello.get("server"),
        )
        if require_rpc:
            _rpc(target, "status", {}, scopes=["operator.read"], timeout_ms=timeout_ms)
    except CliFailure as fail:
        error = fail.envelope["error"].get("reason") or fail.envelope["error"].get("message")
        rpc.update(ok=False, error=error, capability="unknown")
    return rpc


def _other_services() -> list[dict[str, Any]]:
    """``--deep``: other gateway processes of any home, and gateway units in the systemd dirs."""
    from pathlib import Path

    from gateway_trio.runtime import owner_key

    from .local_gateways import gateway_processes

    here = owner_key(read_config()[0].state_dir)
    extra = [
        {"kind": "process", "pid": g.pid, "commandLine": g.command, "stateDir": str(g.state_dir), "ports": g.ports}
        for g in gateway_processes(any_home=True)
        if owner_key(g.state_dir) != here  # this gateway is not "another" service
    ]
    for unit_dir in (Path(d).expanduser() for d in UNIT_DIRS):
        if unit_dir.is_dir():
            extra += [{"kind": "systemd-unit", "path": str(u)} for u in sorted(unit_dir.glob("openclaw-gateway*.service"))]
    return extra


def collect(
    target: Target,
    *,
    missing_credentials: str | None = None,
    port_flag: int | None = None,
    timeout_ms: int = 10000,
    no_probe: bool = False,
    require_rpc: bool = False,
    deep: bool = False,
) -> GatewayStatus:
    """Probe ``target`` (unless ``no_probe``) and gather the service, config, port and log facts."""
    from gateway_trio.runtime import last_error, listeners, listening_addresses, rolling_log_path

    rpc = None if no_probe else _probe(target, missing_credentials, require_rpc=require_rpc, timeout_ms=timeout_ms)
    listening = (
        [] if target.port is None else [{"pid": pid, "commandLine": cmd} for pid, cmd in listeners(target.port).items()]
    )
    addresses = [] if target.port is None else listening_addresses(target.port)
    extra = _other_services() if deep else []
    paths, cfg = read_config()
    gw_cfg = section(cfg, "gateway")
    log_file = log_file_of(cfg, paths.profile)
    service = service_view()
    last_gateway_error = None
    if rpc is not None and not rpc["ok"]:
        # This gateway's records only: the file may be shared by every gateway on the machine.
        found = [
            e
            for e in (last_error(f, state_dir=paths.state_dir) for f in {log_file, rolling_log_path(paths.profile)})
            if e
        ]
        last_gateway_error = max(found, key=lambda e: e["time"], default=None)
    local = target.source == "local loopback"
    return GatewayStatus(
        cli={"version": cli_version(), "entrypoint": sys.argv[0]},
        extra_services=extra,
        log_file=str(log_file),
        service=service,
        config={"cli": {"path": target.config_path, "exists": paths.config_path.exists(), "valid": config_valid(paths)}},
        gateway=GatewaySection(
            bind_mode=target.bind,
            bind_host=BIND_HOSTS.get(target.bind, str_or_none(gw_cfg.get("customBindHost")) or target.bind),
            port=target.port,
            port_source="--port" if port_flag else (local_port_and_source(paths, gw_cfg)[1] if local else None),
            probe_url=target.url,
            url_source=target.source,
            control_ui_links={"httpUrl": target.url.replace("ws", "http", 1).rstrip("/") + "/", "wsUrl": target.url},
            probe_note=PROBE_NOTES.get(target.bind) if local else None,
            version=((rpc or {}).get("server") or {}).get("version"),
        ),
        port=PortSection(
            port=target.port,
            status="busy" if addresses else "free",
            listeners=[dict(item, address=a) for item in listening for a in addresses[:1]] or listening,
            addresses=addresses,
        ),
        rpc=rpc,
        last_gateway_error=last_gateway_error,
    )


def render(status: GatewayStatus, *, json_: bool = False, require_rpc: bool = False, deep: bool = False) -> int:
    """Print ``status`` (the ``--json`` document, or the human report); the exit status: 1 when the
    probe failed and ``require_rpc``, else 0."""
    code = 1 if (status.probe_failed and require_rpc) else 0
    if json_:
        print(json.dumps(msgspec.to_builtins(status), indent=2))
        return code
    st = Style.for_stdout()
    gateway, rpc, service = status.gateway, status.rpc, status.service
    label = "Read probe" if require_rpc else "Connectivity probe"
    print(f"Service: {service['summary']}")
    print(f"File logs: {status.log_file}")
    print()
    print(f"Config (cli): {status.config['cli']['path']}")
    if service.get("configPath"):
        print(f"Config (service): {service['configPath']}")
    print()
    if status.local:
        print(f"Gateway: bind={gateway.bind_mode} ({gateway.bind_host}), port={gateway.port} ({gateway.port_source})")
    print(f"Probe target: {gateway.probe_url}")
    print(f"Dashboard: {gateway.control_ui_links['httpUrl']}")
    if gateway.probe_note:
        print(f"Probe note: {gateway.probe_note}")
    print()
    print(f"CLI version: {status.cli['version']} ({status.cli['entrypoint']})")
    if gateway.version:
        print(f"Gateway version: {gateway.version}")
    print()
    for line in service.get("lines", []):
        print(line)
    print(f"Runtime: {service['runtimeText']}")
    if rpc is not None:
        if rpc["ok"]:
            print(f"{label}: {st.ok('ok')}")
            print(f"Capability: {rpc['capability'].replace('_', '-')}")
        else:
            print("Capability: unknown")
            est = Style.for_stream(sys.stderr)
            print(f"{label}: {est.error('failed')}\nProbe target: {gateway.probe_url}\n  {rpc['error']}", file=sys.stderr)
    if status.last_gateway_error:
        print(f"Last gateway error: {status.last_gateway_error['time']} {status.last_gateway_error['message']}")
    print()
    for address in status.port.addresses:
        print(f"Listening: {address}")
    if deep:
        if status.extra_services:
            print("Other gateway-like services detected (best effort):")
            for item in status.extra_services:
                print(f"  - {item.get('path') or 'pid ' + str(item['pid']) + ' ' + item['commandLine'][:70]}")
        else:
            print("No other gateway-like services detected.")
    print("Troubles: run openclaw status")
    print("Troubleshooting: https://docs.openclaw.ai/troubleshooting")
    return code


__all__ = ["GatewaySection", "GatewayStatus", "PortSection", "collect", "render", "resolve_status_target"]
