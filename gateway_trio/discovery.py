"""mDNS advertising of the running gateway (``_openclaw-gw._tcp``), through python-zeroconf.

Discovery is a convenience, never a reason to fail: every error here (no zeroconf, no multicast
interface, a name conflict, a slow responder) becomes a warning in the log and the gateway serves
on. Zeroconf runs its own asyncio loop in a thread; its blocking calls reach it through
``trio.to_thread`` and are bounded, so a stop never waits on the network for long.

Whether to advertise and what the record says is decided by ``gateway_core.discovery``.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from gateway_core import discovery as rules

from .runtime import FileLog, GatewaySettings

#: Longest a stop waits for the goodbye packets before abandoning the responder thread.
CLOSE_BUDGET_S = 3.0
_LOOPBACK = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Advert:
    """One registration: what to publish (hashable, so an unchanged advert is not re-registered)."""

    instance: str
    hostname: str
    port: int
    addresses: tuple[str, ...]
    txt: tuple[tuple[str, str], ...]


@functools.cache
def in_container() -> bool:
    """Docker/Podman/Kubernetes/Fly, by their sentinel files and PID 1's cgroup (read once per process)."""
    if os.environ.get("FLY_MACHINE_ID", "").strip() and os.environ.get("FLY_APP_NAME", "").strip():
        return True
    if any(Path(p).exists() for p in ("/.dockerenv", "/run/.containerenv", "/var/run/.containerenv")):
        return True
    try:
        cgroup = Path("/proc/1/cgroup").read_text()
    except OSError:
        return False
    import re

    return (
        re.search(r"/docker/|cri-containerd-[0-9a-f]|containerd/[0-9a-f]{64}|/kubepods[/.]|\blxc\b", cgroup) is not None
    )


def _section(config: Mapping[str, Any] | None, *path: str) -> Any:
    node: Any = config or {}
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def decision_for(config: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None) -> rules.Decision:
    """The advertising decision for this config in this environment."""
    env = os.environ if environ is None else environ
    mode = _section(config, "discovery", "mdns", "mode")
    plugin = _section(config, "plugins", "entries", "bonjour", "enabled")
    return rules.decide(
        mode=mode if mode in rules.MDNS_MODES else None,
        disable_env=env.get("OPENCLAW_DISABLE_BONJOUR"),
        plugin_enabled=plugin if isinstance(plugin, bool) else None,
        platform=sys.platform,
        in_container=in_container(),
    )


def host_addresses(bind_hosts: list[str]) -> tuple[str, ...]:
    """Addresses to publish: a specific bind host as is; otherwise the machine's non-loopback
    addresses (IPv4 first, link-local IPv6 left out), or loopback when there are none."""
    specific = [h for h in bind_hosts if h not in ("0.0.0.0", "::", *_LOOPBACK)]
    if specific:
        return tuple(specific)
    try:
        import ifaddr  # zeroconf's own dependency

        found = [ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips]
    except Exception:  # noqa: BLE001 - enumeration is best effort
        found = []
    v4 = [a for a in found if isinstance(a, str) and not a.startswith("127.")]
    v6 = [a[0] for a in found if isinstance(a, tuple) and a[0] != "::1" and not a[0].lower().startswith("fe80")]
    return tuple(dict.fromkeys(v4 + v6)) or ("127.0.0.1",)


