"""``openclaw gateway discover``: browse ``_openclaw-gw._tcp`` over mDNS (runtime-cli.md §10.7).

Browsing uses python-zeroconf (no avahi or dns-sd binaries needed). The same :func:`browse` feeds
the ``Discovery (this machine)`` section of ``gateway probe``. Beacons are built by
``gateway_core.discovery.beacon``: the WebSocket URL comes from the resolved SRV/A records, never
from TXT hints.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from cyclopts import Parameter

from gateway_core import discovery as rules

from .style import Style


def browse(timeout_ms: int) -> list[dict[str, Any]]:
    """Gateways answering on the local link within ``timeout_ms`` (browse, then resolve each within
    the same budget again). Raises ``OSError``/``ImportError`` when mDNS is unusable here."""
    from zeroconf import DNSQuestionType, ServiceBrowser, ServiceListener, Zeroconf

    names: list[str] = []

    class Listener(ServiceListener):
        def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            if name not in names:
                names.append(name)

        def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            self.add_service(zc, type_, name)

        def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            pass

    zc = Zeroconf()
    try:
        # QM (multicast answers): a unicast answer to port 5353 reaches only one of the sockets
        # sharing it, so a browser on the gateway's own host would miss it.
        browser = ServiceBrowser(zc, rules.SERVICE_TYPE, Listener(), question_type=DNSQuestionType.QM)
        time.sleep(max(timeout_ms, 0) / 1000)
        browser.cancel()
        deadline = time.monotonic() + max(timeout_ms, 1) / 1000
        found = []
        for name in list(names):
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            info = zc.get_service_info(rules.SERVICE_TYPE, name, timeout=left_ms, question_type=DNSQuestionType.QM)
            if info is None:
                continue
            txt = {
                (k.decode(errors="replace") if isinstance(k, bytes) else str(k)): (
                    v.decode(errors="replace") if isinstance(v, bytes) else ""
                )
                for k, v in (info.properties or {}).items()
            }
            found.append(
                rules.beacon(
                    service_name=info.name,
                    server=info.server,
                    port=info.port,
                    addresses=info.parsed_scoped_addresses(),
                    txt=txt,
                )
            )
        return rules.dedupe(found)
    finally:
        zc.close()


def beacon_lines(b: dict[str, Any], style: Style) -> list[str]:
    """The human lines for one beacon."""
    lines = [f"- {style.accent(b.get('displayName') or b['instanceName'])} {style.muted(b.get('domain') or '')}"]
    for key, label in (("tailnetDns", "tailnet"), ("lanHost", "lan"), ("host", "host")):
        if b.get(key):
            lines.append(f"  {style.info(label)}: {b[key]}")
    if b.get("wsUrl"):
        lines.append(f"  {style.muted('ws')}: {style.command(b['wsUrl'])}")
    for key in ("role", "transport"):
        if b.get(key):
            lines.append(f"  {style.muted(key)}: {b[key]}")
    if b.get("gatewayTls"):
        fp = b.get("gatewayTlsFingerprintSha256")
        lines.append(f"  {style.muted('tls')}: {f'sha256 {fp}' if fp else 'enabled'}")
    if b.get("sshPort") and b.get("port"):
        host = next(iter(b.get("addresses") or []), None) or b.get("host")
        ssh = f"ssh -N -L 18789:127.0.0.1:{b['port']} <user>@{host} -p {b['sshPort']}"
        lines.append(f"  {style.muted('ssh')}: {style.command(ssh)}")
    return lines


def gateway_discover(
    *,
    timeout: Annotated[int, Parameter(help="Browse window in milliseconds (resolving gets as long again).")] = 2000,
    json_: Annotated[bool, Parameter(name="--json", help="Machine-readable output.")] = False,
) -> int:
    """Find gateways on the local network via mDNS/DNS-SD (_openclaw-gw._tcp in local.).

    A gateway advertises when discovery is on (discovery.mdns.mode, or plugins.entries.bonjour.enabled;
    on by default on macOS). Prints each gateway's name, host, WebSocket URL and TXT details.
    Exit 0 whether or not anything answered; 1 when mDNS cannot be used on this machine.
    """
    from gateway_trio.runtime import Paths, load_config

    style = Style.for_stdout(json_)
    if timeout <= 0:
        print("gateway discover failed: --timeout must be a positive number of milliseconds.")
        return 1
    config = load_config(Paths.resolve(None).config_path) or {}
    wide = ((config.get("discovery") or {}).get("wideArea") or {}).get("domain")
    try:
        beacons = browse(timeout)
    except (OSError, ImportError) as exc:
        message = f"gateway discover failed: mDNS is unavailable here: {exc}"
        if json_:
            print(json.dumps({"ok": False, "error": {"type": "cli_error", "message": message}}))
        else:
            print(message)
        return 1
    if json_:
        print(json.dumps({"timeoutMs": timeout, "domains": ["local."], "count": len(beacons), "beacons": beacons}))
        return 0
    print(style.heading("Gateway Discovery"))
    print(style.muted(f"Found {len(beacons)} gateway(s) · domains: local."))
    if isinstance(wide, str) and wide.strip():
        print(
            style.muted(
                f"Wide-area domain {wide.strip()} is configured but not browsed by this build (unicast DNS-SD)."
            )
        )
    for b in beacons:
        for line in beacon_lines(b, style):
            print(line)
    return 0


__all__ = ["beacon_lines", "browse", "gateway_discover"]
