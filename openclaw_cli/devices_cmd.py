"""``openclaw devices list|approve|reject``: device pairing over the gateway's ``device.pair.*`` RPCs.

A device that connects with a key pair the gateway does not know yet waits as a pending request
(``NOT_PAIRED`` with its ``requestId``); an operator lists the requests and approves or rejects
one by its exact id. As published: ``approve`` without an id (or with ``--latest``) only previews
the newest request and exits 1 with the exact command to run, so nothing is approved by accident;
approval asks the gateway for ``operator.pairing`` plus the operator scopes the device requested
(``operator.admin`` for a non-operator role), never more. Output follows the published CLI: the
same tables (rich), the same lines, ``--json`` the gateway's payloads.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
from typing import Annotated, Any

from cyclopts import Parameter

from .rpc_cmds import Json, Password, Timeout, Token, Url, _rpc
from .style import Style
from .target import CliFailure, resolve_target

DEFAULT_TIMEOUT_MS = 10000
KIND_TEXT = {
    "new-pairing": "new pairing",
    "role-upgrade": "role upgrade",
    "scope-upgrade": "scope upgrade",
    "re-approval": "re-approval",
}
NOTES = {
    "new-pairing": "First-time device pairing request.",
    "role-upgrade": "Already paired. Requested role exceeds the current approval, so reconnect stays blocked until you approve this upgrade.",
    "scope-upgrade": "Already paired. Requested scopes exceed the current approval, so reconnect stays blocked until you approve this upgrade.",
    "re-approval": "Already paired. Approval-bound device details changed, so OpenClaw created a fresh request instead of silently reusing the old approval.",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class CommandFailed(Exception):
    """A failure reported the published way: the CLI's last-resort block (``[openclaw] The CLI
    command failed.``, exit 1), after the ``--json`` envelope when one was asked for."""


# --------------------------------------------------------------------------- pure rules


def clean(value: Any) -> str:
    """A value a remote device chose, safe to print on a terminal (no control characters)."""
    return _CONTROL.sub("", str(value))


def normalize_scopes(scopes: Any) -> list[str]:
    """Trimmed, unique, sorted; admin implies read and write, write implies read (as published)."""
    out = {s.strip() for s in scopes if isinstance(s, str) and s.strip()} if isinstance(scopes, list) else set()
    if "operator.admin" in out:
        out |= {"operator.read", "operator.write"}
    elif "operator.write" in out:
        out.add("operator.read")
    return sorted(out)


def _roles(entry: dict[str, Any]) -> list[str]:
    roles = [r for r in entry.get("roles") or () if isinstance(r, str) and r.strip()]
    if isinstance(entry.get("role"), str) and entry["role"].strip():
        roles.append(entry["role"])
    return sorted({r.strip() for r in roles})


def paired_for(request: dict[str, Any], paired: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The paired device a request is for: same device id, and the same key when both say one."""
    device = next((d for d in paired if d.get("deviceId") and d.get("deviceId") == request.get("deviceId")), None)
    if device and request.get("publicKey") and device.get("publicKey") and request["publicKey"] != device["publicKey"]:
        return None
    return device


def approval_state(request: dict[str, Any], paired: dict[str, Any] | None) -> dict[str, Any]:
    """``{kind, requested, approved}``: new pairing, a role or scope upgrade, or a re-approval."""
    requested = {"roles": _roles(request), "scopes": normalize_scopes(request.get("scopes"))}
    if paired is None:
        return {"kind": "new-pairing", "requested": requested, "approved": None}
    roles = _roles(paired)
    tokens = paired.get("tokens")
    if isinstance(tokens, dict):
        tokens = list(tokens.values())
    if isinstance(tokens, list):  # a role whose token was revoked is no longer approved
        live = {t.get("role") for t in tokens if isinstance(t, dict) and not t.get("revokedAtMs")}
        roles = [r for r in roles if r in live]
    approved = {"roles": roles, "scopes": normalize_scopes(paired.get("scopes"))}
    if not set(requested["roles"]) <= set(approved["roles"]):
        kind = "role-upgrade"
    elif not set(requested["scopes"]) <= set(approved["scopes"]):
        kind = "scope-upgrade"
    else:
        kind = "re-approval"
    return {"kind": kind, "requested": requested, "approved": approved}


