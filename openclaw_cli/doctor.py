"""``openclaw doctor [--fix]``: find what keeps a gateway from running well, repair what is safe.

Checks (runtime-cli.md §10.11): config validity; the state dir's owner and permissions; the gateway
port (free, ours, or held by another process, and by whom); a stale state-dir lock; the service
definition against the config (port, token source, program path); the system-unit ownership rules
of §11.2; other gateway-like services and processes. ``--fix`` tightens state-dir permissions,
removes a stale lock and rewrites a drifted service definition (then reloads the manager and
restarts a running service), and says what it did. It never installs or rewrites a user unit when a
system unit owns the profile, and touches no service at all under
``OPENCLAW_SERVICE_REPAIR_POLICY=external`` (or ``OPENCLAW_SUPERVISOR_MODE=external``).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter

from gateway_trio.runtime import lock_owner

from .service import (
    TOKEN_KEY,
    Backend,
    Ctx,
    ServiceError,
    SystemdBackend,
    build_spec,
    definition_drift,
    definition_port,
    mutation_refusal,
    supervisor_external,
    system_ownership_message,
)

EXTERNAL_REPAIR_NOTE = (
    "Gateway service is managed externally; skipped service install/start repair. "
    "Start or repair the gateway through your supervisor."
)


class Report:
    """The checks doctor ran: ``{check, ok, message, fixed?, hint?}`` each."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, check: str, ok: bool, message: str, *, fixed: str | None = None, hint: str | None = None) -> None:
        item: dict[str, Any] = {"check": check, "ok": ok, "message": message}
        if fixed:
            item["fixed"] = fixed
        if hint:
            item["hint"] = hint
        self.items.append(item)

    @property
    def problems(self) -> list[dict[str, Any]]:
        return [i for i in self.items if not i["ok"] and not i.get("fixed")]


def repair_policy_external(env: Mapping[str, str]) -> bool:
    """Doctor stays diagnostic-only for services (§11.2, §11.6)."""
    policy = (env.get("OPENCLAW_SERVICE_REPAIR_POLICY") or "").strip().lower()
    return policy == "external" or supervisor_external(env)


def _service_definitions(ctx: Ctx) -> list[Path]:
    """Gateway-like service definitions on this host (best effort): units and LaunchAgents."""
    found: list[Path] = []
    dirs: list[tuple[Path, str]] = [
        (ctx.home / ".config" / "systemd" / "user", "openclaw-gateway*.service"),
        (ctx.home / "Library" / "LaunchAgents", "ai.openclaw.*.plist"),
    ]
    if isinstance(ctx.backend, SystemdBackend):
        dirs.append((ctx.backend.system_unit_path.parent, "openclaw-gateway*.service"))
    for directory, pattern in dirs:
        if directory.is_dir():
            found += sorted(directory.glob(pattern))
    return found


def _check_config(report: Report, ctx: Ctx) -> None:
    from gateway_core.config import validate_config

    if ctx.config_error is not None:
        # The reason whole: where and what (a syntax error also shows the offending line).
        error = ctx.config_error
        message = "invalid config: " + error.summary.removeprefix("Gateway failed to start: ")
        excerpt = getattr(error, "excerpt", "")
        if excerpt:
            message += "\n" + "\n".join("    " + line for line in excerpt.splitlines())
        report.add("config", False, message, hint=f"fix the file, then {ctx.cli('config validate')}")
    elif not ctx.config_path.exists():
        how = _runs_unconfigured(ctx)
        if how:
            # The README's start: no config is how this gateway runs, not a fault (defaults apply).
            report.add(
                "config",
                True,
                f"no config at {ctx.config_path}; the gateway runs on defaults ({how} passes --allow-unconfigured)",
                hint=f"to keep settings across restarts (a fixed token, a port): {ctx.cli('setup')}",
            )
        else:
            report.add("config", False, f"no config at {ctx.config_path}", hint=ctx.cli("setup"))
    else:
        issues = validate_config(ctx.config)
        if issues:
            report.add(
                "config", False, "invalid config: " + "; ".join(map(str, issues)), hint=ctx.cli("config validate")
            )
        else:
            report.add("config", True, f"config valid: {ctx.config_path}")


def _runs_unconfigured(ctx: Ctx) -> str | None:
    """Who runs this profile's gateway with ``--allow-unconfigured`` (the running process holding
    the state-dir lock, or the installed service), if anyone does."""
    lock, owner = lock_owner(ctx.state_dir)
    if lock == "held" and owner:
        try:
            argv = Path(f"/proc/{owner}/cmdline").read_bytes().split(b"\0")
        except OSError:
            argv = []
        if b"--allow-unconfigured" in argv:
            return f"the running gateway (pid {owner})"
    backend = ctx.backend
    if backend is not None and backend.definition_path.exists():
        if "--allow-unconfigured" in _safe_read(backend.definition_path):
            return f"the installed service ({backend.definition_path})"
    return None


