"""``openclaw secrets reload``: re-resolve the gateway's SecretRefs now (RPC ``secrets.reload``)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

from cyclopts import App, Parameter

secrets_app = App(
    name="secrets", help="Gateway secrets (SecretRefs).", help_epilogue="Docs: https://docs.openclaw.ai/cli/secrets"
)


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

    from .target import CliFailure, resolve_target

    try:
        target = resolve_target(url=url, port=None, token=token, password=password, method="secrets.reload")
    except CliFailure as fail:
        return fail.report(json_)
    try:
        result = call_sync(
            target.url,
            "secrets.reload",
            {},
            token=target.token,
            password=target.password,
            scopes=["operator.admin"],
            timeout=timeout / 1000,
        )
    except RpcError as exc:
        if json_:
            print(json.dumps({"ok": False, "error": {"type": "cli_error", "message": str(exc)}}))
        else:
            print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(result) if json_ else "Secrets reloaded.")
    return 0