def access_text(access: dict[str, Any] | None) -> str:
    if access is None:
        return "none"
    roles = ", ".join(clean(r) for r in access["roles"]) or "none"
    return f"roles: {roles}; scopes: {', '.join(clean(s) for s in access['scopes']) or 'none'}"


def approval_scopes(request: dict[str, Any] | None, paired: dict[str, Any] | None) -> list[str]:
    """What to ask the gateway for to approve ``request``: ``operator.pairing`` and the operator
    scopes it wants (those it already has when it names none); ``operator.admin`` for another
    role, for an admin request, or when the request is not known."""
    if request is None or "operator" not in _roles(request):
        return ["operator.admin"]
    wanted = [s for s in normalize_scopes(request.get("scopes")) if s.startswith("operator.")]
    if not wanted and paired is not None:
        wanted = [s for s in normalize_scopes(paired.get("scopes")) if s.startswith("operator.")]
    if "operator.admin" in wanted:
        return ["operator.admin"]
    return sorted({"operator.pairing", *wanted})


def latest(pending: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest pending request (the first of equals)."""
    best: dict[str, Any] | None = None
    for req in pending:
        if best is None or _ts(req) > _ts(best):
            best = req
    return best


def _ts(entry: dict[str, Any]) -> float:
    return entry["ts"] if isinstance(entry.get("ts"), (int, float)) else 0


# --------------------------------------------------------------------------- gateway calls


def _target(url: str | None, token: str | None, password: str | None, method: str) -> Any:
    return resolve_target(url=url, port=None, token=token, password=password, method=method)


def _call(target: Any, method: str, params: dict[str, Any], scopes: list[str], timeout: int) -> Any:
    return _rpc(target, method, params, scopes=scopes, timeout_ms=timeout)


def _pairing_list(target: Any, timeout: int) -> dict[str, list[dict[str, Any]]]:
    raw = _call(target, "device.pair.list", {}, ["operator.pairing"], timeout)
    raw = raw if isinstance(raw, dict) else {}
    return {k: [e for e in raw.get(k) or () if isinstance(e, dict)] for k in ("pending", "paired")}


def _failed(fail: CliFailure, json_: bool) -> int:
    """Transport and credential failures print as every RPC command's do; a refused request as
    the published CLI's last-resort block."""
    error = fail.envelope.get("error") or {}
    if error.get("type") != "gateway_request_error":
        return fail.report(json_)
    if json_:
        print(json.dumps({"ok": False, "error": {"type": "cli_error", "message": error.get("message")}}, indent=2))
    raise CommandFailed(error.get("message") or fail.text)


def _unknown_request(fail: CliFailure) -> bool:
    error = fail.envelope.get("error") or {}
    return error.get("code") in (None, "INVALID_REQUEST") and "unknown requestid" in str(error.get("message")).lower()


# --------------------------------------------------------------------------- output


def _width() -> int:
    import shutil

    return max(60, shutil.get_terminal_size((120, 24)).columns) if sys.stdout.isatty() else 120


def column_widths(columns: list[tuple[str, int, bool]], rows: list[list[str]], width: int) -> list[int]:
    """Each column's width with its padding: its widest cell, then, while the table (with its
    borders) is wider than ``width``, the widest flex column gives up one column at a time, first
    down to its minimum, then down to its header."""
    widths = [max(minimum, 2 + max([len(header), *(len(row[i]) for row in rows)]))
              for i, (header, minimum, _) in enumerate(columns)]
    over = sum(widths) + len(columns) + 1 - width
    for floors in ([max(m, len(h) + 2) for h, m, _ in columns], [len(h) + 2 for h, _, _ in columns]):
        while over > 0:
            shrinkable = [i for i, (_, _, flex) in enumerate(columns) if flex and widths[i] > floors[i]]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: widths[i])
            widths[widest] -= 1
            over -= 1
    return widths


