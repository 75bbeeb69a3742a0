"""The lifecycle actions ``do_install``/``do_start``/``do_stop``/``do_restart``/``do_uninstall`` on a :class:`Ctx`."""

from __future__ import annotations

import re
import signal
import sys

from gateway_trio.runtime import lock_owner

from .common import ServiceError, ServiceSpec, definition_port
from .context import (
    Ctx,
    audit,
    build_spec,
    definition_drift,
    mutation_refusal,
    nix_mode,
    start_hints,
    supervisor_external,
)
from .report import Reporter
from .systemd import SystemdBackend

HEALTH_DELAY_S = 0.5


NON_INTERACTIVE_STOP = (
    "This stops the operator's running gateway service. Use an isolated dev gateway (openclaw gateway run --dev, "
    "or --profile <name> with a free port) for testing, or re-run with --force if you really mean it."
)


def _unsupported(ctx: Ctx) -> str:
    return f"Gateway service install not supported on {ctx.platform}"


def do_install(
    ctx: Ctx,
    *,
    port: int | None = None,
    token: str | None = None,
    force: bool = False,
    allow_unconfigured: bool = False,
    system: bool = False,
    json_: bool = False,
) -> int:
    """``gateway install``: write the definition (atomically), enable and start it; a no-op when loaded."""
    rep = Reporter("install", json_, ctx.backend, ctx.warnings)
    if nix_mode(ctx.env):
        return rep.fail("Nix mode detected; service install is disabled.")
    refusal = mutation_refusal(ctx, "install")
    if refusal:
        return rep.fail(f"Gateway install blocked: {refusal}")
    backend = ctx.backend
    if backend is None:
        return rep.fail(_unsupported(ctx))
    if port is not None and not 1 <= port <= 65535:
        return rep.fail("Invalid --port. Use a port number from 1 to 65535, for example 18789.")
    spec = build_spec(ctx, backend, port or ctx.port(), allow_unconfigured, token, rep.warnings)
    if system:
        return _render_system_unit(ctx, rep, spec)
    conflict = backend.owner_conflict()
    if conflict:
        return rep.fail(f"Gateway install blocked: {conflict}")
    if not force and backend.installed():
        status = backend.status()
        if status.loaded:
            current = backend.definition()
            if current is not None and current != backend.render(spec):
                drift = definition_drift(ctx, backend, current, spec.port)
                rep.warnings.append(
                    "The installed service definition differs from this install"
                    + (f": {'; '.join(drift)}" if drift else "")
                    + f"; run `{ctx.cli('gateway install --force')}` to rewrite it."
                )
            if token is not None and spec.token is not None:
                rep.warnings.append(f"--token was not stored; rerun with `{ctx.cli('gateway install --force')}`.")
            return rep.ok(
                "already-installed",
                message=f"Gateway service already {backend.loaded_text}.",
                after=[f"Reinstall with: {ctx.cli('gateway install --force')}"],
            )
    out: list[str] = []
    try:
        mode = backend.install(spec, out)
    except ServiceError as exc:
        return rep.fail(f"Gateway install failed: {exc.message}", hints=exc.hints, result=exc.result, lines=out)
    audit(ctx.state_dir, "install", mode, pid=None, interactive=ctx.interactive)
    return rep.ok("installed", lines=out)


def _render_system_unit(ctx: Ctx, rep: Reporter, spec: ServiceSpec) -> int:
    """``install --system``: the system unit on stdout, the sudo steps on stderr (§11.2); nothing is written."""
    backend = ctx.backend
    if not isinstance(backend, SystemdBackend):
        return rep.fail("--system renders a systemd system unit; it is only available on Linux.")
    text = backend.render(spec, user=ctx.user)
    path = backend.system_unit_path
    if ctx.user == "root":
        rep.warnings.append("User=root: set User= to the non-root account that owns the state dir before installing.")
    steps = [
        f"{ctx.cli('gateway install --system')} | sudo tee {path} >/dev/null",
        f"sudo systemctl daemon-reload && sudo systemctl enable --now {backend.name}",
    ]
    if backend.unit_path.exists():
        steps.insert(0, f"{ctx.cli('gateway uninstall')}  # two managers for one gateway restart-loop it")
    if rep.json:
        return rep.ok("rendered", loaded=False, extra={"path": str(path), "unit": text, "steps": steps})
    print(text, end="")
    for line in rep.warnings:
        print(f"Warning: {line}", file=sys.stderr)
    print(f"System unit for {path} (not written). To install it:", file=sys.stderr)
    for step in steps:
        print(f"  {step}", file=sys.stderr)
    return 0


