"""``openclaw agent``, ``openclaw sessions`` and ``openclaw models list``: agent turns and their state.

``agent`` runs one turn through the gateway's ``agent`` method (two-stage: accepted, then the final)
as the published CLI does — ``agents.list`` first when no selector names the agent — waits for the
final, and prints the reply (streamed as it arrives when stdout is a terminal) or, with ``--json``,
the final payload. ``sessions`` lists the gateway's sessions (``sessions.list``), or, when the gateway
is down, reads the local session store directly and says so. ``models list`` shows the catalog.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter

from .rpc_cmds import Json, Password, Port, Token, Url
from .target import CliFailure, Target, resolve_target, transport_failure

MAX_MESSAGE_FILE = 4 * 1024 * 1024
DEFAULT_TIMEOUT_S = 600


def _cli_error(message: str, **extra: Any) -> CliFailure:
    envelope: dict[str, Any] = {"ok": False, "error": {"type": "cli_error", "message": message}, **extra}
    return CliFailure(
        "\n".join(
            f"[openclaw] {line}"
            for line in (
                "The CLI command failed.",
                f"Reason: {message}",
                "Debug: set OPENCLAW_DEBUG=1 to include the stack trace.",
                "Try: openclaw doctor",
                "Help: openclaw --help",
            )
        ),
        envelope,
    )


def _read_message(message: str | None, message_file: Path | None) -> str:
    if (message is None) == (message_file is None):
        raise _cli_error("Pass exactly one of --message or --message-file.")
    if message_file is not None:
        raw = sys.stdin.buffer.read(MAX_MESSAGE_FILE + 1) if str(message_file) == "-" else None
        if raw is None:
            try:
                if message_file.stat().st_size > MAX_MESSAGE_FILE:
                    raise _cli_error(f"--message-file is larger than 4 MiB: {message_file}")
                raw = message_file.read_bytes()
            except OSError as exc:
                raise _cli_error(f"cannot read --message-file {message_file}: {exc.strerror}") from None
        if len(raw) > MAX_MESSAGE_FILE:
            raise _cli_error("--message-file is larger than 4 MiB")
        try:
            message = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            raise _cli_error(f"--message-file is not valid UTF-8: {message_file}") from None
    assert message is not None
    if not message.strip():
        raise _cli_error("--message is empty")
    return message


def _exchange(target: Target, calls: list[tuple[str, Any]], *, scopes: list[str], timeout_s: float, **kw: Any) -> list[Any]:
    import trio

    from gateway_trio.client import RpcError, exchange

    try:
        _, results = trio.run(
            lambda: exchange(
                target.url, calls, token=target.token, password=target.password, scopes=scopes,
                timeout=timeout_s, **kw,
            )
        )
    except RpcError as exc:
        if exc.kind == "transport":
            raise transport_failure(target, str(exc)) from None
        raise _cli_error(str(exc)) from None
    return results


def agent(
    *,
    message: Annotated[str | None, Parameter(name=["--message", "-m"], help="The message to send.")] = None,
    message_file: Annotated[Path | None, Parameter(help="Read the message from this UTF-8 file (- for stdin).")] = None,
    to: Annotated[str | None, Parameter(name=["--to", "-t"], help="Recipient used to derive the session key.")] = None,
    session_key: Annotated[str | None, Parameter(help="Explicit session key (agent:<id>:<key>, or a key of --agent).")] = None,
    session_id: Annotated[str | None, Parameter(help="Explicit session id.")] = None,
    agent_id: Annotated[str | None, Parameter(name="--agent", help="Agent id (default: the gateway's default agent).")] = None,
    model: Annotated[str | None, Parameter(help="Model for this turn (provider/model or a model id).")] = None,
    thinking: Annotated[str | None, Parameter(help="Thinking level for this turn (off, low, …).")] = None,
    timeout: Annotated[int, Parameter(help="Turn deadline in seconds (0 disables it).")] = DEFAULT_TIMEOUT_S,
    json_out: Json = False,
    url: Url = None,
    port: Port = None,
    token: Token = None,
    password: Password = None,
) -> int:
    """Run one agent turn through the gateway and print the reply.

    The reply streams to the terminal as it arrives; with --json the final answer is printed as JSON.
    Exits 0 for a completed turn, 1 for an error, timeout or abort (after printing what there is).
    """
    try:
        return _agent(message, message_file, to, session_key, session_id, agent_id, model, thinking, timeout,
                      json_out, url, port, token, password)
    except CliFailure as failure:
        if json_out:
            print(json.dumps(failure.envelope, indent=2))
            print(failure.text, file=sys.stderr)
            return failure.code
        return failure.report(False)


def _agent(
    message: str | None, message_file: Path | None, to: str | None, session_key: str | None, session_id: str | None,
    agent_id: str | None, model: str | None, thinking: str | None, timeout: int, json_out: bool,
    url: str | None, port: int | None, token: str | None, password: str | None,
) -> int:
    for name, value in (("--to", to), ("--session-key", session_key), ("--session-id", session_id), ("--agent", agent_id)):
        if value is not None and not value.strip():
            raise _cli_error(f"{name} must not be blank")
    text = _read_message(message, message_file)
    target = resolve_target(url=url, port=port, token=token, password=password, method="agent")
    wait_s = (timeout if timeout > 0 else 48 * 3600) + 30
    if agent_id is None and session_key is None and session_id is None and to is None and model is None:
        listed = _exchange(target, [("agents.list", {})], scopes=["operator.read"], timeout_s=30)[0]
        if listed[0] and isinstance(listed[1], dict):
            agent_id = listed[1].get("defaultId")
    params: dict[str, Any] = {"message": text, "deliver": False, "timeout": timeout, "idempotencyKey": str(uuid.uuid4())}
    if agent_id:
        params["agentId"] = agent_id
    if session_key:
        params["sessionKey"] = session_key
    if session_id:
        params["sessionId"] = session_id
    if to:
        params["to"] = to
    if model:
        params["model"] = model
    if thinking:
        params["thinking"] = thinking
    live = sys.stdout.isatty() and not json_out
    state: dict[str, Any] = {"run": params["idempotencyKey"], "printed": ""}

    def on_event(name: str, payload: Any) -> None:
        if not live or name != "agent" or not isinstance(payload, dict) or payload.get("runId") != state["run"]:
            return
        if payload.get("stream") == "assistant":
            full = (payload.get("data") or {}).get("text") or ""
            if full.startswith(state["printed"]):
                sys.stdout.write(full[len(state["printed"]) :])
                sys.stdout.flush()
                state["printed"] = full

    scopes = ["operator.admin"] if model else ["operator.write"]
    ok, payload, err = _exchange(
        target, [("agent", params)], scopes=scopes, timeout_s=wait_s, expect_final=True, on_event=on_event
    )[0]
    if not ok:
        extra = {"runId": params["idempotencyKey"], "origin": "gateway"} if isinstance(payload, dict) and payload.get("runId") else {}
        raise _cli_error(err["message"] if err else "agent run failed", **extra)
    if json_out:
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        reply = "\n".join(p.get("text") or "" for p in ((payload or {}).get("result") or {}).get("payloads") or ())
        if live and state["printed"] and reply.startswith(state["printed"]):
            print(reply[len(state["printed"]) :])
        else:
            print(reply)
    status = (payload or {}).get("status")
    return 0 if status == "ok" else 1


# --------------------------------------------------------------------------- sessions


def _store_rows(active_minutes: int | None, limit: int | None) -> tuple[str, dict[str, Any]] | None:
    """The local store's rows (the gateway is down): ``(path, listing)``, or None without a store."""
    from gateway_core.agents.store import SessionQuery
    from gateway_trio.runtime import Paths, SqliteSessionStore, session_store_path

    path = session_store_path(Paths.resolve(None).state_dir)
    if not path.exists():
        return None
    import time

    now = int(time.time() * 1000)
    store = SqliteSessionStore(path, lambda: str(uuid.uuid4()))
    try:
        since = now - active_minutes * 60_000 if active_minutes else None
        page = store.list(SessionQuery(limit=limit or 100_000, active_since_ms=since))
    finally:
        store.close()
    rows = [
        {"key": r.key, "updatedAt": r.updated_at, "ageMs": max(0, now - r.updated_at), "sessionId": r.session_id,
         "agentId": r.agent_id, "kind": "direct", "inputTokens": r.usage.input, "outputTokens": r.usage.output,
         "totalTokens": r.usage.total, "model": r.last_model, "modelProvider": r.last_provider,
         **({"label": r.label} if r.label else {})}
        for r in page.rows
    ]
    return str(path), {"rows": rows, "total": page.total}