def render_table(columns: list[tuple[str, int, bool]], rows: list[list[str]], st: Style) -> str:
    """A boxed table as the published CLI draws it (header rule, no row rules), fitted to the
    terminal (120 columns when not a terminal) by :func:`column_widths`; cells wrap inside their
    column. ``columns`` are (header, minimum width with padding, flex)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SQUARE, header_style="bold" if st.enabled else "")
    for (header, _, _), width in zip(columns, column_widths(columns, rows, _width()), strict=True):
        table.add_column(header, width=width - 2, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console = Console(width=10_000, color_system="standard" if st.enabled else None, highlight=False,
                      markup=False, emoji=False, force_terminal=st.enabled)
    with console.capture() as captured:
        console.print(table)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def list_lines(data: dict[str, list[dict[str, Any]]], now_ms: int, st: Style) -> list[str]:
    """The human form of ``devices list``."""
    from .channels_cmd import time_ago

    lines: list[str] = []
    pending, paired = data["pending"], data["paired"]
    if pending:
        rows = []
        for req in pending:
            state = approval_state(req, paired_for(req, paired))
            status = KIND_TEXT[state["kind"]] + (", repair" if req.get("isRepair") else "")
            device = clean(req.get("displayName") or req.get("deviceId") or "")
            if req.get("remoteIp"):
                device += f" \u00b7 {clean(req['remoteIp'])}"
            age = time_ago(now_ms - req["ts"]) if isinstance(req.get("ts"), (int, float)) else ""
            rows.append([clean(req.get("requestId") or ""), device, access_text(state["requested"]),
                         access_text(state["approved"]), age, status])
        lines.append(f"{st.heading('Pending')} {st.muted(f'({len(pending)})')}")
        lines.append(render_table([("Request", 10, False), ("Device", 16, True), ("Requested", 20, True),
                                   ("Approved", 20, True), ("Age", 8, False), ("Status", 12, False)], rows, st))
    if paired:
        rows = []
        for d in paired:
            tokens = d.get("tokens")
            tokens = list(tokens.values()) if isinstance(tokens, dict) else tokens if isinstance(tokens, list) else []
            token_text = ", ".join(sorted(f"{clean(t.get('role'))}{' (revoked)' if t.get('revokedAtMs') else ''}"
                                          for t in tokens if isinstance(t, dict))) or "none"
            name = d.get("operatorLabel") or d.get("displayName") or d.get("clientId") or d.get("deviceId") or ""
            rows.append([clean(name), clean(d.get("deviceId") or ""), ", ".join(clean(r) for r in d.get("roles") or ()),
                         ", ".join(clean(s) for s in d.get("scopes") or ()), token_text, clean(d.get("remoteIp") or "")])
        lines.append(f"{st.heading('Paired')} {st.muted(f'({len(paired)})')}")
        lines.append(render_table([("Device", 16, True), ("Device ID", 12, True), ("Roles", 12, True),
                                   ("Scopes", 12, True), ("Tokens", 12, True), ("IP", 12, False)], rows, st))
        lines.append(st.muted("Full device IDs"))
        lines += [f"  {row[1]}  {row[0]}" for row in rows]
    if not pending and not paired:
        lines.append(st.muted("No device pairing entries."))
    return lines


def approve_command(request_id: str, url: str | None, timeout: int, json_: bool) -> str:
    """The exact approval to rerun: the same profile, --url, a non-default --timeout and --json
    (never the token or password)."""
    from gateway_trio.runtime import Paths

    args = ["devices", "approve", request_id]
    if url:
        args += ["--url", url]
    if timeout != DEFAULT_TIMEOUT_MS:
        args += ["--timeout", str(timeout)]
    if json_:
        args.append("--json")
    return Paths.resolve(None).cli(shlex.join(args))


# --------------------------------------------------------------------------- commands


def devices_list(
    *,
    url: Url = None,
    token: Token = None,
    password: Password = None,
    timeout: Timeout = DEFAULT_TIMEOUT_MS,
    json_: Json = False,
) -> int:
    """List pending and paired devices (RPC device.pair.list)."""
    try:
        data = _pairing_list(_target(url, token, password, "device.pair.list"), timeout)
    except CliFailure as fail:
        return _failed(fail, json_)
    if json_:
        print(json.dumps(data, indent=2))
        return 0
    print("\n".join(list_lines(data, int(time.time() * 1000), Style.for_stdout())))
    return 0


def devices_approve(
    request_id: Annotated[str | None, Parameter(name="REQUEST_ID", help="Pending request id (see `openclaw devices list`).")] = None,
    /,
    *,
    latest_: Annotated[bool, Parameter(name="--latest", help="Show the most recent pending request to approve explicitly (exits 1; approves nothing).")] = False,
    url: Url = None,
    token: Token = None,
    password: Password = None,
    timeout: Timeout = DEFAULT_TIMEOUT_MS,
    json_: Json = False,
) -> int:
    """Approve a pending device pairing request by its exact id (RPC device.pair.approve).

    Without an id, or with --latest, it only shows the newest pending request and the exact
    command that approves it, and exits 1: rerun that command to approve.
    """
    wanted = (request_id or "").strip()
    try:
        target = _target(url, token, password, "device.pair.approve")
        data = _pairing_list(target, timeout) if (not wanted or latest_) else None
        if data is not None:
            return _preview(data, url, token, password, timeout, json_)
        try:
            data = _pairing_list(target, timeout)
        except CliFailure:
            data = {"pending": [], "paired": []}  # the approval itself will say what is wrong
        request = next((r for r in data["pending"] if r.get("requestId") == wanted), None)
        scopes = approval_scopes(request, paired_for(request, data["paired"]) if request else None)
        result = _call(target, "device.pair.approve", {"requestId": wanted}, scopes, timeout)
    except CliFailure as fail:
        if _unknown_request(fail):
            print(f"No pending device request matches {clean(wanted)}. Run `openclaw devices list` and retry with "
                  "the current request ID.", file=sys.stderr)
            return 1
        return _failed(fail, json_)
    if json_:
        print(json.dumps(result, indent=2))
        return 0
    st = Style.for_stdout()
    device = (result or {}).get("device") or {}
    print(f"{st.ok('Approved')} {st.command(clean(device.get('deviceId') or 'ok'))} "
          f"{st.muted('(' + clean((result or {}).get('requestId') or wanted) + ')')}")
    return 0


def _preview(data: dict[str, list[dict[str, Any]]], url: str | None, token: str | None, password: str | None,
             timeout: int, json_: bool) -> int:
    req = latest(data["pending"])
    if req is None or not str(req.get("requestId") or "").strip():
        print("No pending device pairing requests to approve", file=sys.stderr)
        return 1
    state = approval_state(req, paired_for(req, data["paired"]))
    command = approve_command(str(req["requestId"]), url, timeout, json_)
    if json_:
        print(json.dumps({"selected": req, "approvalState": state, "approveCommand": command,
                          "requiresAuthFlags": {"token": bool(token), "password": bool(password)}}, indent=2))
        return 1
    st = Style.for_stdout()
    print(f"{st.warn('Selected pending device request')} {st.command(clean(req['requestId']))}")
    print(f"  Device: {clean(req.get('displayName') or req.get('deviceId') or '')}")
    print(f"  Requested: {access_text(state['requested'])}")
    if state["approved"] is not None:
        print(f"  Approved: {access_text(state['approved'])}")
    if req.get("remoteIp"):
        print(f"  IP:     {clean(req['remoteIp'])}")
    print(f"  Note:   {NOTES[state['kind']]}")
    print(f"Approve this exact request with: {command}", file=sys.stderr)
    flags = [f for f, given in (("--token", token), ("--password", password)) if given]
    if flags:
        print(f"Reuse the same {'/'.join(flags)} option{'' if len(flags) == 1 else 's'} when rerunning.", file=sys.stderr)
    return 1


def devices_reject(
    request_id: Annotated[str, Parameter(name="REQUEST_ID", help="Pending request id (see `openclaw devices list`).")],
    /,
    *,
    url: Url = None,
    token: Token = None,
    password: Password = None,
    timeout: Timeout = DEFAULT_TIMEOUT_MS,
    json_: Json = False,
) -> int:
    """Reject a pending device pairing request (RPC device.pair.reject)."""
    wanted = request_id.strip()
    if not wanted:
        print("requestId is required. Run `openclaw devices list` to choose a pending request.", file=sys.stderr)
        return 1
    try:
        target = _target(url, token, password, "device.pair.reject")
        result = _call(target, "device.pair.reject", {"requestId": wanted}, ["operator.pairing"], timeout)
    except CliFailure as fail:
        return _failed(fail, json_)
    if json_:
        print(json.dumps(result, indent=2))
        return 0
    st = Style.for_stdout()
    print(f"{st.warn('Rejected')} {st.command(clean((result or {}).get('deviceId') or 'ok'))}")
    return 0


__all__ = ["approval_scopes", "approval_state", "devices_approve", "devices_list", "devices_reject", "list_lines"]