def do_start(ctx: Ctx, *, json_: bool = False) -> int:
    """``gateway start``: idempotent; not installed → ``Gateway service <notLoadedText>.`` and tips."""
    rep = Reporter("start", json_, ctx.backend, ctx.warnings)
    refusal = mutation_refusal(ctx, "start")
    if refusal:
        return rep.fail(refusal)
    backend = ctx.backend
    if backend is None:
        return rep.fail(_unsupported(ctx))
    if not backend.installed():
        return rep.fail(f"Gateway service {backend.not_loaded_text}.", hints=start_hints(ctx))
    status = backend.status()
    if status.state == "running":
        message = (
            f"Gateway service already running (pid {status.pid})." if status.pid else "Gateway service already running."
        )
        return rep.ok("already-running", message=message)
    out: list[str] = []
    try:
        mode = backend.start(out)
    except ServiceError as exc:
        return rep.fail(f"Gateway start failed: {exc.message}", hints=exc.hints or start_hints(ctx), lines=out)
    audit(ctx.state_dir, "start", mode, pid=None, interactive=ctx.interactive)
    return rep.ok("started", lines=out)


def do_stop(ctx: Ctx, *, force: bool = False, disable: bool = False, json_: bool = False) -> int:
    """``gateway stop``: refused non-interactively without --force; an absent service is a no-op."""
    rep = Reporter("stop", json_, ctx.backend, ctx.warnings)
    refusal = mutation_refusal(ctx, "stop")
    if refusal:
        return rep.fail(refusal)
    backend = ctx.backend
    if backend is None:
        return rep.fail(_unsupported(ctx))
    if not backend.installed() and not (disable and backend.kind == "launchd"):
        # Nothing to stop: say so, whatever the shell (no --force is needed to do nothing).
        return rep.ok(
            "not-loaded",
            message=f"No gateway service is installed ({backend.definition_path} does not exist); nothing to stop.",
            loaded=False,
        )
    if not force and not ctx.interactive:
        return rep.fail(NON_INTERACTIVE_STOP)
    status = backend.status()
    out: list[str] = []
    try:
        mode = backend.stop(out, disable=disable)
    except ServiceError as exc:
        return rep.fail(f"Gateway stop failed: {exc.message}", hints=exc.hints, lines=out)
    audit(ctx.state_dir, "stop", mode, pid=status.pid, interactive=ctx.interactive)
    return rep.ok("stopped", lines=out, loaded=status.loaded and not backend.stop_unloads)


DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(raw: str) -> int:
    """``500``, ``30s``, ``1h30m`` → milliseconds (``0`` = indefinitely); ValueError with the §10.6 text."""

    def invalid(reason: str | None = None) -> ValueError:
        shown = f'"{raw}"' if raw.strip() else "empty value"
        prefix = f"Invalid duration ({reason}): {shown}." if reason else f"Invalid duration: {shown}."
        return ValueError(f"{prefix} Use values like 500ms, 30s, 5m, 2h, or 1h30m.")

    text = raw.strip().lower()
    if not text:
        raise invalid("empty")
    single = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", text)
    if single:
        return round(float(single.group(1)) * DURATION_UNITS_MS[single.group(2) or "ms"])
    total = 0.0
    consumed = 0
    for m in DURATION_RE.finditer(text):
        if m.start() != consumed:
            raise invalid("each composite segment needs a unit")
        total += float(m.group(1)) * DURATION_UNITS_MS[m.group(2)]
        consumed = m.end()
    if consumed != len(text) or consumed == 0:
        raise invalid()
    return round(total)


def restart_option_error(*, safe: bool, force: bool, skip_deferral: bool, wait: str | None) -> str | None:
    """The §10.6 restart flag combinations that are refused."""
    if skip_deferral and not safe:
        return "--skip-deferral requires --safe"
    if safe and force:
        return "--safe cannot be combined with --force; omit --safe to begin a forced restart"
    if safe and wait is not None:
        return "--safe cannot be combined with --wait; safe restart uses gateway deferral"
    if force and wait is not None:
        return "--force cannot be combined with --wait"
    if wait is not None:
        try:
            parse_duration_ms(wait)
        except ValueError as exc:
            return str(exc)
    return None


def wait_for_health(ctx: Ctx, port: int) -> tuple[str, float]:
    """Poll /readyz until ready or the budget runs out: ("ready"|"starting"|"down", seconds waited)."""
    start = ctx.clock()
    while True:
        last = ctx.probe(port)
        elapsed = ctx.clock() - start
        if last == "ready" or elapsed >= ctx.health_timeout_s:
            return last, elapsed
        ctx.sleep(HEALTH_DELAY_S)


