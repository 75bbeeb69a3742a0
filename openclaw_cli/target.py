"""Which gateway a CLI command talks to, with which credentials (runtime-cli.md §3.2, §10.0).

Target: ``--url`` → ``OPENCLAW_GATEWAY_URL`` → ``gateway.remote.url`` when ``gateway.mode=remote``
→ ``ws://127.0.0.1:<port>`` (``--port``, the running gateway's port from its lock file,
``OPENCLAW_GATEWAY_PORT``, ``gateway.port``, 18789), shown as "local loopback". An explicit
``--url`` never reuses configured or environment credentials.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from gateway_trio.runtime import DEFAULT_PORT, Paths, StartupError, load_config, running_port

NO_CREDENTIALS_WITH_URL = (
    "gateway url override requires explicit credentials\n"
    "Fix: pass --token or --password with --url (or gatewayToken in tools).\n"
    "For the default local or SSH-tunneled Gateway, remove --url to use the configured target.\n"
    "Config: {config}"
)
NO_CREDENTIALS = (
    "gateway {method} requires credentials before opening a websocket\n"
    "Fix: configure gateway.auth token/password, pair this device, or pass --token/--password.\n"
    "Config: {config}"
)


class CliFailure(Exception):
    """A reported CLI failure: ``text`` for humans, ``envelope`` for ``--json``; exit ``code``."""

    def __init__(self, text: str, envelope: dict[str, Any], code: int = 1) -> None:
        super().__init__(text)
        self.text = text
        self.envelope = envelope
        self.code = code

    def report(self, json_mode: bool) -> int:
        if json_mode:
            print(json.dumps(self.envelope))
        else:
            print(self.text, file=sys.stderr)
        return self.code


@dataclass
class Target:
    url: str
    source: str  # "cli --url" | "env OPENCLAW_GATEWAY_URL" | "config gateway.remote.url" | "local loopback"
    token: str | None
    password: str | None
    config_path: str
    bind: str
    port: int | None

    def details(self) -> str:
        return f"Gateway target: {self.url}\nSource: {self.source}\nConfig: {self.config_path}\nBind: {self.bind}"


def str_or_none(value: Any) -> str | None:
    """``value`` when it is a non-empty string, else None (config values the operator may leave blank)."""
    return value if isinstance(value, str) and value else None


def read_config(*, strict: bool = False) -> tuple[Paths, dict[str, Any]]:
    """The CLI's paths and config (empty when missing; when unreadable too, unless ``strict``:
    then a :class:`CliFailure` (exit 78) says where the file is broken, so a command does not
    blame missing credentials for a config it could not read)."""
    paths = Paths.resolve(None)
    try:
        return paths, load_config(paths.config_path) or {}
    except StartupError as exc:
        if not strict:
            return paths, {}
        text = exc.message.removeprefix("Gateway failed to start: ")
        raise CliFailure(
            text, {"ok": False, "error": {"type": "config_invalid", "message": exc.summary}}, exc.exit_code
        ) from None


def section(cfg: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``cfg[k1][k2]…`` when every step is an object, else ``{}``."""
    node: Any = cfg
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def local_port_and_source(paths: Paths, gateway: dict[str, Any]) -> tuple[int, str]:
    """The local gateway's port and where it comes from: ``OPENCLAW_GATEWAY_PORT`` or
    ``gateway.port`` ("env/config"), the named profile's hashed port ("profile"), else 18789
    ("default"); the running gateway's port (its lock file) wins when it differs ("running gateway")."""
    from gateway_trio.runtime import fnv1a32

    env_port = os.environ.get("OPENCLAW_GATEWAY_PORT", "").rsplit(":", 1)[-1].strip("[]")
    cfg_port = gateway.get("port")
    if env_port.isdigit() and 1 <= int(env_port) <= 65535:
        configured = int(env_port), "env/config"
    elif isinstance(cfg_port, int) and not isinstance(cfg_port, bool) and 1 <= cfg_port <= 65535:
        configured = cfg_port, "env/config"
    elif paths.profile:
        configured = 20000 + fnv1a32(paths.profile) % 40000, "profile"
    else:
        configured = DEFAULT_PORT, "default"
    running = running_port(paths.state_dir)
    return (running, "running gateway") if running and running != configured[0] else configured


