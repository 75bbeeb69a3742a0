"""``openclaw logs``: tail the gateway's file log over RPC ``logs.tail`` (runtime-cli.md §9.4)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter

from .rpc_cmds import Json, Password, Port, Token, Url
from .target import CliFailure, resolve_target

RETRIES = 8


def _format(line: str, utc: bool) -> tuple[str, dict[str, Any] | None]:
    """One JSONL record → ``<time> <level> <subsystem> <message>`` (raw text if it is not a record)."""
    try:
        rec = json.loads(line)
        meta = rec.get("_meta") or {}
        level = str(meta.get("logLevelName", "info")).lower()
        name = meta.get("name") or rec.get("0") or "{}"
        subsystem = (
            json.loads(name).get("subsystem", "") if isinstance(name, str) and name.startswith("{") else str(name)
        )
        when = rec.get("time") or meta.get("date") or ""
        if utc and meta.get("date"):
            when = meta["date"]
        message = rec.get("message") or rec.get("1") or ""
        return f"{when} {level} {subsystem} {message}", {
            "time": when,
            "level": level,
            "subsystem": subsystem,
            "message": message,
        }
    except (json.JSONDecodeError, AttributeError, TypeError):
        return line, None


def logs(
    *,
    follow: Annotated[bool, Parameter(help="Keep polling for new lines.")] = False,
    limit: Annotated[int, Parameter(help="Lines per read.")] = 200,
    max_bytes: Annotated[int, Parameter(help="Bytes per read.")] = 250_000,
    interval: Annotated[int, Parameter(help="Poll interval in ms (--follow).")] = 1000,
    plain: Annotated[bool, Parameter(help="No styling.")] = False,
    utc: Annotated[bool, Parameter(help="Show times in UTC.")] = False,
    url: Url = None,
    port: Port = None,
    token: Token = None,
    password: Password = None,
    timeout: Annotated[int, Parameter(help="Timeout in ms per read.")] = 30000,
    json_: Json = False,
) -> int:
    """Print the gateway's log (``Log file: …`` then one line per record); ``--follow`` streams new ones."""
    from gateway_trio.client import RpcError, call_sync

    for flag, value in (("--limit", limit), ("--max-bytes", max_bytes), ("--interval", interval)):
        if value <= 0:
            return CliFailure(
                f"{flag} must be a positive integer.",
                {"ok": False, "error": {"type": "cli_error", "message": f"{flag} must be a positive integer."}},
                2,
            ).report(json_)
    try:
        target = resolve_target(url=url, port=port, token=token, password=password, method="logs.tail")
    except CliFailure as fail:
        # No credentials and no gateway listening: the gateway is down, so the file is the log.
        if url or follow or fail.envelope["error"].get("type") != "gateway_credentials_required":
            return fail.report(json_)
        if _local_gateway_listening(port):
            return fail.report(json_)
        return _print_local(limit, max_bytes, utc, json_)
    cursor: int | None = None
    file_shown: str | None = None
    failures = 0
    try:
        while True:
            params: dict[str, Any] = {"limit": min(limit, 5000), "maxBytes": min(max_bytes, 1_000_000)}
            if cursor is not None:
                params["cursor"] = cursor
            try:
                out = call_sync(
                    target.url,
                    "logs.tail",
                    params,
                    token=target.token,
                    password=target.password,
                    scopes=["operator.read"],
                    timeout=timeout / 1000,
                )
            except RpcError as exc:
                if exc.kind == "transport" and not follow and cursor is None and target.source == "local loopback":
                    return _print_local(limit, max_bytes, utc, json_)
                if exc.kind != "transport" or not follow or failures >= RETRIES:
                    print(str(exc), file=sys.stderr)
                    if exc.kind == "transport":
                        print(target.details(), file=sys.stderr)
                    return 1
                failures += 1
                delay = min(30.0, 2 ** (failures - 1))
                notice = f"[logs] gateway disconnected, reconnecting in {delay:.0f}s..."
                print(json.dumps({"type": "notice", "message": notice}) if json_ else notice, file=sys.stderr)
                time.sleep(delay)
                continue
            if failures:
                print(
                    json.dumps({"type": "notice", "message": "[logs] gateway reconnected"})
                    if json_
                    else "[logs] gateway reconnected",
                    file=sys.stderr,
                )
                failures = 0
            if out.get("file") != file_shown:
                file_shown = out.get("file")
                if json_:
                    print(
                        json.dumps(
                            {
                                "type": "meta",
                                "file": file_shown,
                                "sourceKind": "file",
                                "cursor": out.get("cursor"),
                                "size": out.get("size"),
                            }
                        )
                    )
                else:
                    print(f"Log file: {file_shown}")
            notices = []
            if out.get("reset") and cursor is not None and not out.get("skippedBytes"):
                notices.append("Log cursor reset (file rotated).")
            if out.get("skippedBytes"):
                notices.append(f"Log cursor re-anchored (skipped {out['skippedBytes']} bytes).")
            elif out.get("truncated") and cursor is None:
                notices.append("Log tail truncated (increase --limit or --max-bytes).")
            for notice in notices:
                print(
                    json.dumps({"type": "notice", "message": notice}) if json_ else notice,
                    file=sys.stderr if not json_ else sys.stdout,
                )
            _print_lines(out.get("lines") or [], utc, json_)
            cursor = out.get("cursor")
            if not follow:
                return 0
            time.sleep(interval / 1000)
    except KeyboardInterrupt:
        return 0