def _report_health(ctx: Ctx, rep: Reporter, port: int, out: list[str], message: str | None = None) -> int:
    outcome, elapsed = wait_for_health(ctx, port)
    if outcome == "ready":
        return rep.ok("restarted", message=message, lines=out)
    seconds = max(1, round(elapsed))
    hints = [ctx.cli("gateway status --deep"), ctx.cli("doctor")]
    if outcome == "starting":
        text = (
            f"Gateway service is still starting after {seconds}s. Last observed startup phase: unknown. "
            f"Run {ctx.cli('gateway status --deep')}."
        )
        return rep.fail(text, hints=hints, result="still-starting", lines=out)
    rep.warnings.append(f"Timed out after {seconds}s waiting for gateway port {port} to become healthy.")
    return rep.fail(
        f"Gateway restart timed out after {seconds}s waiting for health checks.",
        hints=hints,
        result="restart-health-failed",
        lines=out,
    )


def _signal_restart(ctx: Ctx, rep: Reporter) -> int:
    """Restart the running gateway in place (SIGUSR2 to the state-lock owner): external supervisors, --safe."""
    from gateway_trio.runtime import running_port

    state, pid = lock_owner(ctx.state_dir)
    if state != "held" or pid is None:
        return rep.fail(
            f"Gateway restart failed: no running gateway holds {ctx.state_dir / 'gateway.lock'}; "
            f"start one with `{ctx.cli('gateway start')}` or `{ctx.cli('gateway run')}`."
        )
    sig = getattr(signal, "SIGUSR2", None)
    if sig is None:
        return rep.fail("Gateway restart failed: in-place restarts need SIGUSR2, which this platform does not have.")
    try:
        ctx.send_signal(pid, sig)
    except OSError as exc:
        return rep.fail(f"Gateway restart failed: cannot signal pid {pid}: {exc}")
    audit(ctx.state_dir, "restart", "signal", pid=pid, interactive=ctx.interactive)
    ctx.sleep(HEALTH_DELAY_S)  # let the old generation close admission before probing
    port = running_port(ctx.state_dir) or ctx.port()
    return _report_health(ctx, rep, port, [], message=f"Gateway restarted in place (pid {pid}, SIGUSR2).")


def do_restart(
    ctx: Ctx,
    *,
    safe: bool = False,
    force: bool = False,
    skip_deferral: bool = False,
    wait: str | None = None,
    json_: bool = False,
) -> int:
    """``gateway restart``: through the service manager, then a bounded health check (exit 2: still starting)."""
    rep = Reporter("restart", json_, ctx.backend, ctx.warnings)
    error = restart_option_error(safe=safe, force=force, skip_deferral=skip_deferral, wait=wait)
    if error:
        return rep.fail(error)
    if supervisor_external(ctx.env) or safe:
        return _signal_restart(ctx, rep)
    refusal = mutation_refusal(ctx, "restart")
    if refusal:
        return rep.fail(f"Gateway restart failed: Error: {refusal}")
    backend = ctx.backend
    if backend is None:
        return rep.fail(_unsupported(ctx))
    if not backend.installed():
        if lock_owner(ctx.state_dir)[0] == "held":
            return _signal_restart(ctx, rep)
        return rep.fail(f"Gateway service {backend.not_loaded_text}.", hints=start_hints(ctx))
    status = backend.status()
    out: list[str] = []
    try:
        mode = backend.restart(out)
    except ServiceError as exc:
        return rep.fail(f"Gateway restart failed: {exc.message}", hints=exc.hints or start_hints(ctx), lines=out)
    audit(ctx.state_dir, "restart", mode, pid=status.pid, interactive=ctx.interactive)
    port = definition_port(backend.definition()) or ctx.port()
    return _report_health(ctx, rep, port, out)


def do_uninstall(ctx: Ctx, *, json_: bool = False) -> int:
    """``gateway uninstall``: disable, stop and remove the definition and the stored token."""
    rep = Reporter("uninstall", json_, ctx.backend, ctx.warnings)
    if nix_mode(ctx.env):
        return rep.fail("Nix mode detected; service uninstall is disabled.")
    refusal = mutation_refusal(ctx, "uninstall")
    if refusal:
        return rep.fail(refusal)
    backend = ctx.backend
    if backend is None:
        return rep.fail(_unsupported(ctx))
    out: list[str] = []
    try:
        mode = backend.uninstall(out)
    except ServiceError as exc:
        return rep.fail(f"Gateway uninstall failed: {exc.message}", hints=exc.hints, lines=out)
    if mode:
        audit(ctx.state_dir, "uninstall", mode, pid=None, interactive=ctx.interactive)
    return rep.ok("uninstalled", lines=out, loaded=False)
