"""``gateway probe`` in two steps: :func:`collect` probes every gateway this CLI can reach into a
:class:`GatewayProbe`; :func:`render` prints it for a human or as the ``--json`` document
(runtime-cli.md §10.4).

The targets: the explicit ``--url``, an SSH tunnel (``--ssh``, or ``gateway.remote.sshTarget``),
the configured remote (``gateway.remote.url``), the local loopback gateway, and this user's other
gateways on this host; a Bonjour browse runs beside them.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import msgspec

from .gateway_status import CAPABILITY
from .style import Style
from .target import CliFailure, resolve_target, str_or_none


class GatewayProbe(msgspec.Struct, rename="camel", kw_only=True):
    """What ``gateway probe`` found; the fields in the ``--json`` document's key order."""

    ok: bool
    degraded: bool
    #: The best capability any target granted (``CAPABILITY_ORDER``).
    capability: str
    ts: int
    duration_ms: int
    timeout_ms: int
    primary_target_id: str | None
    warnings: list[dict[str, Any]]
    network: dict[str, Any]
    #: The Bonjour browse, and under ``local`` this user's other gateways found on this host.
    discovery: dict[str, Any]
    #: One entry per probed target: ``connect``, ``auth``, and what the read RPCs returned.
    targets: list[dict[str, Any]]

    @property
    def reachable(self) -> list[dict[str, Any]]:
        return [t for t in self.targets if t["connect"]["ok"]]


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


def collect(
    *,
    url: str | None = None,
    port: int | None = None,
    token: str | None = None,
    password: str | None = None,
    timeout: int = 3000,
    ssh: str | None = None,
    ssh_identity: str | None = None,
    ssh_auto: bool = False,
) -> GatewayProbe:
    """Probe every target within ``timeout`` ms (see the module doc). A target that cannot be
    resolved (an explicit ``--url`` without credentials; the local one when it is the only one)
    raises :class:`CliFailure`."""
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
    remote_token = token or (None if password else (str_or_none(remote.get("token")) or env_token))
    remote_password = password or (None if token else (str_or_none(remote.get("password")) or env_password))
    with ThreadPoolExecutor(1) as pool, contextlib.ExitStack() as stack:
        pending = pool.submit(_discovery, min(1200, timeout))
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
        ssh_target = ssh or str_or_none(remote.get("sshTarget"))
        if ssh_target is None and ssh_auto:
            ssh_target = _ssh_from_beacons(pending.result()["beacons"])
        if ssh_target:
            from urllib.parse import urlsplit

            try:
                url_port = urlsplit(str_or_none(remote.get("url")) or "").port
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
                        identity=ssh_identity or str_or_none(remote.get("sshIdentity")),
                        timeout_ms=min(1500, timeout),
                    )
                )
                plan.append(
                    {
                        "id": "sshTunnel",
                        "kind": "sshTunnel",
                        "url": f"ws://127.0.0.1:{local}",
                        "token": remote_token or str_or_none(section(gw, "auth").get("token")),
                        "password": remote_password or str_or_none(section(gw, "auth").get("password")),
                        "active": True,
                        "tunnel": {"kind": "ssh", "target": ssh_target, "localPort": local, "remotePort": remote_port},
                    }
                )
            except TunnelError as exc:
                warnings.append({"code": "ssh_tunnel_failed", "message": f"SSH tunnel failed: {exc}"})
        if str_or_none(remote.get("url")) and remote.get("url") != url:
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
        except CliFailure:
            if not plan:
                raise
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
    return GatewayProbe(
        ok=bool(reachable),
        degraded=bool(warnings),
        capability=best,
        ts=int(time.time() * 1000),
        duration_ms=int((time.monotonic() - started) * 1000),
        timeout_ms=timeout,
        primary_target_id=reachable[0]["id"] if reachable else None,
        warnings=warnings,
        network={
            "localLoopbackUrl": next((t["url"] for t in results if t["kind"] == "localLoopback"), None),
            "localTailnetUrl": None,
            "tailnetIPv4": None,
        },
        discovery={**discovery, "local": [found for _, found in local_found]},
        targets=results,
    )


def render(probe: GatewayProbe, *, json_: bool = False) -> int:
    """Print ``probe`` (the ``--json`` document, or the human report); exit 1 when no target answered."""
    reachable = probe.reachable
    if json_:
        print(json.dumps(msgspec.to_builtins(probe), indent=2))
        return 0 if reachable else 1
    best, timeout = probe.capability, probe.timeout_ms
    warnings, discovery, results = probe.warnings, probe.discovery, probe.targets
    local_found = discovery["local"]
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


__all__ = ["GatewayProbe", "collect", "render"]
