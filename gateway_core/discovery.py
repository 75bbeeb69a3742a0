"""DNS-SD discovery, the pure part: whether to advertise, what the ``_openclaw-gw._tcp`` record says,
and how a browsed record becomes a beacon (runtime-cli.md §10.7).

No sockets here: the Trio shell (``gateway_trio.discovery``) owns the mDNS responder and the CLI owns
the browser; both call these functions, so the rules can be tested and embedded without a network.

The TXT keys and their order are the published gateway's, as recorded from its advertiser:
``role, gatewayPort, lanHost, displayName, [gatewayTls, gatewayTlsSha256], [gatewayDirectReachable],
[tailnetDns], [cliPath], transport, [sshPort]``; the bracketed full-mode keys (``tailnetDns``,
``cliPath``, ``sshPort``) only with ``discovery.mdns.mode = "full"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SERVICE_TYPE = "_openclaw-gw._tcp.local."
DOMAIN = "local."
MDNS_MODES = ("minimal", "full", "off")
MAX_LABEL_BYTES = 63
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class Decision:
    """Whether the gateway advertises, and why (the why is logged either way)."""

    enabled: bool
    why: str
    minimal: bool = True


def env_flag(raw: str | None) -> bool | None:
    """``OPENCLAW_DISABLE_BONJOUR``: True (disable), False (explicitly do not disable), None (unset/other)."""
    value = (raw or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def decide(
    *,
    mode: str | None,
    disable_env: str | None,
    plugin_enabled: bool | None,
    platform: str,
    in_container: bool,
) -> Decision:
    """The advertising rules, first match wins.

    ``mode`` is ``discovery.mdns.mode`` as written (None when absent); ``plugin_enabled`` is
    ``plugins.entries.bonjour.enabled`` as written. As in the published gateway, advertising is on
    by default on macOS only; elsewhere it is opted into with the bonjour plugin entry or (our
    addition) by writing ``discovery.mdns.mode``. Containers stay quiet unless the env var says
    ``0``, because their interfaces rarely reach the operator's LAN.
    """
    disabled = env_flag(disable_env)
    minimal = mode != "full"
    rules: list[tuple[bool, Decision]] = [
        (disabled is True, Decision(False, "OPENCLAW_DISABLE_BONJOUR is set")),
        (mode == "off", Decision(False, "discovery.mdns.mode is off")),
        (plugin_enabled is False, Decision(False, "plugins.entries.bonjour.enabled is false")),
        (
            not (plugin_enabled or mode is not None or platform == "darwin"),
            Decision(False, "off by default on this platform (set discovery.mdns.mode to advertise)"),
        ),
        (
            in_container and disabled is not False,
            Decision(False, "container detected (set OPENCLAW_DISABLE_BONJOUR=0 to advertise anyway)"),
        ),
    ]
    for matched, decision in rules:
        if matched:
            return decision
    return Decision(True, f"mode {'minimal' if minimal else 'full'}", minimal)


def _truncate_label(name: str, fallback: str) -> str:
    data = name.encode()
    if len(data) <= MAX_LABEL_BYTES:
        return name
    cut = data[:MAX_LABEL_BYTES].decode("utf-8", errors="ignore")
    return cut.rstrip("-").strip() or fallback


def mdns_hostname(system_hostname: str | None, override: str | None = None) -> str:
    """The ``<host>`` of ``<host>.local``: the override, else the system hostname's first label if it
    is a valid DNS label, else ``openclaw``."""
    raw = (override or "").strip()
    if not raw:
        first = re.sub(r"\.local$", "", (system_hostname or "").strip(), flags=re.IGNORECASE).split(".")[0].strip()
        raw = first if _LABEL.match(first) else "openclaw"
    raw = re.sub(r"\.local$", "", raw, flags=re.IGNORECASE).split(".")[0].strip() or "openclaw"
    return _truncate_label(raw, "openclaw")


def instance_name(hostname: str) -> str:
    """The DNS-SD instance: ``<host> (OpenClaw)``, at most one DNS label long."""
    return _truncate_label(f"{hostname} (OpenClaw)", "OpenClaw")


def display_name(instance: str) -> str:
    """The instance without its `` (OpenClaw)`` suffix."""
    normalized = " ".join(instance.split())
    return re.sub(r"\s*\(OpenClaw\)\s*$", "", normalized, flags=re.IGNORECASE).strip() or normalized


def gateway_txt(
    *,
    hostname: str,
    gateway_port: int,
    minimal: bool,
    direct_reachable: bool,
    tls_sha256: str | None = None,
    tls: bool = False,
    tailnet_dns: str | None = None,
    cli_path: str | None = None,
    ssh_port: int | None = None,
) -> dict[str, str]:
    """The TXT record, keys in the published order (see the module docstring)."""
    txt = {
        "role": "gateway",
        "gatewayPort": str(gateway_port),
        "lanHost": f"{hostname}.local",
        "displayName": display_name(instance_name(hostname)),
    }
    if tls:
        txt["gatewayTls"] = "1"
        if tls_sha256:
            txt["gatewayTlsSha256"] = tls_sha256
    if direct_reachable:
        txt["gatewayDirectReachable"] = "1"
    if not minimal and tailnet_dns and tailnet_dns.strip():
        txt["tailnetDns"] = tailnet_dns.strip()
    if not minimal and cli_path and cli_path.strip():
        txt["cliPath"] = cli_path.strip()
    txt["transport"] = "gateway"
    if not minimal:
        txt["sshPort"] = str(ssh_port or 22)
    return txt


def parse_port(raw: Any) -> int | None:
    """A TCP port from a TXT value, or None."""
    try:
        port = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return port if 0 < port <= 65535 else None


def _ws_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def beacon(
    *,
    service_name: str,
    server: str | None,
    port: int | None,
    addresses: list[str],
    txt: Mapping[str, str],
    domain: str = DOMAIN,
) -> dict[str, Any]:
    """One browsed gateway as ``gateway discover --json`` shows it.

    ``wsUrl`` comes from the resolved SRV port and A/AAAA addresses (IPv4 first), else the SRV host;
    never from TXT hints such as ``lanHost`` or ``gatewayPort``, which anyone on the LAN can write.
    """
    instance = service_name.removesuffix("." + SERVICE_TYPE).removesuffix(SERVICE_TYPE).rstrip(".")
    host = (server or "").rstrip(".") or None
    out: dict[str, Any] = {
        "instanceName": instance,
        "displayName": txt.get("displayName") or instance,
        "domain": domain,
        "host": host,
        "port": port,
        "addresses": addresses,
    }
    if txt:
        out["txt"] = dict(txt)
    for key in ("lanHost", "tailnetDns", "cliPath", "role", "transport"):
        if txt.get(key):
            out[key] = txt[key]
    out["gatewayPort"] = parse_port(txt.get("gatewayPort"))
    out["sshPort"] = parse_port(txt.get("sshPort"))
    tls = (txt.get("gatewayTls") or "").strip().lower() in ("1", "true", "yes")
    if "gatewayTls" in txt:
        out["gatewayTls"] = tls
    if txt.get("gatewayTlsSha256"):
        out["gatewayTlsFingerprintSha256"] = txt["gatewayTlsSha256"]
    if txt.get("gatewayDirectReachable"):
        out["gatewayDirectReachable"] = txt["gatewayDirectReachable"] == "1"
    endpoint = next((a for a in addresses if ":" not in a), None) or (addresses[0] if addresses else host)
    scheme = "wss" if tls else "ws"
    out["wsUrl"] = f"{scheme}://{_ws_host(endpoint)}:{port}" if endpoint and port else None
    return out


def dedupe(beacons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeats (same domain, instance, display name, host and ports), sorted by display name."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for b in beacons:
        key = (
            b.get("domain"),
            b.get("instanceName"),
            b.get("displayName"),
            b.get("host"),
            b.get("port"),
            b.get("gatewayPort"),
        )
        if key not in seen:
            seen.add(key)
            out.append(b)
    return sorted(out, key=lambda b: str(b.get("displayName") or b.get("instanceName") or ""))


__all__ = [
    "DOMAIN",
    "MDNS_MODES",
    "SERVICE_TYPE",
    "Decision",
    "beacon",
    "decide",
    "dedupe",
    "display_name",
    "env_flag",
    "gateway_txt",
    "instance_name",
    "mdns_hostname",
    "parse_port",
]
