"""``openclaw gateway`` / ``openclaw gateway run``: the gateway in the foreground (runtime-cli.md §10.1)."""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from cyclopts import App, Parameter

from ._lazy import lazy_command

gateway_app = App(
    name="gateway",
    help="Run the gateway in the foreground (bare `openclaw gateway` is `gateway run`), and inspect, call or "
    "manage it as a service.",
    help_epilogue="Docs: https://docs.openclaw.ai/cli/gateway",
)


def _keep_runtime_token(resolve_settings: Any, first: Any) -> Any:
    """Re-resolution for reloads; a generated runtime token stays the same for the process."""

    def again() -> Any:
        new = resolve_settings()
        if new.runtime_token and first.runtime_token:
            new.token = first.token
        return new

    return again


def _log_refusal(message: str, paths: Any) -> None:
    """A start refusal also goes to the rolling file log (a supervised gateway has no terminal), so
    ``gateway status`` can show it as the last gateway error. Best effort."""
    from gateway_trio.runtime import FileLog, StartupError, load_config

    target = None
    try:
        cfg = load_config(paths.config_path) if paths is not None else None
        configured = ((cfg or {}).get("logging") or {}).get("file")
        target = Path(configured).expanduser() if isinstance(configured, str) and configured else None
    except (StartupError, AttributeError, OSError):
        pass
    try:
        log = FileLog(
            target,
            profile=getattr(paths, "profile", None),
            console_enabled=False,
            state_dir=getattr(paths, "state_dir", None),
        )
        log.error("gateway", StartupError(message).summary)
        log.close()
    except OSError:
        pass


@gateway_app.default
@gateway_app.command(name="run")
def run(
    *,
    port: Annotated[
        int | None, Parameter(help="WS/HTTP port (default: OPENCLAW_GATEWAY_PORT, gateway.port, 18789).")
    ] = None,
    bind: Annotated[
        str | None, Parameter(help="loopback|lan|tailnet|auto|custom (default: gateway.bind, else loopback).")
    ] = None,
    token: Annotated[
        str | None, Parameter(help="Shared token for connect.params.auth.token (default OPENCLAW_GATEWAY_TOKEN).")
    ] = None,
    auth: Annotated[str | None, Parameter(help="none|token|password|trusted-proxy")] = None,
    password: Annotated[str | None, Parameter(help="Shared password (prefer --password-file).")] = None,
    password_file: Annotated[Path | None, Parameter(help="Read the shared password from this file.")] = None,
    allow_unconfigured: Annotated[bool, Parameter(help="Skip the gateway.mode guard; does not repair config.")] = False,
    dev: Annotated[bool, Parameter(help="Dev profile defaults (port 19001) and no config required.")] = False,
    reset: Annotated[bool, Parameter(help="Reset dev config and state; requires --dev.")] = False,
    force: Annotated[bool, Parameter(help="Stop whatever listens on the port first.")] = False,
    verbose: Annotated[bool, Parameter(help="Verbose console (debug) and all WebSocket traffic.")] = False,
    ws_log: Annotated[
        Literal["auto", "full", "compact"],
        Parameter(
            help="WebSocket log: auto = only failed or slow (>= 50 ms) answers (every pair with --verbose); "
            "compact = every request/response pair on one line with its duration, and events; "
            "full = every frame, one line each, with conn= and id=."
        ),
    ] = "auto",
    compact: Annotated[bool, Parameter(help="Alias for --ws-log compact.")] = False,
    raw_stream: Annotated[bool, Parameter(help="Log raw model stream events to JSONL.")] = False,
    raw_stream_path: Annotated[Path | None, Parameter(help="Where --raw-stream writes.")] = None,
    profile: Annotated[str | None, Parameter(help="Use profile NAME (its own state dir, config and port).")] = None,
) -> int:
    """Run the gateway in the foreground until SIGTERM/SIGINT (exit 0); SIGUSR1/SIGUSR2 restart it in place.

    Exit codes: 0 clean stop; 2 a usage error (an invalid --port, --bind, --auth or --ws-log value,
    --reset without --dev); 78 a configuration refusal (missing or invalid config, gateway.mode not
    local, an invalid gateway.port or gateway.bind in the config, binding beyond loopback without
    auth); 1 a runtime failure (another gateway holds the state dir or the port, a drain overrun).
    """
    import trio

    from gateway_trio.runtime import (
        FileLog,
        Paths,
        StartupError,
        acquire_state_lock,
        new_token,
        new_uuid,
        release_state_lock,
        resolve,
    )
    from gateway_trio.server import run_gateway

    if reset and not dev:
        print("Use --reset with --dev.", file=sys.stderr)
        return 2
    if raw_stream or raw_stream_path is not None:  # as published: the flags set the environment the gateway reads
        os.environ["OPENCLAW_RAW_STREAM"] = "1"
        if raw_stream_path is not None:
            os.environ["OPENCLAW_RAW_STREAM_PATH"] = str(raw_stream_path.expanduser().resolve())
    paths = None
    lock_fd = None
    try:
        paths = Paths.resolve(profile or ("dev" if dev else None))

        def resolve_settings() -> Any:
            return resolve(
                paths=paths,
                port=port,
                bind=bind,
                auth=auth,
                token=token,
                password=password,
                password_file=password_file,
                allow_unconfigured=allow_unconfigured,
                dev=dev,
                verbose=verbose,
                ws_log="compact" if compact else ws_log,
                new_token=new_token,
            )

        # Read-only checks first, then the lock, then writes: a refused start (bad config, another
        # gateway on this state dir) changes nothing in the state dir or the config.
        settings = resolve_settings()
        if force:
            from gateway_trio.runtime import free_port

            free_port(settings.port)
        lock_fd = acquire_state_lock(paths.state_dir)
        if dev:
            from gateway_trio.runtime import ensure_dev

            for line in ensure_dev(paths, reset=reset):
                print(line)
            settings = resolve_settings()
    except StartupError as exc:
        if lock_fd is not None and paths is not None:
            release_state_lock(lock_fd, paths.state_dir)
        print(exc.message, file=sys.stderr)
        _log_refusal(exc.message, paths)
        return exc.exit_code
    assert paths is not None
    log = FileLog(
        settings.log_file,
        profile=paths.profile,
        level=settings.log_level,
        console_level=settings.console_level,
        max_file_bytes=settings.max_file_bytes,
        state_dir=paths.state_dir,
        boot_id=new_uuid(),
    )
    try:
        for line in settings.warnings:
            log.warn("gateway", line)
        if settings.runtime_token and settings.token:
            from gateway_trio.runtime import atomic_write

            token_file = paths.state_dir / "gateway.runtime-token"
            atomic_write(token_file, (settings.token + "\n").encode(), mode=0o600)
            log.info("gateway", f"runtime token for this process written to {token_file} (mode 0600)")
        return trio.run(
            partial(
                run_gateway,
                settings,
                log,
                resolve_again=_keep_runtime_token(resolve_settings, settings),
                lock_fd=lock_fd,
            )
        )
    except StartupError as exc:
        log.error("gateway", exc.summary)
        print(exc.message, file=sys.stderr)
        return exc.exit_code
    finally:
        log.close()
        release_state_lock(lock_fd, paths.state_dir)