def sessions(
    *,
    agent_id: Annotated[str | None, Parameter(name="--agent", help="Only this agent's sessions.")] = None,
    active: Annotated[int | None, Parameter(help="Only sessions updated within the past N minutes.")] = None,
    limit: Annotated[str, Parameter(help="Max rows (default 100; all for every row).")] = "100",
    json_out: Json = False,
    url: Url = None,
    port: Port = None,
    token: Token = None,
    password: Password = None,
) -> int:
    """List stored sessions, newest first (from the gateway; from the local store when it is down)."""
    if limit != "all" and not (limit.isdigit() and int(limit) >= 1):
        print("--limit must be a positive number or all", file=sys.stderr)
        return 2
    cap = None if limit == "all" else int(limit)
    params: dict[str, Any] = {"limit": cap or 100_000}
    if agent_id:
        params["agentId"] = agent_id
    if active:
        params["activeMinutes"] = active
    now_ms = None
    source = "gateway"
    try:
        target = resolve_target(url=url, port=port, token=token, password=password, method="sessions.list")
        ok, payload, err = _exchange(target, [("sessions.list", params)], scopes=["operator.read"], timeout_s=30)[0]
        if not ok:
            raise _cli_error(err["message"] if err else "sessions.list failed")
        path = payload.get("path")
        rows = [
            {"key": r["key"], "updatedAt": r.get("updatedAt"), "ageMs": None, "sessionId": r.get("sessionId"),
             "agentId": r.get("agentId"), "kind": r.get("kind"), "inputTokens": r.get("inputTokens", 0),
             "outputTokens": r.get("outputTokens", 0), "totalTokens": r.get("totalTokens", 0), "model": r.get("model"),
             "modelProvider": r.get("modelProvider"), **({"label": r["label"]} if r.get("label") else {})}
            for r in payload.get("sessions") or ()
        ]
        now_ms = payload.get("ts")
        total = payload.get("totalCount", len(rows))
    except CliFailure as failure:
        local = _store_rows(active, cap)
        if local is None:
            return failure.report(json_out)
        source = "local store (the gateway is not reachable)"
        path, data = local
        rows, total = data["rows"], data["total"]
    if now_ms is not None:
        for row in rows:
            row["ageMs"] = max(0, now_ms - (row["updatedAt"] or now_ms))
    out = {"path": path, "count": len(rows), "totalCount": total, "limitApplied": cap, "hasMore": total > len(rows),
           "activeMinutes": active, "sessions": rows}
    if json_out:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    if source != "gateway":
        print(f"Read from the {source}.", file=sys.stderr)
    print(f"Session store: {path}")
    print(f"Sessions listed: {len(rows)}" + (f" of {total}" if total > len(rows) else ""))
    if not rows:
        print("No sessions found.")
        return 0
    width = max(len(r["key"]) for r in rows)
    print(f"{'Key'.ljust(width)}  {'Age':>8}  {'Model':<28}  Tokens")
    for r in rows:
        model_ref = f"{r['modelProvider']}/{r['model']}" if r.get("model") else "-"
        print(f"{r['key'].ljust(width)}  {_age(r['ageMs']):>8}  {model_ref:<28}  {r.get('totalTokens') or 0}")
    return 0