def _check_state_dir(report: Report, ctx: Ctx, fix: bool) -> None:
    state = ctx.state_dir
    if not state.exists():
        return
    st = state.stat()
    uid = os.getuid() if hasattr(os, "getuid") else st.st_uid
    problems = []
    if st.st_uid != uid:
        problems.append(f"owned by uid {st.st_uid}, not {uid}")
    if st.st_mode & 0o022:
        problems.append(f"writable by group/others (mode {stat.S_IMODE(st.st_mode):o})")
    if not problems:
        report.add("state-dir", True, f"state dir ok: {state}")
        return
    fixed = None
    if fix and st.st_uid == uid:
        state.chmod(0o700)
        fixed = f"chmod 700 {state}"
    hint = None if st.st_uid == uid else f"sudo chown -R {uid} {state}"
    report.add("state-dir", False, f"{state}: " + ", ".join(problems), fixed=fixed, hint=hint)


def _check_lock(report: Report, ctx: Ctx, fix: bool) -> tuple[str, int | None]:
    lock, owner = lock_owner(ctx.state_dir)
    path = ctx.state_dir / "gateway.lock"
    if lock == "stale":
        fixed = None
        if fix:
            path.unlink(missing_ok=True)
            fixed = f"removed stale lock {path}"
        report.add("lock", False, f"stale gateway lock (pid {owner} is not holding it)", fixed=fixed)
    elif lock == "held":
        report.add("lock", True, f"gateway running (pid {owner}) holds the state-dir lock")
    elif lock == "unknown":
        report.add("lock", True, f"gateway lock {path} (pid {owner}) could not be checked")
    else:
        report.add("lock", True, "no gateway lock")
    return lock, owner


def _check_port(report: Report, ctx: Ctx, lock: str, owner: int | None) -> None:
    from gateway_trio.runtime import listeners, running_port

    port = running_port(ctx.state_dir) or ctx.port()
    holders = listeners(port)
    ours = {pid for pid in holders if lock == "held" and pid == owner}
    foreign = {pid: cmd for pid, cmd in holders.items() if pid not in ours}
    if foreign:
        who = ", ".join(f"pid {pid} ({cmd[:60]})" for pid, cmd in foreign.items())
        report.add(
            "port",
            False,
            f"port {port} is in use by {who}",
            hint=f"free it, or start with --port, or {ctx.cli('gateway run --force')}",
        )
    else:
        report.add("port", True, f"port {port} " + ("served by this gateway" if ours else "is free"))


def _repair(ctx: Ctx, backend: Backend, text: str) -> str:
    """Rewrite a drifted definition for this install and config; what was done, for the report."""
    allow = "--allow-unconfigured" in text
    token = None
    clear = re.search(rf"{TOKEN_KEY}=([^\s\"<]+)", text)
    if clear and backend.stored_token() is None:
        token = clear.group(1)  # move a token written in the definition into the owner-only file
    spec = build_spec(ctx, backend, ctx.port(), allow, token)
    out: list[str] = []
    try:
        backend.rewrite(spec, out)
    except ServiceError as exc:
        out.append(exc.message.splitlines()[0])
        out += [f"then run: {hint}" for hint in exc.hints]
    return "; ".join(out)


def _check_service(report: Report, ctx: Ctx, fix: bool) -> None:
    backend = ctx.backend
    if backend is None:
        report.add("service", True, f"no supported service manager on {ctx.platform}")
        return
    external = repair_policy_external(ctx.env)
    user_path = backend.definition_path
    system_path = backend.system_unit_path if isinstance(backend, SystemdBackend) else None
    has_user = user_path.exists()
    has_system = system_path is not None and system_path.exists()
    if has_user and has_system:
        assert system_path is not None
        report.add(
            "service-scope",
            False,
            f"both a user-scope ({user_path}) and a system-scope ({system_path}) gateway unit are installed; "
            "they will SIGTERM each other in a restart loop",
            hint=f"keep the system unit: {ctx.cli('gateway uninstall')}; or remove it: "
            f"sudo systemctl disable --now {backend.name} && sudo rm {system_path}",
        )
    if not has_user and not has_system:
        report.add("service", True, f"no service installed ({ctx.cli('gateway install')})")
        return
    path = user_path if has_user else system_path
    assert path is not None
    text = path.read_text(encoding="utf-8", errors="replace")
    drift = definition_drift(ctx, backend, text)
    if not drift:
        where = "" if has_user else " (system unit; doctor will not install a competing user unit)"
        report.add("service", True, f"{backend.name} matches the config{where}")
        return
    message = f"{backend.name}: " + "; ".join(drift)
    fixed = hint = None
    if not has_user:
        hint = (
            f"{path} is a system unit: edit it as root, then sudo systemctl daemon-reload && sudo systemctl restart "
            f"{backend.name}. Doctor will not install a competing user unit."
        )
    elif external:
        hint = EXTERNAL_REPAIR_NOTE
    elif has_system:
        assert system_path is not None
        hint = "not repaired: " + system_ownership_message(backend.name, system_path, ctx.is_root).replace("\n", " ")
    elif fix:
        refusal = mutation_refusal(ctx, "repair")
        if refusal:
            hint = f"not repaired: {refusal}"
        else:
            fixed = _repair(ctx, backend, text)
    else:
        hint = f"{ctx.cli('doctor --fix')} rewrites it (or {ctx.cli('gateway install --force')})"
    report.add("service", False, message, fixed=fixed, hint=hint)