#: The service commands (also under ``openclaw daemon``), loaded only when run: (name, one line).
SERVICE_COMMANDS = [
    ("install", "Install the gateway as a service (systemd user unit, LaunchAgent or Scheduled Task) and start it."),
    ("start", "Start the installed gateway service (reports the pid when it already runs)."),
    ("stop", "Stop the gateway service (says so when none is installed)."),
    ("restart", "Restart the gateway service through its manager, then check its health."),
    ("uninstall", "Disable, stop and remove the gateway service."),
]
#: The other subcommands: (import path, name, one line).
GATEWAY_COMMANDS = [
    ("openclaw_cli.rpc_cmds:gateway_status", "status", "Service, config, port and connectivity of the gateway (--deep, --require-rpc)."),
    ("openclaw_cli.rpc_cmds:gateway_probe", "probe", "Probe every gateway this CLI can reach, local ones included; warn when there are several."),
    ("openclaw_cli.rpc_cmds:gateway_health", "health", "Call health on the gateway and print OK (--json: the snapshot)."),
    ("openclaw_cli.rpc_cmds:gateway_call", "call", "Call any gateway method with --params JSON and print its payload."),
    ("openclaw_cli.discover_cmd:gateway_discover", "discover", "Find gateways on the local network via mDNS/DNS-SD."),
]  # fmt: skip
for _path, _name, _help in GATEWAY_COMMANDS:
    lazy_command(gateway_app, _path, _name, _help)
for _name, _help in SERVICE_COMMANDS:
    lazy_command(gateway_app, f"openclaw_cli.service:{_name}", _name, _help)

daemon_app = App(
    name="daemon",
    help="The gateway service (alias of `openclaw gateway install|start|stop|restart|uninstall|status`).",
    help_epilogue="Docs: https://docs.openclaw.ai/cli/daemon",
)
for _name, _help in SERVICE_COMMANDS:
    lazy_command(daemon_app, f"openclaw_cli.service:{_name}", _name, _help)
lazy_command(daemon_app, "openclaw_cli.rpc_cmds:gateway_status", "status", GATEWAY_COMMANDS[0][2])
