"""``openclaw setup``: write a baseline local config, workspace and session directories (§10.14)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

from cyclopts import Parameter


def setup(
    *,
    baseline: Annotated[bool, Parameter(help="Write the baseline config and directories without questions.")] = False,
    non_interactive: Annotated[bool, Parameter(help="Never prompt (same as --baseline here).")] = False,
    workspace: Annotated[Path | None, Parameter(help="Agent workspace (default <state>/workspace).")] = None,
    gateway_port: Annotated[int | None, Parameter(help="gateway.port to write.")] = None,
    gateway_bind: Annotated[
        Literal["loopback", "lan", "tailnet", "auto", "custom"] | None, Parameter(help="gateway.bind to write.")
    ] = None,
    gateway_auth: Annotated[Literal["token", "password"], Parameter(help="Auth mode to configure.")] = "token",
    gateway_token: Annotated[str | None, Parameter(help="Token to use (default: a new random one).")] = None,
    gateway_password: Annotated[str | None, Parameter(help="Password (with --gateway-auth password).")] = None,
    reset: Annotated[bool, Parameter(help="Replace an existing config instead of keeping it.")] = False,
    json_: Annotated[bool, Parameter(name="--json", help="Machine-readable result.")] = False,
) -> int:
    """Prepare a local gateway: config (gateway.mode=local, token auth), workspace, sessions dir.

    An existing config is kept (only missing keys are added) unless --reset. Honours --profile/--dev.
    """
    from gateway_core.config import validate_config
    from gateway_trio import _runtime
    from gateway_trio.settings import Paths, load_config
    from gateway_trio.state import atomic_write

    if not (baseline or non_interactive or sys.stdin.isatty()):
        message = "Onboarding needs an interactive TTY. Use `openclaw setup --baseline` (or --non-interactive) for automation."
        print(json.dumps({"ok": False, "phase": "options", "message": message}) if json_ else message, file=sys.stderr)
        return 1
    paths = Paths.resolve(None)
    ws = (workspace or paths.state_dir / "workspace").expanduser()
    sessions = paths.state_dir / "agents" / "main" / "sessions"
    existing = None if reset else load_config(paths.config_path)
    cfg = existing or {}
    gateway = cfg.setdefault("gateway", {})
    gateway.setdefault("mode", "local")
    if gateway_port is not None:
        gateway["port"] = gateway_port
    if gateway_bind is not None:
        gateway["bind"] = gateway_bind
    auth = gateway.setdefault("auth", {})
    auth.setdefault("mode", gateway_auth)
    if auth["mode"] == "token" and not auth.get("token"):
        auth["token"] = gateway_token or _runtime.new_token(24)
    if auth["mode"] == "password" and not auth.get("password"):
        if not gateway_password:
            print("--gateway-auth password needs --gateway-password.", file=sys.stderr)
            return 1
        auth["password"] = gateway_password
    cfg.setdefault("agents", {}).setdefault("defaults", {}).setdefault("workspace", str(ws))
    issues = validate_config(cfg)
    if issues:
        print("The resulting config would be invalid:", file=sys.stderr)
        for issue in issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    atomic_write(paths.config_path, (json.dumps(cfg, indent=2) + "\n").encode())
    ws.mkdir(parents=True, exist_ok=True)
    bootstrap = ws / "BOOTSTRAP.md"
    if not bootstrap.exists():
        bootstrap.write_text("# Bootstrap\n\nThis workspace was prepared by `openclaw setup`.\n", encoding="utf-8")
    sessions.mkdir(parents=True, exist_ok=True)
    if json_:
        print(
            json.dumps({"ok": True, "config": str(paths.config_path), "workspace": str(ws), "sessions": str(sessions)})
        )
        return 0
    print(f"Wrote {paths.config_path}")
    print(f"Workspace OK: {ws}")
    print(f"Sessions OK: {sessions}")
    print()
    print("Setup complete: config, workspace, and session directories are ready.")
    print("Next: openclaw gateway run")
    return 0
