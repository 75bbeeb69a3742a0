"""``openclaw config file|get|set|unset|validate``: read and edit the config file safely.

Edits are validated as a whole before anything is written, and written atomically (temp file,
fsync, rename) with the previous version kept as ``openclaw.json.bak``. A running gateway picks
the change up through its hot reload. Note: the file is rewritten as plain JSON (JSON5 comments in
an edited file are not preserved).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

from cyclopts import App, Parameter

config_app = App(
    name="config",
    help="Read, edit and validate the config file (~/.openclaw/openclaw.json).",
    help_epilogue="Docs: https://docs.openclaw.ai/cli/config",
)

ProfileOpt = Annotated[str | None, Parameter(help="Use profile NAME's config (~/.openclaw-NAME).")]

SECRET_KEYS = ("token", "password")


def _paths(profile: str | None) -> Any:
    from gateway_trio.runtime import Paths

    return Paths.resolve(profile)


class _Fail(Exception):
    """A command failure already reported on stderr; ``code`` is the exit status."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _load(path: Any) -> dict[str, Any]:
    """The config, or a reported refusal (exit 78) saying where the file is broken and how."""
    from gateway_trio.runtime import StartupError, load_config

    try:
        cfg = load_config(path)
    except StartupError as exc:
        print(exc.message.removeprefix("Gateway failed to start: "), file=sys.stderr)
        raise _Fail(exc.exit_code) from None
    return cfg or {}


def _split(dotted: str) -> list[str]:
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        print("A config path looks like gateway.port or logging.level.", file=sys.stderr)
        raise _Fail(2)
    return parts