def _age(ms: int | None) -> str:
    if ms is None:
        return "-"
    s = ms // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


# --------------------------------------------------------------------------- models


def models_list(
    *,
    agent_id: Annotated[str | None, Parameter(name="--agent", help="For this agent.")] = None,
    provider: Annotated[str | None, Parameter(help="Only this provider's models.")] = None,
    json_out: Json = False,
    url: Url = None,
    port: Port = None,
    token: Token = None,
    password: Password = None,
) -> int:
    """List the models the gateway can use (from its config; offline/echo when none is configured)."""
    params: dict[str, Any] = {}
    if agent_id:
        params["agentId"] = agent_id
    if provider:
        params["provider"] = provider
    try:
        target = resolve_target(url=url, port=port, token=token, password=password, method="models.list")
        ok, payload, err = _exchange(target, [("models.list", params)], scopes=["operator.read"], timeout_s=30)[0]
        if not ok:
            raise _cli_error(err["message"] if err else "models.list failed")
        models = payload.get("models") or []
    except CliFailure as failure:
        from gateway_core.agents import roster as R

        from .target import read_config

        _, cfg = read_config()
        models = [m for m in R.catalog(cfg) if not provider or m["provider"] == provider]
        if not models:
            return failure.report(json_out)
        print("The gateway is not reachable: the catalog below comes from the local config.", file=sys.stderr)
    if json_out:
        print(json.dumps({"count": len(models), "models": models}, indent=2, ensure_ascii=False))
        return 0
    refs = [f"{m['provider']}/{m['id']}" for m in models]
    width = max([len(r) for r in refs] + [5])
    print(f"{'Model'.ljust(width)}  {'Context':>8}  Name")
    for ref, m in zip(refs, models, strict=True):
        tag = " (default)" if "default" in (m.get("tags") or ()) else ""
        print(f"{ref.ljust(width)}  {str(m.get('contextWindow') or '-'):>8}  {m.get('name') or ''}{tag}")
    return 0


__all__ = ["agent", "models_list", "sessions"]