def advert_for(
    settings: GatewaySettings,
    port: int,
    environ: Mapping[str, str] | None = None,
    decision: rules.Decision | None = None,
) -> Advert | None:
    """What this gateway publishes, or None when it does not advertise (``decision`` if already made)."""
    env = os.environ if environ is None else environ
    decision = decision or decision_for(settings.config, env)
    if not decision.enabled:
        return None
    hostname = rules.mdns_hostname(socket.gethostname(), env.get("OPENCLAW_MDNS_HOSTNAME"))
    cli = shutil.which("openclaw") or (str(Path(sys.argv[0]).resolve()) if sys.argv and sys.argv[0] else None)
    txt = rules.gateway_txt(
        hostname=hostname,
        gateway_port=port,
        minimal=decision.minimal,
        direct_reachable=any(h not in _LOOPBACK for h in settings.hosts),
        cli_path=cli,
        ssh_port=rules.parse_port(env.get("OPENCLAW_SSH_PORT")),
    )
    return Advert(
        instance=rules.instance_name(hostname),
        hostname=hostname,
        port=port,
        addresses=host_addresses(settings.hosts),
        txt=tuple(txt.items()),
    )


class Advertiser:
    """Keeps at most one registration in line with :meth:`want`; runs until cancelled."""

    def __init__(self, log: FileLog) -> None:
        self.log = log
        self._desired: Advert | None = None
        self._current: Advert | None = None
        self._wake = trio.Event()
        self._zc: Any = None
        self._info: Any = None
        #: The name actually registered (after any conflict rename), for tests and status.
        self.registered_name: str | None = None

    def want(self, settings: GatewaySettings, port: int) -> None:
        """Advertise ``settings`` on ``port`` (or stop advertising when it says so)."""
        try:
            decision = decision_for(settings.config)
            self._desired = advert_for(settings, port, decision=decision)
            if self._desired is None:
                self.log.debug("discovery", f"bonjour: not advertising ({decision.why})")
        except Exception as exc:  # noqa: BLE001 - discovery never fails the gateway
            self.log.warn("discovery", f"bonjour: not advertising: {exc}")
            self._desired = None
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                desired = self._desired
                if desired == self._current:
                    continue
                if self._current is not None:
                    await trio.to_thread.run_sync(self._unregister, abandon_on_cancel=True)
                if desired is not None:
                    await trio.to_thread.run_sync(self._register, desired, abandon_on_cancel=True)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_BUDGET_S):
                await trio.to_thread.run_sync(self._close, abandon_on_cancel=True)

    # ---- blocking parts, run in a worker thread -----------------------------------------------

    def _register(self, advert: Advert) -> None:
        try:
            from zeroconf import ServiceInfo, Zeroconf

            if self._zc is None:
                self._zc = Zeroconf()
            info = ServiceInfo(
                rules.SERVICE_TYPE,
                f"{advert.instance}.{rules.SERVICE_TYPE}",
                port=advert.port,
                properties=dict(advert.txt),
                server=f"{advert.hostname}.local.",
                parsed_addresses=list(advert.addresses),
            )
            self._zc.register_service(info, allow_name_change=True)
        except Exception as exc:  # noqa: BLE001 - discovery never fails the gateway
            self.log.warn("discovery", f"bonjour: advertising failed: {type(exc).__name__}: {exc}")
            self._current = advert  # do not retry the same advert in a loop
            return
        self._info, self._current = info, advert
        self.registered_name = info.name
        if info.name != f"{advert.instance}.{rules.SERVICE_TYPE}":
            self.log.warn("discovery", f"bonjour: gateway name conflict resolved; newName={info.name!r}")
        self.log.info(
            "discovery",
            f"bonjour: advertised gateway fqdn={info.name} host={advert.hostname}.local. port={advert.port}",
        )

    def _unregister(self) -> None:
        info, self._info, self._current, self.registered_name = self._info, None, None, None
        if info is not None and self._zc is not None:
            try:
                self._zc.unregister_service(info)
            except Exception as exc:  # noqa: BLE001
                self.log.warn("discovery", f"bonjour: withdrawing the advert failed: {exc}")

    def _close(self) -> None:
        self._unregister()
        zc, self._zc = self._zc, None
        if zc is not None:
            try:
                zc.close()
            except Exception:  # noqa: BLE001
                pass


__all__ = ["Advert", "Advertiser", "advert_for", "decision_for", "host_addresses", "in_container"]
