"""Config family: read, validate, write the config file over RPC (protocol.md §14, design.md §5).

The file is read and written through effects (the host does the I/O off the event loop and
atomically); everything else — hashing, JSON5 parsing, schema validation, merge patches, redaction
of secrets, the executable-path guard — is decided here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator
from typing import Any

import pyjson5
from msgspec import UNSET

from ... import errors as E
from ...config import config_json_schema, schema_lookup, validate_config
from ..effects import Effect, EffectFailed, ReadFile, WriteFile
from ..gateway import Ctx
from ..router import Refused, routes

REDACTED = "__OPENCLAW_REDACTED__"


def redact(value: Any, secrets: set[str]) -> Any:
    """``value`` with every string equal to a secret replaced by the redaction marker."""
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str) and value in secrets:
        return REDACTED
    return value


class _Missing:
    pass


_MISSING = _Missing()


def restore_redacted(value: Any, current: Any, path: str = "") -> Any:
    """``value`` with each redaction marker replaced by what ``current`` holds at the same place.

    A client edits what ``config.get`` gave it (secrets redacted) and writes it back; the secrets
    must survive that round trip, as in the published gateway. A marker with nothing to restore
    is refused: it would otherwise become the secret itself.
    """
    if isinstance(value, dict):
        cur = current if isinstance(current, dict) else {}
        return {k: restore_redacted(v, cur.get(k, _MISSING), f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        cur_list = current if isinstance(current, list) else []
        return [
            restore_redacted(v, cur_list[i] if i < len(cur_list) else _MISSING, f"{path}[{i}]") for i, v in enumerate(value)
        ]
    if value == REDACTED:
        if current is _MISSING or current == REDACTED:
            raise Refused(E.invalid_request(f"invalid config: {path or '<root>'} is redacted and has no stored value to keep"))
        return current
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _secrets(ctx: Ctx) -> set[str]:
    s = ctx.app.secret
    return {v for v in (s.token, s.password) if v}


def config_state(ctx: Ctx) -> Generator[Effect, Any, dict[str, Any]]:
    """The config file as it is now: raw text, parsed value, validity, hash."""
    path = ctx.app.facts.config_path
    try:
        data = yield ReadFile(path)
    except EffectFailed as exc:
        raise Refused(E.unavailable(f"config read failed: {exc.message}")) from None
    if data is None:
        return {"path": path, "exists": False, "raw": None, "parsed": None, "valid": True, "hash": None, "issues": []}
    raw = data.decode("utf-8", errors="replace")
    try:
        parsed = pyjson5.decode(raw) if raw.strip() else {}
        issues: list[Any] = [{"path": i.path, "message": i.message} for i in validate_config(parsed)]
    except Exception as exc:  # noqa: BLE001 - pyjson5 raises several error types
        parsed, issues = None, [{"path": "", "message": str(exc)}]
    return {
        "path": path,
        "exists": True,
        "raw": raw,
        "parsed": parsed,
        "valid": not issues,
        "hash": hashlib.sha256(data).hexdigest(),
        "issues": issues,
    }


def applied_config_hash(ctx: Ctx) -> str:
    return hashlib.sha256(json.dumps(ctx.app.config, sort_keys=True).encode()).hexdigest()


def config_get(ctx: Ctx, params: Any) -> Generator[Effect, Any, Any]:
    st = yield from config_state(ctx)
    secrets = _secrets(ctx)
    raw = st["raw"]
    if raw is not None:
        for value in secrets:
            raw = raw.replace(value, REDACTED)
    parsed = redact(st["parsed"], secrets)
    return {
        "path": st["path"],
        "includedPaths": [],
        "includeProvenance": [],
        "agentRosterIncludeOwned": False,
        "bindingsIncludeOwned": False,
        "exists": st["exists"],
        "raw": raw if st["valid"] else None,
        "parsed": parsed,
        "sourceConfig": parsed,
        "resolved": parsed,
        "valid": st["valid"],
        "runtimeConfig": redact(ctx.app.config, secrets),
        "config": parsed,
        "hash": st["hash"],
        "issues": st["issues"],
        "warnings": [],
        "legacyIssues": [],
        "configRevisionHash": st["hash"],
        "appliedConfigHash": applied_config_hash(ctx),
    }


def config_schema(ctx: Ctx, params: Any) -> Any:
    return config_json_schema()


def config_schema_lookup(ctx: Ctx, p: Any) -> Any:
    found = schema_lookup(p.path)
    if found is None:
        raise Refused(E.invalid_request("config schema path not found"))
    return {"path": p.path, "schema": found}


def _check_base_hash(st: dict[str, Any], base: Any) -> None:
    if not st["exists"]:
        return
    if not isinstance(base, str) or not base:
        raise Refused(E.invalid_request("config base hash required; re-run config.get and retry"))
    if base != st["hash"]:
        raise Refused(E.invalid_request("config changed since last load; re-run config.get and retry"))


def _check_schema(ctx: Ctx, value: dict[str, Any]) -> None:
    issues = validate_config(value)
    if issues:
        raise Refused(E.invalid_request("invalid config: " + "; ".join(str(i) for i in issues)))
    # Security (design.md §5): a remote config write may not point the gateway at programs to run.
    applied = ctx.app.config
    before = ((applied.get("secrets") or {}).get("providers") or {}) if applied else {}
    after = ((value.get("secrets") or {}).get("providers") or {}) if isinstance(value.get("secrets"), dict) else {}
    for alias, provider in after.items() if isinstance(after, dict) else ():
        if isinstance(provider, dict) and provider.get("source") == "exec":
            old = before.get(alias) if isinstance(before, dict) else None
            if not isinstance(old, dict) or (old.get("command"), old.get("args")) != (
                provider.get("command"),
                provider.get("args"),
            ):
                raise Refused(
                    E.invalid_request(
                        f"config writes over RPC may not set executable paths (secrets.providers.{alias}.command); "
                        "edit the file on the gateway host instead"
                    )
                )


def _write(ctx: Ctx, value: dict[str, Any]) -> Generator[Effect, Any, dict[str, Any]]:
    path = ctx.app.facts.config_path
    text = json.dumps(value, indent=2) + "\n"
    try:
        yield WriteFile(path, text.encode(), backup=True)
    except EffectFailed as exc:  # the host logged the cause (once, with its path)
        raise Refused(
            E.unavailable(f"config write failed: {exc.message}; retry when storage is writable", retryable=True)
        ) from None
    digest = hashlib.sha256(text.encode()).hexdigest()
    ctx.publish("config.changed", {"path": path, "hash": digest, "ts": ctx.wall_ms})
    ctx.log("info", "gateway/reload", f"config written by RPC: {path}")
    return {"ok": True, "path": path, "hash": digest, "config": redact(value, _secrets(ctx))}


def _config_write(ctx: Ctx, p: Any, *, patch: bool, apply: bool) -> Generator[Effect, Any, Any]:
    st = yield from config_state(ctx)
    _check_base_hash(st, p.base_hash if p.base_hash is not UNSET else None)
    try:
        incoming = pyjson5.decode(p.raw)
    except Exception as exc:  # noqa: BLE001
        raise Refused(E.invalid_request(f"invalid config: {exc}")) from None
    if not isinstance(incoming, dict):
        raise Refused(E.invalid_request("invalid config: the root must be an object"))
    incoming = restore_redacted(incoming, st["parsed"] if isinstance(st["parsed"], dict) else {})
    if patch:
        if not st["valid"]:
            issues = "; ".join(i["message"] for i in st["issues"])
            raise Refused(E.invalid_request(f"{issues}; fix (openclaw doctor) before patching"))
        current = st["parsed"] or {}
        merged = merge_patch(current, incoming)
        if merged == current:
            return {
                "ok": True,
                "noop": True,
                "changedPaths": [],
                "path": st["path"],
                "config": redact(current, _secrets(ctx)),
            }
        _check_schema(ctx, merged)
        result = yield from _write(ctx, merged)
        result["changedPaths"] = sorted(incoming)
    else:
        _check_schema(ctx, incoming)
        result = yield from _write(ctx, incoming)
    if apply:
        result["restart"] = False
        result["sentinel"] = {"persisted": False, "payload": None}
    return result


def config_set(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    return (yield from _config_write(ctx, p, patch=False, apply=False))


def config_patch(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    return (yield from _config_write(ctx, p, patch=True, apply=True))


def config_apply(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    return (yield from _config_write(ctx, p, patch=False, apply=True))


ROUTES = routes(
    "config",
    [
        ("config.get", config_get),
        ("config.set", config_set),
        ("config.patch", config_patch),
        ("config.apply", config_apply),
        ("config.schema", config_schema),
        ("config.schema.lookup", config_schema_lookup),
    ],
)