def _print_lines(lines: list[str], utc: bool, json_: bool) -> None:
    for line in lines:
        text, rec = _format(line, utc)
        if json_:
            print(json.dumps({"type": "log", **rec, "raw": line} if rec else {"type": "raw", "raw": line}))
        else:
            print(text)
    sys.stdout.flush()


def _local_gateway_listening(port: int | None) -> bool:
    """Whether something listens on the local gateway's port (then it is up, not down)."""
    from gateway_trio.runtime import listening_addresses

    from .target import local_port, read_config, section

    paths, cfg = read_config()
    return bool(listening_addresses(port or local_port(paths, section(cfg, "gateway"))))


def local_log_file(paths: Any, cfg: dict[str, Any]) -> Path:
    """The gateway's file log as configured: ``logging.file``, else today's rolling file for the
    profile, else (after midnight, before the first record) the newest file of that family."""
    from gateway_trio.runtime import rolling_log_path

    configured = (cfg.get("logging") or {}).get("file") if isinstance(cfg.get("logging"), dict) else None
    if isinstance(configured, str) and configured:
        return Path(configured).expanduser()
    today = rolling_log_path(paths.profile)
    if today.exists():
        return today
    family = today.name[: -len("YYYY-MM-DD.log")]
    older = sorted(
        (f for f in today.parent.glob(f"{family}????-??-??.log") if f.name[len(family) :][:1].isdigit()),
        key=lambda f: f.name,
    )
    return older[-1] if older else today


def _print_local(limit: int, max_bytes: int, utc: bool, json_: bool) -> int:
    """``openclaw logs`` with the gateway down: read its file directly (this state dir's records
    only) and say so on stderr (runtime-cli.md §9.4 fallback)."""
    from gateway_trio.runtime import record_filter, tail

    from .target import read_config

    paths, cfg = read_config()
    notice = "Local Gateway RPC unavailable; reading configured file log instead."
    print(json.dumps({"type": "notice", "message": notice}) if json_ else notice, file=sys.stderr)
    path = local_log_file(paths, cfg)
    try:
        out = tail(
            path,
            cursor=None,
            limit=min(limit, 5000),
            max_bytes=min(max_bytes, 1_000_000),
            keep=record_filter(state_dir=paths.state_dir),
        )
    except OSError as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    if json_:
        meta = {"type": "meta", "file": str(path), "sourceKind": "file", "localFallback": True}
        print(json.dumps({**meta, "cursor": out["cursor"], "size": out["size"]}))
    else:
        print(f"Log file: {path}")
    _print_lines(out["lines"], utc, json_)
    return 0


__all__ = ["local_log_file", "logs"]
