"""``openclaw secrets reload``: re-resolve the gateway's SecretRefs now (RPC ``secrets.reload``)."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

from cyclopts import App, Parameter

secrets_app = App(name="secrets", help="Gateway secrets (SecretRefs).")


@secrets_app.command
def reload(
    *,
    url: Annotated[str | None, Parameter(help="Gateway URL (default: the local gateway).")] = None,
    token: Annotated[str | None, Parameter(help="Gateway token.")] = None,
    password: Annotated[str | None, Parameter(help="Gateway password.")] = None,
    timeout: Annotated[int, Parameter(help="Timeout in ms.")] = 30000,
    json_: Annotated[bool, Parameter(name="--json", help="Print the result as JSON.")] = False,
) -> int:
    """Ask the running gateway to re-resolve its SecretRefs; a changed gateway secret applies at once."""
    from gateway_trio.client import RpcError, call_sync
    from gateway_trio.server import running_port
    from gateway_trio.settings import Paths, load_config

    if url is not None and not (token or password):
        print(
            "gateway url override requires explicit credentials\nFix: pass --token or --password with --url.",
            file=sys.stderr,
        )
        return 1
    if url is None:
        paths = Paths.resolve(None)
        cfg = load_config(paths.config_path) or {}
        auth = ((cfg.get("gateway") or {}).get("auth") or {}) if isinstance(cfg.get("gateway"), dict) else {}
        port = (
            running_port(paths.state_dir)
            or os.environ.get("OPENCLAW_GATEWAY_PORT")
            or (cfg.get("gateway") or {}).get("port")
            or 18789
        )
        url = f"ws://127.0.0.1:{str(port).rsplit(':', 1)[-1]}"
        token = (
            token
            or (auth.get("token") if isinstance(auth.get("token"), str) else None)
            or os.environ.get("OPENCLAW_GATEWAY_TOKEN")
        )
        password = (
            password
            or (auth.get("password") if isinstance(auth.get("password"), str) else None)
            or os.environ.get("OPENCLAW_GATEWAY_PASSWORD")
        )
        runtime = paths.state_dir / "gateway.runtime-token"
        if not (token or password) and runtime.exists():
            token = runtime.read_text().strip()
    try:
        result = call_sync(
            url, "secrets.reload", {}, token=token, password=password, scopes=["operator.admin"], timeout=timeout / 1000
        )
    except RpcError as exc:
        if json_:
            print(json.dumps({"ok": False, "error": {"type": "cli_error", "message": str(exc)}}))
        else:
            print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(result) if json_ else "Secrets reloaded.")
    return 0