def local_port(paths: Paths, gateway: dict[str, Any]) -> int:
    """The local gateway's port (see :func:`local_port_and_source`)."""
    return local_port_and_source(paths, gateway)[0]


def resolve_target(
    *, url: str | None, port: int | None, token: str | None, password: str | None, method: str
) -> Target:
    """Resolve the target and credentials, or raise :class:`CliFailure` with the published texts."""
    if url and port:
        raise CliFailure(
            "--url cannot be combined with --port",
            {"ok": False, "error": {"type": "cli_error", "message": "--url cannot be combined with --port"}},
            2,
        )
    paths, cfg = read_config(strict=not url)
    gateway = section(cfg, "gateway")
    auth = section(gateway, "auth")
    remote = section(gateway, "remote")
    bind = gateway.get("bind") or "loopback"
    config_path = str(paths.config_path)
    if url:
        if not (token or password):
            message = NO_CREDENTIALS_WITH_URL.format(config=config_path)
            raise CliFailure(message, {"ok": False, "error": {"type": "cli_error", "message": message}})
        return Target(url, "cli --url", token, password, config_path, f"Bind: {bind}", None)
    env_url = os.environ.get("OPENCLAW_GATEWAY_URL")
    if env_url and not port:
        return Target(
            env_url,
            "env OPENCLAW_GATEWAY_URL",
            token or os.environ.get("OPENCLAW_GATEWAY_TOKEN"),
            password or os.environ.get("OPENCLAW_GATEWAY_PASSWORD"),
            config_path,
            bind,
            None,
        )
    if gateway.get("mode") == "remote" and str_or_none(remote.get("url")) and not port:
        return Target(
            remote["url"],
            "config gateway.remote.url",
            token or str_or_none(remote.get("token")) or os.environ.get("OPENCLAW_GATEWAY_TOKEN") or str_or_none(auth.get("token")),
            password
            or os.environ.get("OPENCLAW_GATEWAY_PASSWORD")
            or str_or_none(remote.get("password"))
            or str_or_none(auth.get("password")),
            config_path,
            bind,
            None,
        )
    resolved = port or local_port(paths, gateway)
    token = token or str_or_none(auth.get("token")) or os.environ.get("OPENCLAW_GATEWAY_TOKEN") or str_or_none(remote.get("token"))
    password = (
        password
        or str_or_none(auth.get("password"))
        or os.environ.get("OPENCLAW_GATEWAY_PASSWORD")
        or str_or_none(remote.get("password"))
    )
    runtime = paths.state_dir / "gateway.runtime-token"
    if not (token or password) and runtime.exists():
        token = runtime.read_text().strip() or None
    if not (token or password):
        message = NO_CREDENTIALS.format(method=method, config=config_path)
        raise CliFailure(message, {"ok": False, "error": {"type": "gateway_credentials_required", "message": message}})
    return Target(f"ws://127.0.0.1:{resolved}", "local loopback", token, password, config_path, bind, resolved)


def transport_failure(target: Target, reason: str, kind: str = "closed") -> CliFailure:
    """The published "Gateway not reachable" text and JSON envelope."""
    short = f"Gateway not reachable at {target.url}."
    text = f"{short}\nStart it with `openclaw gateway run` or check `openclaw gateway status`.\n{target.details()}"
    envelope = {
        "ok": False,
        "error": {"type": "gateway_transport_error", "kind": kind, "message": short, "reason": reason},
        "gateway": {"url": target.url, "urlSource": target.source, "bindDetail": f"Bind: {target.bind}"},
    }
    return CliFailure(text, envelope)


def request_failure(prefix: str, code: str | None, message: str) -> CliFailure:
    envelope = {
        "ok": False,
        "error": {"type": "gateway_request_error", "code": code, "message": message, "retryable": False},
    }
    return CliFailure(f"{prefix}{message}", envelope)
