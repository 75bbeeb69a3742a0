"""``openclaw doctor [--fix]``: find what keeps a gateway from running well, repair what is safe.

Checks: config validity; the state dir's owner and permissions; the gateway port (free, ours, or
held by another process); a stale state-dir lock; the service unit against the config (port,
token source, program); several gateway-like processes. ``--fix`` tightens state-dir permissions,
removes a stale lock and rewrites a drifted user unit, and says what it did. It never installs a
user unit when a system unit already serves the profile, nor anything under
``OPENCLAW_SERVICE_REPAIR_POLICY=external``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter


class Report:
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


def _lock_state(state_dir: Path) -> tuple[str, str | None]:
    """("none"|"held"|"stale", owner pid)."""
    path = state_dir / "gateway.lock"
    if not path.exists():
        return "none", None
    owner = (path.read_text(errors="replace").split("\n", 1)[0] or "").strip() or None
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return "held", owner
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return "stale", owner
    finally:
        os.close(fd)


def _unit_port(text: str) -> int | None:
    m = re.search(r"^ExecStart=.*--port (\d+)", text, re.MULTILINE) or re.search(
        r"^Environment=OPENCLAW_GATEWAY_PORT=(\d+)", text, re.MULTILINE
    )
    return int(m.group(1)) if m else None


def _gateway_processes() -> dict[int, str]:
    found: dict[int, str] = {}
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if (
            "openclaw_cli gateway run" in cmd or "openclaw gateway run" in cmd or cmd.startswith("openclaw-gateway")
        ) and "doctor" not in cmd:
            found[int(pid_dir.name)] = cmd
    return found


def doctor(
    *,
    fix: Annotated[bool, Parameter(help="Repair what is safe to repair, and say what was done.")] = False,
    json_: Annotated[bool, Parameter(name="--json", help="Machine-readable report.")] = False,
) -> int:
    """Diagnose the local gateway setup (exit 1 while problems remain)."""
    from gateway_core.config import validate_config
    from gateway_trio.force import listeners
    from gateway_trio.server import running_port
    from gateway_trio.settings import Paths, StartupError, load_config

    from .service import _Ctx, exec_start, render_systemd_unit, service_environment

    report = Report()
    paths = Paths.resolve(None)
    external = os.environ.get("OPENCLAW_SERVICE_REPAIR_POLICY") == "external"

    # config
    cfg: dict[str, Any] = {}
    try:
        cfg = load_config(paths.config_path) or {}
        issues = validate_config(cfg) if paths.config_path.exists() else []
        if not paths.config_path.exists():
            report.add("config", False, f"no config at {paths.config_path}", hint="openclaw setup --baseline")
        elif issues:
            report.add(
                "config", False, "invalid config: " + "; ".join(map(str, issues)), hint="openclaw config validate"
            )
        else:
            report.add("config", True, f"config valid: {paths.config_path}")
    except StartupError as exc:
        report.add("config", False, exc.message.removeprefix("Gateway failed to start: ").splitlines()[0])

    # state dir
    state = paths.state_dir
    if state.exists():
        st = state.stat()
        problems = []
        if st.st_uid != os.getuid():
            problems.append(f"owned by uid {st.st_uid}, not {os.getuid()}")
        if st.st_mode & 0o022:
            problems.append(f"writable by group/others (mode {stat.S_IMODE(st.st_mode):o})")
        if problems:
            fixed = None
            if fix and st.st_uid == os.getuid():
                state.chmod(0o700)
                fixed = f"chmod 700 {state}"
            report.add("state-dir", False, f"{state}: " + ", ".join(problems), fixed=fixed)
        else:
            report.add("state-dir", True, f"state dir ok: {state}")

    # lock
    lock, owner = _lock_state(state)
    if lock == "stale":
        fixed = None
        if fix:
            (state / "gateway.lock").unlink(missing_ok=True)
            fixed = f"removed stale lock {state / 'gateway.lock'}"
        report.add("lock", False, f"stale gateway lock (pid {owner} is not holding it)", fixed=fixed)
    elif lock == "held":
        report.add("lock", True, f"gateway running (pid {owner}) holds the state-dir lock")
    else:
        report.add("lock", True, "no gateway lock")

    # port
    gw = cfg.get("gateway") if isinstance(cfg.get("gateway"), dict) else {}
    port = running_port(state) or (gw.get("port") if isinstance(gw.get("port"), int) else None) or 18789
    holders = listeners(port)
    ours = {pid for pid in holders if lock == "held" and str(pid) == owner}
    foreign = {pid: cmd for pid, cmd in holders.items() if pid not in ours}
    if foreign:
        who = ", ".join(f"pid {pid} ({cmd[:60]})" for pid, cmd in foreign.items())
        report.add(
            "port",
            False,
            f"port {port} is in use by {who}",
            hint="free it, or start with --port, or openclaw gateway run --force",
        )
    else:
        report.add("port", True, f"port {port} " + ("served by this gateway" if ours else "is free"))

    # service unit drift
    ctx = _Ctx(None)
    system_unit = Path("/etc/systemd/system") / ctx.unit
    if ctx.unit_path.exists():
        text = ctx.unit_path.read_text()
        drift = []
        want_port = gw.get("port") if isinstance(gw.get("port"), int) else 18789
        have_port = _unit_port(text)
        if have_port != want_port:
            drift.append(f"port {have_port} (config says {want_port})")
        if exec_start(want_port, False)[0] not in text:
            drift.append("program path differs from this install")
        if re.search(r"^Environment=OPENCLAW_GATEWAY_(TOKEN|PASSWORD)=", text, re.MULTILINE):
            drift.append("a gateway secret is written in the unit (it belongs in the 0600 env file)")
        if drift:
            fixed = None
            if fix and not external:
                env = service_environment(want_port, ctx.home, ctx.profile, state, paths.config_path)
                new_text = render_systemd_unit(
                    argv=exec_start(want_port, "--allow-unconfigured" in text),
                    env=env,
                    env_file=ctx.env_file,
                    profile=ctx.profile,
                )
                from gateway_trio.state import atomic_write

                atomic_write(ctx.unit_path.with_name(ctx.unit_path.name + ".bak"), text.encode(), mode=0o644)
                atomic_write(ctx.unit_path, new_text.encode(), mode=0o644)
                fixed = f"rewrote {ctx.unit_path} (run: systemctl --user daemon-reload && systemctl --user restart {ctx.unit})"
            report.add(
                "service",
                False,
                f"{ctx.unit}: " + "; ".join(drift),
                fixed=fixed,
                hint="OPENCLAW_SERVICE_REPAIR_POLICY=external keeps doctor diagnostic-only" if external else None,
            )
        else:
            report.add("service", True, f"{ctx.unit} matches the config")
    elif system_unit.exists():
        report.add(
            "service", True, f"a system unit serves this profile ({system_unit}); doctor will not install a user unit"
        )
    else:
        report.add("service", True, "no service installed (openclaw gateway install)")

    # other gateway-like processes
    procs = _gateway_processes()
    if len(procs) > 1:
        report.add(
            "processes",
            False,
            "several gateway-like processes: " + ", ".join(f"pid {p}" for p in procs),
            hint="one gateway per state dir and port; see openclaw gateway status --deep",
        )
    else:
        report.add("processes", True, f"{len(procs)} gateway process(es) running")

    remaining = report.problems
    if json_:
        print(json.dumps({"ok": not remaining, "checks": report.items}, indent=2))
    else:
        for item in report.items:
            mark = "✓" if item["ok"] else ("✔ fixed" if item.get("fixed") else "✗")
            print(f"{mark} {item['check']}: {item['message']}")
            if item.get("fixed"):
                print(f"    {item['fixed']}")
            elif item.get("hint") and not item["ok"]:
                print(f"    hint: {item['hint']}")
        print(
            "No problems found."
            if not remaining
            else f"{len(remaining)} problem(s) remain."
            + ("" if fix else " Run openclaw doctor --fix to repair what is safe.")
        )
    return 0 if not remaining else 1


__all__ = ["doctor"]