def _check_other_services(report: Report, ctx: Ctx) -> None:
    backend = ctx.backend
    ours = {backend.definition_path} if backend is not None else set()
    if isinstance(backend, SystemdBackend):
        ours.add(backend.system_unit_path)
    others = [p for p in _service_definitions(ctx) if p not in ours]
    port = ctx.port()
    clashing = [p for p in others if definition_port(_safe_read(p)) == port]
    if clashing:
        report.add(
            "services",
            False,
            f"other gateway services use port {port} too: " + ", ".join(map(str, clashing)),
            hint="one gateway per port: give each profile its own port, or uninstall the leftover service",
        )
    elif others:
        report.add("services", True, "other gateway-like services (other ports): " + ", ".join(map(str, others)))
    else:
        report.add("services", True, "no other gateway-like services")


def _safe_read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _check_processes(report: Report, ctx: Ctx) -> None:
    """This user's gateway processes: more than one serving this state dir is a problem; gateways
    of other profiles or state dirs are listed (isolated profiles are legitimate). Other users'
    processes are not looked at."""
    from gateway_trio.runtime import owner_key

    from .local_gateways import gateway_processes

    lock, holder = lock_owner(ctx.state_dir)
    mine, others = [], []
    for proc in gateway_processes():
        (mine if owner_key(proc.state_dir) == owner_key(ctx.state_dir) else others).append(proc)
    serving = [p for p in mine if p.ports or (lock == "held" and p.pid == holder)]
    if len(serving) > 1:
        report.add(
            "processes",
            False,
            f"several gateway processes for {ctx.state_dir}: " + ", ".join(f"pid {p.pid}" for p in serving),
            hint=f"one gateway per state dir and port; see {ctx.cli('gateway status --deep')}",
        )
    else:
        report.add("processes", True, f"{len(serving)} gateway process(es) for {ctx.state_dir}")
    if others:
        listed = "; ".join(
            f"pid {p.pid} ({p.profile or 'default'} profile, {p.state_dir}"
            + (f", port {', '.join(map(str, p.ports))}" if p.ports else "")
            + ")"
            for p in others
        )
        report.add("other-gateways", True, f"this user's gateways for other state dirs: {listed}")


def run_doctor(ctx: Ctx, *, fix: bool = False, json_: bool = False) -> int:
    """All checks for ``ctx``; exit 1 while problems remain."""
    report = Report()
    _check_config(report, ctx)
    _check_state_dir(report, ctx, fix)
    lock, owner = _check_lock(report, ctx, fix)
    _check_port(report, ctx, lock, owner)
    _check_service(report, ctx, fix)
    _check_other_services(report, ctx)
    _check_processes(report, ctx)
    remaining = report.problems
    if json_:
        print(json.dumps({"ok": not remaining, "checks": report.items}, indent=2))
    else:
        for item in report.items:
            mark = "✓" if item["ok"] else ("✔ fixed" if item.get("fixed") else "✗")
            print(f"{mark} {item['check']}: {item['message']}")
            if item.get("fixed"):
                print(f"    {item['fixed']}")
            elif item.get("hint"):
                print(f"    hint: {item['hint']}")
        print(
            "No problems found."
            if not remaining
            else f"{len(remaining)} problem(s) remain."
            + ("" if fix else f" Run {ctx.cli('doctor --fix')} to repair what is safe.")
        )
    return 0 if not remaining else 1


def doctor(
    *,
    fix: Annotated[bool, Parameter(negative="", alias="--repair")] = False,
    json_: Annotated[bool, Parameter(name="--json", negative="")] = False,
) -> int:
    """Diagnose the local gateway setup (exit 1 while problems remain).

    Checks the config, the state dir's owner and permissions, the port (in use, and by whom), a
    stale lock, the service definition against the config (port, token source, program path), and
    other gateway-like services and processes. With OPENCLAW_SERVICE_REPAIR_POLICY=external the
    service is only diagnosed, never repaired; a system unit that owns the profile is never
    competed with.

    Parameters
    ----------
    fix
        Repair what is safe (state-dir permissions, a stale lock, a drifted user service definition)
        and say what was done. Processes holding the port are reported, never killed.
    json_
        Print the report as JSON: {"ok", "checks": [{"check", "ok", "message", "fixed"?, "hint"?}]}.
    """
    return run_doctor(Ctx.current(), fix=fix, json_=json_)


__all__ = ["doctor", "run_doctor"]