def _reported(fn: Any) -> Any:
    """Turn a reported failure into the command's exit status."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return fn(*args, **kwargs)
        except _Fail as fail:
            return fail.code

    return wrapper


def _redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if key in SECRET_KEYS and isinstance(value, str):
        return "__OPENCLAW_REDACTED__"
    return value


def _write(path: Any, cfg: dict[str, Any]) -> None:
    from gateway_core.config import validate_config
    from gateway_trio.runtime import atomic_write

    issues = validate_config(cfg)
    if issues:
        print("Refusing to write an invalid config:", file=sys.stderr)
        for issue in issues:
            print(f"  {issue}", file=sys.stderr)
        raise _Fail(1)
    if path.exists():
        atomic_write(path.with_name(path.name + ".bak"), path.read_bytes())
    atomic_write(path, (json.dumps(cfg, indent=2, ensure_ascii=False) + "\n").encode())


@config_app.command(name="file")
def file_(
    *, json_: Annotated[bool, Parameter(name="--json", help='Print {"path": …}.')] = False, profile: ProfileOpt = None
) -> int:
    """Print the path of the active config file."""
    path = _paths(profile).config_path
    print(json.dumps({"path": str(path)}) if json_ else path)
    return 0


@config_app.command
@_reported
def get(
    path: str,
    *,
    json_: Annotated[bool, Parameter(name="--json", help="Print the value as JSON.")] = False,
    show_secrets: Annotated[bool, Parameter(help="Print tokens and passwords instead of redacting them.")] = False,
    profile: ProfileOpt = None,
) -> int:
    """Print the value at PATH (dotted, e.g. gateway.port). Secrets are redacted unless --show-secrets."""
    node: Any = _load(_paths(profile).config_path)
    for part in _split(path):
        if not isinstance(node, dict) or part not in node:
            print(f"Config path not found: {path}", file=sys.stderr)
            return 1
        node = node[part]
    if not show_secrets:
        node = _redact(node, _split(path)[-1])
    if json_ or isinstance(node, (dict, list)):
        print(json.dumps(node, indent=2, ensure_ascii=False))
    else:
        print(node)
    return 0


@config_app.command(name="set")
@_reported
def set_(
    path: str,
    value: str,
    *,
    strict_json: Annotated[bool, Parameter(help="VALUE must be JSON.")] = False,
    profile: ProfileOpt = None,
) -> int:
    """Set PATH to VALUE (parsed as JSON5 when it parses, else taken as a string), validated first."""
    import pyjson5

    try:
        parsed: Any = pyjson5.decode(value)
    except Exception:  # noqa: BLE001 - not JSON5: a plain string
        if strict_json:
            print(f"VALUE is not valid JSON: {value!r}", file=sys.stderr)
            return 2
        parsed = value
    paths = _paths(profile)
    cfg = _load(paths.config_path)
    node = cfg
    parts = _split(path)
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            print(f"Cannot set {path}: {part} is not an object", file=sys.stderr)
            return 1
        node = child
    node[parts[-1]] = parsed
    _write(paths.config_path, cfg)
    print(f"Updated {path} in {paths.config_path}")
    return 0


@config_app.command
@_reported
def unset(path: str, *, profile: ProfileOpt = None) -> int:
    """Remove PATH from the config."""
    paths = _paths(profile)
    cfg = _load(paths.config_path)
    node: Any = cfg
    parts = _split(path)
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or parts[-1] not in node:
        print(f"Config path not found: {path}", file=sys.stderr)
        return 1
    del node[parts[-1]]
    _write(paths.config_path, cfg)
    print(f"Removed {path} from {paths.config_path}")
    return 0


@config_app.command
@_reported
def validate(
    *,
    json_: Annotated[bool, Parameter(name="--json", help="Print {valid, path, issues, warnings}.")] = False,
    profile: ProfileOpt = None,
) -> int:
    """Check the config file against the schema and list every problem (exit 1 when invalid)."""
    from gateway_core.config import validate_config, warnings_for
    from gateway_trio.runtime import ConfigSyntaxError, load_config

    path = _paths(profile).config_path
    try:
        load_config(path)
    except ConfigSyntaxError as exc:
        if json_:
            syntax = {"line": exc.line, "column": exc.column, "problem": exc.problem}
            doc = {"valid": False, "path": str(path), "exists": True, "issues": [exc.location], "syntax": syntax}
            print(json.dumps({**doc, "warnings": []}))
        else:
            print(f"Invalid config at {path}:\n{exc.location}" + (f"\n{exc.excerpt}" if exc.excerpt else ""))
        return 1
    if not path.exists():
        msg = f"No config file at {path} (defaults apply; `gateway run` needs gateway.mode=local)."
        print(
            json.dumps({"valid": True, "path": str(path), "exists": False, "issues": [], "warnings": [msg]})
            if json_
            else msg
        )
        return 0
    cfg = _load(path)
    issues = [str(i) for i in validate_config(cfg)]
    warnings = warnings_for(cfg)
    if json_:
        print(
            json.dumps({"valid": not issues, "path": str(path), "exists": True, "issues": issues, "warnings": warnings})
        )
    else:
        if issues:
            print(f"Invalid config at {path}:")
            for issue in issues:
                print(f"  {issue}")
        else:
            print(f"Config valid: {path}")
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 1 if issues else 0


@config_app.command
@_reported
def plan(
    *,
    url: Annotated[str | None, Parameter(help="Gateway URL (default: the local gateway's port).")] = None,
    token: Annotated[
        str | None, Parameter(help="Gateway token (default: config, then OPENCLAW_GATEWAY_TOKEN).")
    ] = None,
    password: Annotated[str | None, Parameter(help="Gateway password.")] = None,
    json_: Annotated[bool, Parameter(name="--json", help="Print the plan as JSON.")] = False,
    profile: ProfileOpt = None,
) -> int:
    """Compare the file on disk with the running gateway's applied config: per changed key, whether
    it would hot-apply or need a restart, and why."""
    from gateway_core.reload import plan_reload
    from gateway_trio.client import RpcError, call_sync
    from gateway_trio.runtime import reload_mode

    from .target import CliFailure, resolve_target

    paths = _paths(profile)
    disk = _load(paths.config_path)
    try:
        target = resolve_target(url=url, port=None, token=token, password=password, method="config.get")
    except CliFailure as fail:
        return fail.report(json_)
    try:
        answer = call_sync(
            target.url, "config.get", {}, token=target.token, password=target.password, scopes=["operator.read"]
        )
    except RpcError as exc:
        print(f"cannot read the running gateway's config: {exc}", file=sys.stderr)
        return 1
    url = target.url
    applied = answer.get("runtimeConfig") or {}
    result = plan_reload(applied, _redact(disk), reload_mode(disk))
    doc = {
        "path": str(paths.config_path),
        "gateway": url,
        "mode": result.mode,
        "restart": result.restart,
        "changes": [{"path": c.path, "effect": c.effect.value, "reason": c.reason} for c in result.changes],
        "note": "secrets are redacted by the gateway and are not compared",
    }
    if json_:
        print(json.dumps(doc, indent=2))
        return 0
    if not result.changes:
        print(f"No difference between {paths.config_path} and the running gateway's config.")
        return 0
    width = max(len(c.path) for c in result.changes)
    print(f"Reload mode: {result.mode}")
    for c in result.changes:
        label = "restart" if c.effect.value == "restart" else "hot"
        print(f"  {c.path:<{width}}  {label:<7}  {c.reason}")
    if result.mode == "off":
        print("gateway.reload.mode is off: nothing is applied until the gateway restarts or the mode changes.")
    elif result.restart:
        print(f"Applying this restarts the gateway ({', '.join(result.restart_reasons) or 'mode restart'}).")
    elif result.deferred:
        print(f"Not applied in mode {result.mode} until a restart: {', '.join(result.deferred)}.")
    else:
        print("Applies in place; no restart needed.")
    return 0
